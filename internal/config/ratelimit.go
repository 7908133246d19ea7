package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// String is the setting in the jail's own syntax ("10/1m,burst=20"), so
// what `xdpban status` shows can be pasted back into jail.local.
func (r RateLimit) String() string {
	if r.Rate <= 0 {
		return ""
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.Rate
	}
	return fmt.Sprintf("%d/%s,burst=%d", r.Rate, shortDuration(r.Per), burst)
}

// shortDuration writes d in a form ParseDuration reads back: "1m" rather
// than Go's "1m0s", and seconds with a fraction below a second ("0.5s";
// the parser has no millisecond unit).
func shortDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
