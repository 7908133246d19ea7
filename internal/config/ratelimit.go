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

// parseRateLimit reads "N/period[,burst=B]": "20/s", "100/10s,burst=200".
func parseRateLimit(s string) (RateLimit, error) {
	var rl RateLimit
	main, rest, _ := strings.Cut(strings.TrimSpace(s), ",")
	ns, per, ok := strings.Cut(main, "/")
	if !ok {
		return rl, fmt.Errorf("want N/period[,burst=B], e.g. 20/s or 100/10s,burst=200")
	}
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if err != nil || n < 1 || n > 10_000_000 {
		return rl, fmt.Errorf("rate %q: want a whole number from 1 to 10000000", ns)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := ParseDuration(per)
	if err != nil || d <= 0 {
		return rl, fmt.Errorf("period %q: want a positive time such as s, 10s, m", per)
	}
	rl.Rate, rl.Per, rl.Burst = n, d, n
	if rest = strings.TrimSpace(rest); rest != "" {
		k, v, ok := strings.Cut(rest, "=")
		if !ok || strings.TrimSpace(k) != "burst" {
			return rl, fmt.Errorf("%q: the only option is burst=B", rest)
		}
		b, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || b < 1 || b > 10_000_000 {
			return rl, fmt.Errorf("burst %q: want a whole number from 1 to 10000000", v)
		}
		rl.Burst = b
	}
	return rl, nil
}
