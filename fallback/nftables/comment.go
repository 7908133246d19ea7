package nftables

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// commentTag starts the comment of every element and rule xdpban writes:
// the kernel keeps an element's remaining time but not its jail nor the
// wall-clock end, so a restarted daemon reads them back from here.
const commentTag = "xdpban"

// maxComment is NFT_USERDATA_MAXLEN less the TLV header.
const maxComment = 250

// formatComment renders "xdpban jail=NAME exp=UNIX[.frac]" (exp=0:
// permanent), the jail query-escaped so it cannot break the syntax.
func formatComment(jail string, expires time.Time) string {
	exp := "0"
	if !expires.IsZero() {
		exp = strconv.FormatInt(expires.Unix(), 10)
		if ns := expires.Nanosecond(); ns != 0 {
			exp += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
		}
	}
	j := url.QueryEscape(jail)
	// A long jail name is cut, never refused: the ban matters more than
	// its label.
	if room := maxComment - len(commentTag+" jail= exp=") - len(exp); len(j) > room {
		j = j[:room]
		if i := strings.LastIndexByte(j, '%'); i >= 0 && i > len(j)-3 {
			j = j[:i]
		}
	}
	return commentTag + " jail=" + j + " exp=" + exp
}

// parseComment is formatComment's inverse; ok is false for a comment
// xdpban did not write.
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
