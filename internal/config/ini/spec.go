package ini

import (
	"fmt"
	"strings"
	"unicode"
)

// ParseSpec splits a filter or action reference such as
// `sshd[mode=aggressive, __pam_auth="pam_ldap"]` into its name and
// arguments, as fail2ban's extractOptions does: values may be bare (up to
// the next ',' or ']'), "double" or 'single' quoted (then holding anything
// but that quote), and several groups may follow: `act[a=1][b=2]`.
// Argument names are kept as written; values are trimmed.
func ParseSpec(spec string) (name string, args map[string]string, err error) {
	s := strings.TrimSpace(spec)
	open := strings.IndexByte(s, '[')
	if open < 0 {
		if s == "" {
			return "", nil, fmt.Errorf("empty reference: give a name such as sshd or sshd[mode=aggressive]")
		}
		return s, map[string]string{}, nil
	}
	name = strings.TrimSpace(s[:open])
	if name == "" {
		return "", nil, fmt.Errorf("reference %q has no name before '[': write NAME[key=value, ...]", clip(spec))
	}
	if !strings.HasSuffix(s, "]") {
		return "", nil, fmt.Errorf("reference %q: '[' without a closing ']' at the end: write NAME[key=value, ...]", clip(spec))
	}
	body := s[open+1 : len(s)-1]
	args = map[string]string{}
	i := 0
	for {
		for i < len(body) && unicode.IsSpace(rune(body[i])) {
			i++
		}
		if i >= len(body) {
			break
		}
		if body[i] == ',' && strings.TrimSpace(body[i+1:]) == "" {
			break
		}
		k := i
		for i < len(body) && (isWordByte(body[i]) || body[i] == '-' || body[i] == '.') {
			i++
		}
		if k == i || i >= len(body) || body[i] != '=' {
			return "", nil, fmt.Errorf("reference %q: expected key=value at %q: quote values holding ',' or ']'", clip(spec), clip(body[k:]))
		}
		key := body[k:i]
		i++ // '='
		var val string
		quoted := false
		if i < len(body) && (body[i] == '"' || body[i] == '\'') {
			if end := strings.IndexByte(body[i+1:], body[i]); end >= 0 {
				val = body[i+1 : i+1+end]
				i += end + 2
				quoted = true
			}
		}
		if !quoted {
			e := strings.IndexAny(body[i:], ",]")
			if e < 0 {
				e = len(body) - i
			}
			val = body[i : i+e]
			i += e
		}
		args[key] = strings.TrimSpace(val)
		switch {
		case i >= len(body):
		case body[i] == ',':
			i++
		case body[i] == ']':
			j := i + 1
			for j < len(body) && unicode.IsSpace(rune(body[j])) {
				j++
			}
			if j >= len(body) || body[j] != '[' {
				return "", nil, fmt.Errorf("reference %q: unexpected %q after %s: write NAME[k=v][k2=v2] or quote the value", clip(spec), clip(body[i:]), key)
			}
			i = j + 1
		default:
			return "", nil, fmt.Errorf("reference %q: unexpected %q after %s=%q: separate arguments with ','", clip(spec), clip(body[i:]), key, clip(val))
		}
	}
	return name, args, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// SplitSpecs splits a multi-reference value (an action = list) into its
// references, as fail2ban's splitWithOptions does: references are separated
// by whitespace or newlines, and a reference's [...] may span lines and hold
// quoted values with spaces, commas or brackets.
func SplitSpecs(s string) []string {
	var out []string
	i := 0
	for i < len(s) {
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != '[' && !unicode.IsSpace(rune(s[i])) {
			i++
		}
		// NAME [args]: whitespace allowed before '['.
		j := i
		for j < len(s) && unicode.IsSpace(rune(s[j])) {
			j++
		}
		if j < len(s) && s[j] == '[' && j > start {
			i = skipGroups(s, j)
		}
		if tok := strings.TrimSpace(s[start:i]); tok != "" {
			out = append(out, tok)
		}
		if i == start {
			i++ // a stray '[': keep going
		}
	}
	return out
}

// skipGroups returns the index after one or more [..][..] groups starting
// at s[i] == '['; quoted values may hold ']' and newlines.
func skipGroups(s string, i int) int {
	for i < len(s) && s[i] == '[' {
		i++
		var q byte
		afterEq := false
		for i < len(s) {
			c := s[i]
			switch {
			case q != 0:
				if c == q {
					q = 0
				}
			case (c == '"' || c == '\'') && afterEq:
				q = c
			case c == ']':
				goto closed
			}
			afterEq = c == '=' || (afterEq && unicode.IsSpace(rune(c)) && q == 0)
			i++
		}
		return i
	closed:
		i++
		j := i
		for j < len(s) && unicode.IsSpace(rune(s[j])) {
			j++
		}
		if j < len(s) && s[j] == '[' {
			i = j
		}
	}
	return i
}
