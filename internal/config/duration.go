package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Seconds in fail2ban's units; a month is a year / 12 and a year counts
// leap years (365.25 days), as fail2ban's MyTime.str2seconds does.
var durationUnits = map[string]float64{
	"s": 1, "ss": 1, "se": 1, "sec": 1, "second": 1, "seconds": 1,
	"m": 60, "mm": 60, "mi": 60, "min": 60, "minute": 60, "minutes": 60,
	"h": 3600, "hh": 3600, "ho": 3600, "hou": 3600, "hour": 3600, "hours": 3600,
	"d": 86400, "dd": 86400, "da": 86400, "day": 86400, "days": 86400,
	"w": 7 * 86400, "ww": 7 * 86400, "we": 7 * 86400, "wee": 7 * 86400, "week": 7 * 86400, "weeks": 7 * 86400,
	"mo": 365.25 * 86400 / 12, "mon": 365.25 * 86400 / 12, "month": 365.25 * 86400 / 12, "months": 365.25 * 86400 / 12,
	"y": 365.25 * 86400, "yy": 365.25 * 86400, "ye": 365.25 * 86400, "yea": 365.25 * 86400, "year": 365.25 * 86400, "years": 365.25 * 86400,
}

// maxDuration keeps conversions clear of int64 overflow (~292 years).
const maxDuration = 200 * 365 * 24 * time.Hour

// ParseDuration reads a time in fail2ban's forms: seconds ("600", "-1",
// "1.5"), unit terms ("10m", "1h30m", "1d 12h", "2 weeks", "6mo", "1y"),
// and sums or differences of terms ("1h+30m", "1y-6mo"). Units are
// case-insensitive; "m" is minutes, "mo" months.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration: give seconds or a time such as 600, 10m, 1h30m, 1d")
	}
	bad := func(why string) error {
		return fmt.Errorf("invalid duration %q: %s; write e.g. 600, 10m, 1h30m, 1d or -1", s, why)
	}
	var total float64
	i, terms := 0, 0
	for i < len(in) {
		for i < len(in) && (in[i] == ' ' || in[i] == '\t') {
			i++
		}
		if i >= len(in) {
			break
		}
		sign := 1.0
		if in[i] == '+' || in[i] == '-' {
			if in[i] == '-' {
				sign = -1
			}
			i++
			for i < len(in) && (in[i] == ' ' || in[i] == '\t') {
				i++
			}
		}
		j := i
		for j < len(in) && (in[j] >= '0' && in[j] <= '9' || in[j] == '.') {
			j++
		}
		if j == i {
			return 0, bad(fmt.Sprintf("expected a number at %q", in[i:]))
		}
		n, err := strconv.ParseFloat(in[i:j], 64)
		if err != nil {
			return 0, bad(fmt.Sprintf("%q is not a number", in[i:j]))
		}
		i = j
		for i < len(in) && (in[i] == ' ' || in[i] == '\t') {
			i++
		}
		k := i
		for k < len(in) && unicode.IsLetter(rune(in[k])) {
			k++
		}
		mult := 1.0
		if k > i {
			u, ok := durationUnits[strings.ToLower(in[i:k])]
			if !ok {
				return 0, bad(fmt.Sprintf("unknown unit %q (use s, m, h, d, w, mo, y)", in[i:k]))
			}
			mult = u
		}
		i = k
		total += sign * n * mult
		terms++
	}
	if terms == 0 {
		return 0, bad("no number")
	}
	d := total * float64(time.Second)
	if math.IsNaN(d) || math.Abs(d) > float64(maxDuration) {
		return 0, bad("longer than 200 years; use -1 for permanent")
	}
	return time.Duration(math.Round(d)), nil
}
