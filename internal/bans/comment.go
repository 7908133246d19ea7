package bans

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CommentTag starts every comment a netfilter backend writes on its set
// elements and rules: the kernel keeps at most an element's remaining
// time, never its jail nor the wall-clock end, so a restarted daemon
// tells its own entries apart and reads those back from the comment.
const CommentTag = "xdpban"

// FormatComment renders "xdpban jail=NAME exp=UNIX[.frac]" (exp=0:
// permanent) in at most limit bytes, the jail query-escaped so a space or
// quote in it cannot break iptables' argument parsing or the comment's
// own syntax.
func FormatComment(jail string, expires time.Time, limit int) string {
	exp := "0"
	if !expires.IsZero() {
		exp = strconv.FormatInt(expires.Unix(), 10)
		if ns := expires.Nanosecond(); ns != 0 {
			exp += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
		}
	}
	j := url.QueryEscape(jail)
	// A long jail name is cut rather than refused: the ban matters more
	// than its label, and the cut is stable so it still round-trips.
	if room := limit - len(CommentTag+" jail= exp=") - len(exp); len(j) > room {
		j = j[:max(room, 0)]
		// Do not leave half an escape behind.
		if i := strings.LastIndexByte(j, '%'); i >= 0 && i > len(j)-3 {
			j = j[:i]
		}
	}
	return CommentTag + " jail=" + j + " exp=" + exp
}

// ParseComment is FormatComment's inverse. ok is false for a comment
// xdpban did not write; err is set for one it wrote that is damaged.
func ParseComment(c string) (jail string, expires time.Time, ok bool, err error) {
	rest, found := strings.CutPrefix(c, CommentTag+" ")
	if !found {
		return "", time.Time{}, false, nil
	}
	var haveJail, haveExp bool
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "jail":
			j, uerr := url.QueryUnescape(v)
			if uerr != nil {
				return "", time.Time{}, true, fmt.Errorf("comment %q: bad jail name: %w", c, uerr)
			}
			jail, haveJail = j, true
		case "exp":
			t, perr := parseExp(v)
			if perr != nil {
				return "", time.Time{}, true, fmt.Errorf("comment %q: %w", c, perr)
			}
			expires, haveExp = t, true
		}
	}
	if !haveJail || !haveExp {
		return "", time.Time{}, true, fmt.Errorf("comment %q: want \"xdpban jail=NAME exp=UNIX\"", c)
	}
	return jail, expires, true, nil
}

func parseExp(v string) (time.Time, error) {
	sec, frac, hasFrac := strings.Cut(v, ".")
	if sec == "" || sec[0] < '0' || sec[0] > '9' {
		return time.Time{}, fmt.Errorf("bad expiry %q: want unix seconds", v)
	}
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, fmt.Errorf("bad expiry %q: want unix seconds", v)
	}
	var ns int64
	if hasFrac {
		if len(frac) == 0 || len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("bad expiry %q: want at most nine fractional digits", v)
		}
		ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	if s == 0 && ns == 0 {
		return time.Time{}, nil
	}
	return time.Unix(s, ns), nil
}
