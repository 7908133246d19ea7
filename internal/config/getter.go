package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/config/ini"
)

type getter struct{ f *ini.File }

// get returns the interpolated value, its position and whether it is set
// at all (in the section or DEFAULT).
func (g getter) get(sec, key string) (string, ini.Pos, bool, error) {
	raw, ok := g.f.Raw(sec, key)
	if !ok {
		return "", ini.Pos{}, false, nil
	}
	v, err := g.f.Get(sec, key)
	if err != nil {
		return "", raw.Pos, true, err
	}
	return v, raw.Pos, true, nil
}

// bad is a ValueError at pos, or where the operator last set a part of
// the value (ini.File.Origin) when that is a later file: the shipped
// jail.conf's filter line was cited for jail.local's bad mode.
func (g getter) bad(sec, key, val string, pos ini.Pos, format string, a ...any) error {
	e := &ValueError{Pos: pos, Section: sec, Key: key, Value: val, Reason: fmt.Sprintf(format, a...)}
	if o, via, ok := g.f.Origin(sec, key); ok && o.Pos != pos && via != strings.ToLower(key) {
		e.Pos, e.Via, e.ViaValue = o.Pos, via, o.Text
	}
	return e
}

func (g getter) str(sec, key, def string) (string, ini.Pos, error) {
	v, pos, ok, err := g.get(sec, key)
	if err != nil || !ok {
		return def, pos, err
	}
	return v, pos, nil
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, true
	case "0", "no", "false", "off":
		return false, true
	}
	return false, false
}

func (g getter) boolean(sec, key string, def bool) (bool, error) {
	v, pos, ok, err := g.get(sec, key)
	if err != nil || !ok {
		return def, err
	}
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	b, ok := parseBool(v)
	if !ok {
		return false, g.bad(sec, key, v, pos, "want true or false (yes/no, on/off, 1/0)")
	}
	return b, nil
}

func (g getter) integer(sec, key string, def, min, max int) (int, error) {
	v, pos, ok, err := g.get(sec, key)
	if err != nil || !ok || strings.TrimSpace(v) == "" {
		return def, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, g.bad(sec, key, v, pos, "want a whole number from %d to %d", min, max)
	}
	if n < min || n > max {
		return 0, g.bad(sec, key, v, pos, "out of range: want %d to %d", min, max)
	}
	return n, nil
}

// duration reads a fail2ban time. Negative values only mean something
// for bantime (permanent) and zero only for caps and offsets, so each
// caller says which it accepts.
func (g getter) duration(sec, key string, def time.Duration, allowNeg, allowZero bool) (time.Duration, error) {
	v, pos, ok, err := g.get(sec, key)
	if err != nil || !ok || strings.TrimSpace(v) == "" {
		return def, err
	}
	d, err := ParseDuration(v)
	if err != nil {
		return 0, g.bad(sec, key, v, pos, "%s", strings.TrimPrefix(err.Error(), fmt.Sprintf("invalid duration %q: ", v)))
	}
	switch {
	case d < 0 && !allowNeg:
		return 0, g.bad(sec, key, v, pos, "must not be negative")
	case d == 0 && !allowZero:
		return 0, g.bad(sec, key, v, pos, "must be longer than 0")
	}
	return d, nil
}

// splitWords is fail2ban's splitwords: on spaces, commas and newlines.
func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == ',' || r == '\n' || r == '\t'
	})
}
