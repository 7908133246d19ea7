package iptables

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// commentTag starts every comment xdpban writes, on set elements and on
// per-address rules, so a restarted daemon can tell its own entries apart
// and recover the jail and expiry the kernel does not keep.
const commentTag = "xdpban"

// maxCommentLen is the shorter of ipset's (255) and xt_comment's (256)
// limits.
const maxCommentLen = 255

// formatComment renders "xdpban jail=NAME exp=UNIX[.frac]"; exp=0 is
// permanent. The jail name is query-escaped so a space or quote in it
// cannot break iptables' argument parsing or the comment's own syntax.
func formatComment(jail string, expires time.Time) string {
	exp := "0"
	if !expires.IsZero() {
		exp = strconv.FormatInt(expires.Unix(), 10)
		if ns := expires.Nanosecond(); ns != 0 {
			exp += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
		}
	}
	j := url.QueryEscape(jail)
	// Long jail names are cut rather than refused: the ban matters more
	// than the label, and the cut is stable so it still round-trips.
	if room := maxCommentLen - len(commentTag+" jail= exp=") - len(exp); len(j) > room {
		j = j[:room]
		// Do not leave half an escape behind.
		if i := strings.LastIndexByte(j, '%'); i >= 0 && i > len(j)-3 {
			j = j[:i]
		}
	}
	return commentTag + " jail=" + j + " exp=" + exp
}

// parseComment is formatComment's inverse. ok is false for a comment
// xdpban did not write; err is set for one it wrote that is damaged.
func parseComment(c string) (jail string, expires time.Time, ok bool, err error) {
	rest, found := strings.CutPrefix(c, commentTag+" ")
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
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s < 0 || sec[0] == '+' {
		return time.Time{}, fmt.Errorf("bad expiry %q: want unix seconds", v)
	}
	var ns int64
	if hasFrac {
		if len(frac) == 0 || len(frac) > 9 {
			return time.Time{}, fmt.Errorf("bad expiry %q: want at most nine fractional digits", v)
		}
		for _, r := range frac {
			if r < '0' || r > '9' {
				return time.Time{}, fmt.Errorf("bad expiry %q: want unix seconds", v)
			}
		}
		n, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		ns = n
	}
	if s == 0 && ns == 0 {
		return time.Time{}, nil
	}
	return time.Unix(s, ns), nil
}
