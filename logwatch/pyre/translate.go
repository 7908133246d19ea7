package pyre

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Python's re and Go's regexp disagree on syntax (named groups,
// backreferences, lookaround, conditionals) and on the meaning of the
// Perl classes (\w, \d, \s are Unicode in Python 3, ASCII in RE2). fail2ban
// filters are written for Python, so every expression is translated here.
// The translation yields two spellings: one for RE2 (regexp), used
// whenever the expression needs nothing RE2 lacks because RE2 runs in
// linear time, and one for regexp2 (a backtracking .NET-syntax engine)
// for the few filters that use lookaround, backreferences or conditionals.

// Unicode classes equivalent to Python 3's str-pattern \w, \d, \s.
const (
	pyWordSet  = `\p{L}\p{N}_`
	pyDigitSet = `\p{Nd}`
	pySpaceSet = `\t-\r\x1c-\x20\x{85}\p{Z}`
	// regexp2 spells U+0085 differently.
	netSpaceSet = `\t-\r\x1c-\x20\u0085\p{Z}`
	// ASCII variants for the (?a) flag.
	asciiWordSet  = `0-9A-Za-z_`
	asciiDigitSet = `0-9`
	asciiSpaceSet = `\t-\r\x20`
)

type pyTranslation struct {
	re2     string // RE2 spelling (valid only when !needNet)
	net     string // regexp2 (.NET) spelling
	needNet bool   // uses something RE2 lacks
	why     string // what forced regexp2, for `xdpban regex -v`
}

type pyTranslator struct {
	src     string
	pos     int
	re2     strings.Builder
	net     strings.Builder
	needNet bool
	why     string
	verbose bool
	ascii   bool
	depth   int
}

func (t *pyTranslator) emit(both string) {
	t.re2.WriteString(both)
	t.net.WriteString(both)
}

func (t *pyTranslator) emit2(re2, net string) {
	t.re2.WriteString(re2)
	t.net.WriteString(net)
}

func (t *pyTranslator) requireNet(why string) {
	if !t.needNet {
		t.needNet = true
		t.why = why
	}
}

func (t *pyTranslator) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d in %q", ErrRegex, fmt.Sprintf(format, args...), t.pos, t.src)
}

// translatePy translates a Python re pattern.
func translatePy(src string) (pyTranslation, error) {
	if !utf8.ValidString(src) {
		return pyTranslation{}, fmt.Errorf("%w: pattern %q is not valid UTF-8", ErrRegex, src)
	}
	t := &pyTranslator{src: src}
	if err := t.run(); err != nil {
		return pyTranslation{}, err
	}
	if t.depth != 0 {
		return pyTranslation{}, t.errorf("missing ), unterminated subpattern")
	}
	return pyTranslation{re2: t.re2.String(), net: t.net.String(), needNet: t.needNet, why: t.why}, nil
}

func (t *pyTranslator) peek(off int) byte {
	if t.pos+off < len(t.src) {
		return t.src[t.pos+off]
	}
	return 0
}

func (t *pyTranslator) run() error {
	for t.pos < len(t.src) {
		c := t.src[t.pos]
		switch {
		case t.verbose && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'):
			t.pos++
		case t.verbose && c == '#':
			for t.pos < len(t.src) && t.src[t.pos] != '\n' {
				t.pos++
			}
		case c == '\\':
			if err := t.escape(false); err != nil {
				return err
			}
		case c == '[':
			if err := t.class(); err != nil {
				return err
			}
		case c == '(':
			if err := t.group(); err != nil {
				return err
			}
		case c == ')':
			if t.depth == 0 {
				return t.errorf("unbalanced parenthesis")
			}
			t.depth--
			t.emit(")")
			t.pos++
		case c == '{':
			t.brace()
		case c == '*' || c == '+' || c == '?':
			t.emit(string(c))
			t.pos++
			if t.peek(0) == '+' { // possessive (Python 3.11)
				return t.errorf("possessive quantifier %c+ is not supported: rewrite without it", c)
			}
		default:
			r, n := utf8.DecodeRuneInString(t.src[t.pos:])
			t.emit(string(r))
			t.pos += n
		}
	}
	return nil
}

// brace handles {m,n}: Python's {,n} means {0,n}; a brace that is not a
// repetition is a literal in both Python and RE2, but we escape it so
// neither engine has to guess.
func (t *pyTranslator) brace() {
	end := strings.IndexByte(t.src[t.pos:], '}')
	if end > 0 {
		body := t.src[t.pos+1 : t.pos+end]
		lo, hi, comma := strings.Cut(body, ",")
		okNum := func(s string) bool {
			if s == "" {
				return true
			}
			_, err := strconv.Atoi(s)
			return err == nil && s[0] != '+' && s[0] != '-'
		}
		if (lo != "" || (comma && hi != "")) && okNum(lo) && okNum(hi) {
			if lo == "" {
				lo = "0"
			}
			var rep string
			if comma {
				rep = "{" + lo + "," + hi + "}"
			} else {
				rep = "{" + lo + "}"
			}
			n1, _ := strconv.Atoi(lo)
			n2, _ := strconv.Atoi(hi)
			if n1 > 1000 || n2 > 1000 {
				t.requireNet("repetition count above 1000")
			}
			t.emit(rep)
			t.pos += end + 1
			if t.peek(0) == '+' {
				t.pos++ // possessive: not supported, drop (treated greedy)
			}
			return
		}
	}
	t.emit(`\{`)
	t.pos++
}

func (t *pyTranslator) setFor(neg bool, kind byte) (re2, net string) {
	var set, nset string
	switch kind {
	case 'w':
		set = pyWordSet
		if t.ascii {
			set = asciiWordSet
		}
	case 'd':
		set = pyDigitSet
		if t.ascii {
			set = asciiDigitSet
		}
	case 's':
		set = pySpaceSet
		if t.ascii {
			set = asciiSpaceSet
		}
	}
	nset = set
	if kind == 's' && !t.ascii {
		nset = netSpaceSet
	}
	if neg {
		return "[^" + set + "]", "[^" + nset + "]"
	}
	return "[" + set + "]", "[" + nset + "]"
}

// escape translates a backslash sequence. inClass: inside [...] (then
// the output is a class item, not an atom).
func (t *pyTranslator) escape(inClass bool) error {
	if t.pos+1 >= len(t.src) {
		return t.errorf("bad escape (end of pattern)")
	}
	c := t.src[t.pos+1]
	t.pos += 2
	switch c {
	case 'd', 'w', 's', 'D', 'W', 'S':
		kind := c | 0x20
		neg := c != kind
		if inClass {
			re2, net := t.setFor(false, kind)
			if neg {
				// A complement cannot be unioned inside a class in
				// RE2 syntax; fall back to the Perl class (ASCII).
				t.emit(`\` + string(c))
				return nil
			}
			t.emit2(re2[1:len(re2)-1], net[1:len(net)-1])
			return nil
		}
		re2, net := t.setFor(neg, kind)
		t.emit2(re2, net)
	case 'b', 'B':
		if inClass {
			if c == 'b' {
				t.emit(`\x08`)
				return nil
			}
			return t.errorf(`bad escape \B in character class`)
		}
		t.emit(`\` + string(c))
	case 'A':
		if inClass {
			return t.errorf(`bad escape \A in character class`)
		}
		t.emit(`\A`)
	case 'Z':
		if inClass {
			return t.errorf(`bad escape \Z in character class`)
		}
		t.emit(`\z`)
	case 'n', 't', 'r', 'f', 'v', 'a':
		t.emit(`\` + string(c))
	case 'x':
		return t.hexEscape(2)
	case 'u':
		return t.hexEscape(4)
	case 'U':
		return t.hexEscape(8)
	case '0':
		// octal: \0, \0o, \0oo
		v := 0
		for i := 0; i < 2 && t.pos < len(t.src) && t.src[t.pos] >= '0' && t.src[t.pos] <= '7'; i++ {
			v = v*8 + int(t.src[t.pos]-'0')
			t.pos++
		}
		t.literalRune(rune(v), inClass)
	case '1', '2', '3', '4', '5', '6', '7', '8', '9':
		// three octal digits make an octal escape, otherwise a group
		// reference.
		start := t.pos - 1
		if t.pos+1 < len(t.src) && isOct(c) && isOct(t.src[t.pos]) && isOct(t.src[t.pos+1]) {
			v, _ := strconv.ParseInt(t.src[start:start+3], 8, 32)
			t.pos = start + 3
			t.literalRune(rune(v), inClass)
			return nil
		}
		if inClass {
			return t.errorf("bad escape \\%c in character class", c)
		}
		end := t.pos
		if end < len(t.src) && t.src[end] >= '0' && t.src[end] <= '9' {
			end++
		}
		t.pos = end
		t.requireNet("backreference")
		t.net.WriteString(`\` + t.src[start:end])
	default:
		if c >= 0x80 {
			t.pos -= 1
			r, n := utf8.DecodeRuneInString(t.src[t.pos:])
			t.pos += n
			t.literalRune(r, inClass)
			return nil
		}
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			return t.errorf("bad escape \\%c", c)
		}
		t.literalRune(rune(c), inClass)
	}
	return nil
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

func (t *pyTranslator) hexEscape(n int) error {
	if t.pos+n > len(t.src) {
		return t.errorf("incomplete \\x/\\u escape")
	}
	v, err := strconv.ParseUint(t.src[t.pos:t.pos+n], 16, 32)
	if err != nil || v > utf8.MaxRune {
		return t.errorf("bad hex escape %q", t.src[t.pos-2:t.pos+n])
	}
	t.pos += n
	t.literalRune(rune(v), false)
	return nil
}

// literalRune writes one literal character, escaped for both engines.
func (t *pyTranslator) literalRune(r rune, inClass bool) {
	if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
		t.emit2(fmt.Sprintf(`\x{%x}`, r), fmt.Sprintf(`\u%04x`, r))
		return
	}
	if r < 0x80 && strings.ContainsRune(`\.+*?()|[]{}^$#&~- `, r) {
		if r == ' ' {
			t.emit(" ")
			return
		}
		t.emit(`\` + string(r))
		return
	}
	t.emit(string(r))
}

func (t *pyTranslator) class() error {
	t.pos++ // [
	t.emit("[")
	if t.peek(0) == '^' {
		t.emit("^")
		t.pos++
	}
	first := true
	for {
		if t.pos >= len(t.src) {
			return t.errorf("unterminated character set")
		}
		c := t.src[t.pos]
		switch {
		case c == ']' && !first:
			t.emit("]")
			t.pos++
			return nil
		case c == ']':
			t.emit(`\]`)
			t.pos++
		case c == '\\':
			if err := t.escape(true); err != nil {
				return err
			}
		case c == '[':
			t.emit(`\[`)
			t.pos++
		case c == '-':
			// a range dash, or a literal one at the edges
			if first || t.peek(1) == ']' {
				t.emit(`\-`)
			} else {
				t.emit("-")
			}
			t.pos++
		default:
			r, n := utf8.DecodeRuneInString(t.src[t.pos:])
			if r < 0x20 {
				t.literalRune(r, true)
			} else {
				t.emit(string(r))
			}
			t.pos += n
		}
		first = false
	}
}

func (t *pyTranslator) group() error {
	rest := t.src[t.pos:]
	if !strings.HasPrefix(rest, "(?") {
		t.depth++
		t.emit("(")
		t.pos++
		return nil
	}
	switch {
	case strings.HasPrefix(rest, "(?P<"):
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return t.errorf("missing >, unterminated name")
		}
		name := rest[4:end]
		if !validGroupName(name) {
			return t.errorf("bad character in group name %q", name)
		}
		t.emit2("(?P<"+name+">", "(?<"+name+">")
		t.depth++
		t.pos += end + 1
	case strings.HasPrefix(rest, "(?P="):
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return t.errorf("missing ), unterminated name")
		}
		name := rest[4:end]
		if !validGroupName(name) {
			return t.errorf("bad character in group name %q", name)
		}
		t.requireNet("backreference (?P=" + name + ")")
		t.net.WriteString(`\k<` + name + `>`)
		t.pos += end + 1
	case strings.HasPrefix(rest, "(?<") && len(rest) > 3 && rest[3] != '=' && rest[3] != '!':
		// Python 3.12 doesn't accept (?<name>; treat like (?P<name>.
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return t.errorf("missing >, unterminated name")
		}
		name := rest[3:end]
		if !validGroupName(name) {
			return t.errorf("bad character in group name %q", name)
		}
		t.emit2("(?P<"+name+">", "(?<"+name+">")
		t.depth++
		t.pos += end + 1
	case strings.HasPrefix(rest, "(?:"):
		t.emit("(?:")
		t.depth++
		t.pos += 3
	case strings.HasPrefix(rest, "(?#"):
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return t.errorf("missing ), unterminated comment")
		}
		t.pos += end + 1
	case strings.HasPrefix(rest, "(?="), strings.HasPrefix(rest, "(?!"):
		t.requireNet("lookahead")
		t.net.WriteString(rest[:3])
		t.depth++
		t.pos += 3
	case strings.HasPrefix(rest, "(?<="), strings.HasPrefix(rest, "(?<!"):
		t.requireNet("lookbehind")
		t.net.WriteString(rest[:4])
		t.depth++
		t.pos += 4
	case strings.HasPrefix(rest, "(?>"):
		t.requireNet("atomic group")
		t.net.WriteString("(?>")
		t.depth++
		t.pos += 3
	case strings.HasPrefix(rest, "(?("):
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return t.errorf("missing ), unterminated condition")
		}
		name := rest[3:end]
		if !validGroupName(name) {
			if _, err := strconv.Atoi(name); err != nil {
				return t.errorf("bad condition %q", name)
			}
		}
		t.requireNet("conditional (?(" + name + ")...)")
		t.net.WriteString("(?(" + name + ")")
		t.depth++
		t.pos += end + 1
	default:
		return t.flags()
	}
	return nil
}

// flags handles (?aiLmsux) and (?aiLmsux-imsx:...).
func (t *pyTranslator) flags() error {
	i := t.pos + 2
	var on, off []byte
	neg := false
	for ; i < len(t.src); i++ {
		c := t.src[i]
		switch {
		case c == '-':
			neg = true
		case strings.IndexByte("aiLmsux", c) >= 0:
			if neg {
				off = append(off, c)
			} else {
				on = append(on, c)
			}
		case c == ')' || c == ':':
			goto done
		default:
			return t.errorf("unknown extension ?%c", c)
		}
	}
	return t.errorf("missing -, : or ) after flags")
done:
	scoped := t.src[i] == ':'
	goFlags := func(fs []byte) string {
		var b strings.Builder
		for _, f := range fs {
			switch f {
			case 'i', 'm', 's':
				b.WriteByte(f)
			case 'a':
				t.ascii = true
			case 'x':
				t.verbose = true
			}
		}
		return b.String()
	}
	onS := goFlags(on)
	offS := ""
	for _, f := range off {
		if f == 'i' || f == 'm' || f == 's' {
			offS += string(f)
		}
		if f == 'x' {
			t.verbose = false
		}
	}
	spec := onS
	if offS != "" {
		spec += "-" + offS
	}
	t.pos = i + 1
	if scoped {
		t.depth++
		if spec == "" {
			t.emit("(?:")
		} else {
			t.emit("(?" + spec + ":")
		}
		return nil
	}
	if spec != "" {
		t.emit("(?" + spec + ")")
	}
	return nil
}

func validGroupName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
