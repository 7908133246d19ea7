// Package pyre compiles the Python regular expressions of fail2ban
// filters for Go: each is translated to RE2 when it needs nothing RE2
// lacks, to regexp2 (backtracking, with a per-line time budget) when it
// does, and searched through the shortcuts that make the common line
// cheap (required literals, ASCII spellings, cuts at a literal walked by
// DFAs). It imports nothing of the module.
package pyre

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// Python's re and Go's regexp disagree on syntax (named groups,
// backreferences, lookaround, conditionals) and on the meaning of the
// Perl classes (\w, \d, \s are Unicode in Python 3, ASCII in RE2). fail2ban
// filters are written for Python, so every expression is translated here.
// The translation yields two spellings: one for RE2 (regexp), used
// whenever the expression needs nothing RE2 lacks because RE2 runs in
// linear time, and one for regexp2 (a backtracking .NET-syntax engine)
// for the few filters that use lookaround, backreferences or conditionals.

// ErrRegex is wrapped by every regex translation or compile error.
var ErrRegex = errors.New("invalid regular expression")

// DefaultMatchTimeout bounds the backtracking (regexp2) searches of one
// line, all of them together: a line that takes longer is counted as timed
// out and its remaining backtracking searches are misses, so a hostile
// line delays the lines behind it (perhaps a real failure) by at most this.
const DefaultMatchTimeout = 20 * time.Millisecond

// regexp2 checks its timeouts against a clock a goroutine advances every
// period (100 ms by default), and adds one period to every deadline: a
// 20 ms MatchTimeout gave up after 120-220 ms (50 hostile lines delayed a
// real ban by 10.4 s). With a 1 ms period a search given d gives up
// between d and d+MatchSlack (measured on a loaded 2-core machine: d+2 to
// d+5 ms). The clock runs only while searches with timeouts are being
// made, and 1 s after: ~1,000 wake-ups a second then.
const (
	matchClock = time.Millisecond
	MatchSlack = 6 * time.Millisecond
)

// matchTiers are the MatchTimeouts a backtracking expression is compiled
// with (a regexp2.Regexp is shared by goroutines, so its timeout cannot
// change per search): a search takes the largest d with d+MatchSlack
// within what is left of its line's budget, and none is run when even
// the smallest does not fit.
var matchTiers = []time.Duration{DefaultMatchTimeout - MatchSlack - 2*time.Millisecond, 8 * time.Millisecond, 6 * time.Millisecond, 4 * time.Millisecond, 2 * time.Millisecond, time.Millisecond}

func init() { regexp2.SetTimeoutCheckPeriod(matchClock) }

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

// Regex is a compiled translated expression on either engine.
type Regex struct {
	src string
	re2 *regexp.Regexp
	// asc is re2 with its Unicode classes cut down to ASCII, for ASCII
	// input: the same program with the same answers there (every class
	// test on an ASCII byte gives the same result), but class tests are
	// a fraction of the cost. nil when re2 has no such class.
	asc *regexp.Regexp
	// split and splitAsc cut re2 and asc at a literal (see litSplit),
	// nil when their shape does not allow it.
	split, splitAsc *litSplit
	net             *regexp2.Regexp
	// nets is net compiled with each of matchTiers.
	nets  []*regexp2.Regexp
	names []string // group names by index (index 0: whole match)
	why   string
	// reqs are substrings every match contains (most selective first): a
	// line lacking one is a miss without running the engine.
	reqs []Requirement
}

// Match is one search result: byte offsets of the whole match and the
// named groups that took part in it.
type Match struct {
	Start, End int
	Groups     map[string]string
	spans      []namedSpan
	spanBuf    [4]namedSpan // spans' first backing array: no allocation
	// G1, G1End: span of group 1 (date templates use it), -1 when unset.
	G1, G1End int
}

type namedSpan struct {
	name string
	a, b int
}

func (m *Match) set(name string, s string, a, b int) {
	if m.Groups == nil {
		m.Groups = make(map[string]string, 4)
		m.spans = m.spanBuf[:0]
	}
	m.Groups[name] = s
	for i := range m.spans {
		if m.spans[i].name == name {
			m.spans[i] = namedSpan{name, a, b}
			return
		}
	}
	m.spans = append(m.spans, namedSpan{name, a, b})
}

// Span returns the byte span of a named group that took part.
func (m *Match) Span(name string) (int, int, bool) {
	for _, sp := range m.spans {
		if sp.name == name {
			return sp.a, sp.b, true
		}
	}
	return 0, 0, false
}

// ErrTimeout is returned by search when regexp2 gave up on a line.
var ErrTimeout = errors.New("regex match timed out")

// Compile translates and compiles a Python expression. multiline sets
// Python's re.MULTILINE (fail2ban sets it when maxlines > 1).
func Compile(src string, multiline bool) (*Regex, error) {
	tr, err := translatePy(src)
	if err != nil {
		return nil, err
	}
	r := &Regex{src: src, why: tr.why}
	if !tr.needNet {
		expr := tr.re2
		if multiline {
			expr = "(?m)" + expr
		}
		re, err := regexp.Compile(expr)
		if err == nil {
			r.re2 = re
			r.names = re.SubexpNames()
			if a := asciiClasses.Replace(expr); a != expr {
				if ra, err := regexp.Compile(a); err == nil && ra.NumSubexp() == re.NumSubexp() {
					r.asc, r.splitAsc = ra, newLitSplit(a, ra)
				}
			}
			// With Unicode classes the cut is for ASCII lines only:
			// spelling the huge classes back costs more at load than
			// the rare non-ASCII line would save.
			if r.asc == nil {
				r.split = newLitSplit(expr, re)
			}
			r.reqs = requirements(expr)
			return r, nil
		}
		// RE2 can still refuse (e.g. nesting limits): try the other engine.
		r.why = "RE2 refused: " + err.Error()
	}
	opts := regexp2.RegexOptions(regexp2.None)
	if multiline {
		opts |= regexp2.Multiline
	}
	re, err := regexp2.Compile(tr.net, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot compile %q: %v", ErrRegex, src, err)
	}
	for i, d := range matchTiers {
		if i > 0 {
			// Compiles: it did above.
			re, _ = regexp2.Compile(tr.net, opts)
		}
		re.MatchTimeout = d
		r.nets = append(r.nets, re)
	}
	r.net = r.nets[0]
	nums := re.GetGroupNumbers()
	maxn := 0
	for _, n := range nums {
		maxn = max(maxn, n)
	}
	r.names = make([]string, maxn+1)
	for _, n := range nums {
		name := re.GroupNameFromNumber(n)
		if _, err := strconv.Atoi(name); err == nil {
			name = ""
		}
		r.names[n] = name
	}
	return r, nil
}

// asciiClasses rewrites the translation's Unicode sets (only setFor
// writes \p{…}: the translator refuses \p in a pattern) to their ASCII
// members.
var asciiClasses = strings.NewReplacer(pySpaceSet, `\t-\r\x1c-\x20`, pyWordSet, `0-9A-Za-z_`, pyDigitSet, `0-9`)

// IsASCII reports whether s has no byte above 0x7f, 8 bytes at a time.
func IsASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if w&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// HasGroup reports whether the expression defines the named group.
func (r *Regex) HasGroup(name string) bool {
	for _, n := range r.names {
		if n == name {
			return true
		}
	}
	return false
}

// Source is the Python expression r was compiled from.
func (r *Regex) Source() string { return r.src }

// Why says what made r need the backtracking engine, for `xdpban regex
// -v`; empty when it runs on RE2.
func (r *Regex) Why() string { return r.why }

// Requirements are substrings every match contains, most selective first:
// a line lacking one cannot match.
func (r *Regex) Requirements() []Requirement { return r.reqs }

// UsesBacktracking reports whether the expression runs on regexp2.
func (r *Regex) UsesBacktracking() bool { return r.net != nil }

// Search finds the leftmost match in s. A nil match and nil error is a
// miss; ErrTimeout means regexp2 gave up.
func (r *Regex) Search(s string) (*Match, error) {
	return r.SearchKnown(s, false, false, time.Time{})
}

// netFor returns the backtracking engine whose timeout fits in what is
// left, at now, of a line's budget that started at start (zero: the whole
// budget), or nil when nothing fits.
func (r *Regex) netFor(start time.Time) *regexp2.Regexp {
	if start.IsZero() {
		return r.nets[0]
	}
	left := DefaultMatchTimeout - time.Since(start)
	for i, d := range matchTiers {
		if d+MatchSlack <= left {
			return r.nets[i]
		}
	}
	return nil
}

// SearchKnown is search when the caller may already know that s meets
// the first requirement (firstMet: the others are not looked for either,
// as they seldom reject a line that meets the most selective one) or
// that s is ASCII. A backtracking search gets what is left of the budget
// of the line whose scan began at start (zero: a budget of its own).
func (r *Regex) SearchKnown(s string, firstMet, ascii bool, start time.Time) (*Match, error) {
	if !firstMet {
		for _, q := range r.reqs {
			if !q.In(s) {
				return nil, nil
			}
		}
	}
	if r.re2 != nil {
		re, sp := r.re2, r.split
		if r.asc != nil && (ascii || IsASCII(s)) {
			re, sp = r.asc, r.splitAsc
		}
		var loc []int
		decided := false
		if sp != nil {
			loc, decided = sp.find(s)
		}
		if !decided {
			loc = re.FindStringSubmatchIndex(s)
		}
		if loc == nil {
			return nil, nil
		}
		m := &Match{Start: loc[0], End: loc[1], G1: -1, G1End: -1}
		if len(loc) > 3 && loc[2] >= 0 {
			m.G1, m.G1End = loc[2], loc[3]
		}
		for i, name := range r.names {
			if name == "" || loc[2*i] < 0 {
				continue
			}
			m.set(name, s[loc[2*i]:loc[2*i+1]], loc[2*i], loc[2*i+1])
		}
		return m, nil
	}
	net := r.netFor(start)
	if net == nil {
		return nil, fmt.Errorf("%w: the line's %s budget is spent", ErrTimeout, DefaultMatchTimeout)
	}
	rs := []rune(s)
	mm, err := net.FindRunesMatch(rs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	if mm == nil {
		return nil, nil
	}
	// Byte offsets of the runes in s itself: string(rs) is not s when s
	// holds invalid UTF-8 (each bad byte became a 3-byte U+FFFD), so
	// offsets re-encoded from the runes would point past the line.
	offs := make([]int, 0, len(rs)+1)
	for i := range s {
		offs = append(offs, i)
	}
	offs = append(offs, len(s))
	byteOff := func(ri int) int { return offs[ri] }
	m := &Match{Start: byteOff(mm.Index), End: byteOff(mm.Index + mm.Length), G1: -1, G1End: -1}
	for i, g := range mm.Groups() {
		if len(g.Captures) == 0 {
			continue
		}
		a, b := byteOff(g.Index), byteOff(g.Index+g.Length)
		if i == 1 {
			m.G1, m.G1End = a, b
		}
		if g.Name == "" {
			continue
		}
		if _, err := strconv.Atoi(g.Name); err == nil {
			continue
		}
		m.set(g.Name, s[a:b], a, b)
	}
	return m, nil
}
