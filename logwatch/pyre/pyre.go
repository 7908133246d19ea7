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

	"github.com/dlclark/regexp2"
)

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
