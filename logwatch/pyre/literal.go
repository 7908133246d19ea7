package pyre

import (
	"regexp/syntax"
	"sort"
	"strings"
)

// A requirement is a set of alternatives one of which every match of an
// expression contains ("nvalid user " or "llegal user "). An expression's
// requirements, all checked with strings.Contains before the engine
// runs, make the common miss (a line that is not a failure) cost a few
// substring scans instead of a regex run.
type Requirement []string

func (r Requirement) In(s string) bool {
	for _, alt := range r {
		if strings.Contains(s, alt) {
			return true
		}
	}
	return false
}

// minLen is the length of the shortest alternative: how selective the
// requirement is.
func (r Requirement) minLen() int {
	m := -1
	for _, a := range r {
		if m < 0 || len(a) < m {
			m = len(a)
		}
	}
	return m
}

// maxAlternatives bounds the cross product of small classes and
// alternations a run of literals expands into.
const maxAlternatives = 16

// requirements returns the expression's requirements, most selective
// first; those whose shortest alternative is under 3 bytes reject almost
// nothing and are dropped.
func requirements(expr string) []Requirement {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	var out []Requirement
	for _, r := range reqsOf(re.Simplify()) {
		if r.minLen() >= 3 {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].minLen() > out[j].minLen() })
	return out
}

// requiredLiteral is the single most selective literal (or "").
func requiredLiteral(expr string) string {
	for _, r := range requirements(expr) {
		if len(r) == 1 {
			return r[0]
		}
	}
	return ""
}

// alternativesOf returns the finite set of strings re matches, if it is
// a small one (a literal, a small class, an alternation of those).
func alternativesOf(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpCharClass:
		n := 0
		for i := 0; i < len(re.Rune); i += 2 {
			n += int(re.Rune[i+1]-re.Rune[i]) + 1
		}
		if n > 4 {
			return nil, false
		}
		var out []string
		for i := 0; i < len(re.Rune); i += 2 {
			for c := re.Rune[i]; c <= re.Rune[i+1]; c++ {
				out = append(out, string(c))
			}
		}
		return out, true
	case syntax.OpCapture:
		return alternativesOf(re.Sub[0])
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			a, ok := alternativesOf(s)
			if !ok {
				return nil, false
			}
			out = append(out, a...)
			if len(out) > maxAlternatives {
				return nil, false
			}
		}
		return out, true
	case syntax.OpConcat:
		cur := []string{""}
		for _, s := range re.Sub {
			a, ok := alternativesOf(s)
			if !ok || len(cur)*len(a) > maxAlternatives {
				return nil, false
			}
			cur = cross(cur, a)
		}
		return cur, true
	}
	return nil, false
}

func cross(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return out
}

// reqsOf lists requirements every match of re satisfies.
func reqsOf(re *syntax.Regexp) []Requirement {
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return reqsOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return reqsOf(re.Sub[0])
		}
	case syntax.OpLiteral, syntax.OpCharClass:
		if a, ok := alternativesOf(re); ok {
			return []Requirement{a}
		}
	case syntax.OpAlternate:
		if a, ok := alternativesOf(re); ok {
			return []Requirement{a}
		}
		// One requirement per branch, joined: the best of each.
		var joined Requirement
		for _, s := range re.Sub {
			rs := reqsOf(s)
			best := -1
			for i, r := range rs {
				if best < 0 || r.minLen() > rs[best].minLen() {
					best = i
				}
			}
			if best < 0 {
				return nil
			}
			joined = append(joined, rs[best]...)
			if len(joined) > maxAlternatives {
				return nil
			}
		}
		return []Requirement{joined}
	case syntax.OpConcat:
		// Adjacent finite pieces multiply into longer alternatives.
		var out []Requirement
		cur := []string{""}
		flush := func() {
			if len(cur) > 0 && cur[0] != "" {
				out = append(out, Requirement(cur))
			}
			cur = []string{""}
		}
		for _, sub := range re.Sub {
			if a, ok := alternativesOf(sub); ok && len(cur)*len(a) <= maxAlternatives {
				cur = cross(cur, a)
				continue
			}
			flush()
			out = append(out, reqsOf(sub)...)
		}
		flush()
		return out
	}
	return nil
}

// LitSet finds whether a text contains any of a set of strings in one
// pass (Wu-Manber with 2-byte blocks): the window of the shortest
// string's length slides by as much as the block at its end allows, so
// a line with none of the strings costs about len/shortest table
// look-ups instead of one substring scan per string.
type LitSet struct {
	pats []string
	// owners[i] has a bit for each expression pats[i] is a requirement
	// of.
	owners []uint64
	m      int // length of the shortest string (>= 2)
	// shift[h] is how far the window may move when the block ending it
	// hashes to h; 0: some string's first m bytes may end here.
	shift  [litHashSize]uint8
	bucket [litHashSize][]uint16 // strings to verify when shift is 0
}

const litHashSize = 1 << 12

func litHash(a, b byte) int { return (int(a)<<5 ^ int(b)) & (litHashSize - 1) }

// NewLitSet returns nil when some string is shorter than 2 bytes (a
// block) or there are too many to index. owners may be nil.
func NewLitSet(pats []string, owners []uint64) *LitSet {
	if len(pats) == 0 || len(pats) > 1<<16 {
		return nil
	}
	m := -1
	for _, p := range pats {
		if m < 0 || len(p) < m {
			m = len(p)
		}
	}
	if m < 2 {
		return nil
	}
	// Shifts above 255 do not fit; a shorter window is still correct.
	m = min(m, 255)
	s := &LitSet{pats: pats, owners: owners, m: m}
	for i := range s.shift {
		s.shift[i] = uint8(m - 1)
	}
	for i, p := range pats {
		for j := 1; j < m; j++ {
			h := litHash(p[j-1], p[j])
			if sh := uint8(m - 1 - j); sh < s.shift[h] {
				s.shift[h] = sh
			}
		}
		h := litHash(p[m-2], p[m-1])
		s.bucket[h] = append(s.bucket[h], uint16(i))
	}
	return s
}

// Mask ORs the owners of every string text contains.
func (s *LitSet) Mask(text string) uint64 {
	var out uint64
	for pos := s.m - 1; pos < len(text); {
		h := litHash(text[pos-1], text[pos])
		if sh := s.shift[h]; sh > 0 {
			pos += int(sh)
			continue
		}
		start := pos - s.m + 1
		for _, i := range s.bucket[h] {
			if strings.HasPrefix(text[start:], s.pats[i]) {
				out |= s.owners[i]
			}
		}
		pos++
	}
	return out
}

// in reports whether text contains one of the strings.
func (s *LitSet) in(text string) bool {
	for pos := s.m - 1; pos < len(text); {
		h := litHash(text[pos-1], text[pos])
		if sh := s.shift[h]; sh > 0 {
			pos += int(sh)
			continue
		}
		start := pos - s.m + 1
		for _, i := range s.bucket[h] {
			if strings.HasPrefix(text[start:], s.pats[i]) {
				return true
			}
		}
		pos++
	}
	return false
}
