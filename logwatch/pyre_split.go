package logwatch

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// A failregex is nearly always "^" + a prefix shared by every filter
// (%(__prefix_line)s: host, daemon, pid…) + a literal ("Failed ") + the
// rest with the captures. Go's backtracker pays for every branch of the
// prefix on every line. When the literal occurs exactly once in a line,
// the match has to put it there, so the expression matches if and only if
// the prefix matches all the text before it and the rest matches from
// just after it; and the prefix, free of captures, has no say in the
// groups. Both halves are smaller programs on shorter texts.
//
// That holds only when neither half looks across the cut: the prefix has
// no capture and no assertion (^, $, \b…), the rest no assertion about
// what comes before it (^, \A, \b, \B). Any other shape, or a line where
// the literal occurs twice, runs the whole expression.
type litSplit struct {
	lit string
	pre *regexp.Regexp // \A(?:prefix)\z
	// preDFA answers for pre on an ASCII prefix (nil: too many states).
	preDFA *byteDFA
	rest   *regexp.Regexp // \A(?:rest)
}

// minSplitLit keeps the cut on a selective literal.
const minSplitLit = 4

// newLitSplit returns the split of the RE2 expression expr (as compiled
// into full), or nil.
func newLitSplit(expr string, full *regexp.Regexp) *litSplit {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 3 || re.Sub[0].Op != syntax.OpBeginText {
		return nil
	}
	k := -1
	for i := 2; i < len(re.Sub)-1; i++ {
		s := re.Sub[i]
		if s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0 && len(string(s.Rune)) >= minSplitLit {
			k = i
			break
		}
	}
	if k < 0 {
		return nil
	}
	pre, rest := re.Sub[1:k], re.Sub[k+1:]
	for _, s := range pre {
		if !splitSafe(s, true) {
			return nil
		}
	}
	for _, s := range rest {
		if !splitSafe(s, false) {
			return nil
		}
	}
	join := func(subs []*syntax.Regexp) string {
		var b strings.Builder
		for _, s := range subs {
			// A sub's own spelling leaves out the parentheses its
			// place in the concatenation made unneeded (a|b).
			b.WriteString("(?:" + s.String() + ")")
		}
		return b.String()
	}
	preExpr := join(pre)
	p, err := regexp.Compile(`\A(?:` + preExpr + `)\z`)
	if err != nil {
		return nil
	}
	r, err := regexp.Compile(`\A(?:` + join(rest) + `)`)
	if err != nil {
		return nil
	}
	// The groups must be the whole expression's, in the same order.
	if p.NumSubexp() != 0 || r.NumSubexp() != full.NumSubexp() {
		return nil
	}
	names, fullNames := r.SubexpNames(), full.SubexpNames()
	for i := range names {
		if names[i] != fullNames[i] {
			return nil
		}
	}
	return &litSplit{lit: string(re.Sub[k].Rune), pre: p, preDFA: newByteDFA(preExpr), rest: r}
}

// splitSafe: inPrefix, no capture and no assertion at all; otherwise no
// assertion about the text before.
func splitSafe(re *syntax.Regexp, inPrefix bool) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return false
	case syntax.OpEndLine, syntax.OpEndText, syntax.OpCapture:
		if inPrefix {
			return false
		}
	}
	for _, s := range re.Sub {
		if !splitSafe(s, inPrefix) {
			return false
		}
	}
	return true
}

// find returns what FindStringSubmatchIndex of the whole expression
// returns, and decided false when the line must go to the whole
// expression (the literal occurs more than once).
func (sp *litSplit) find(s string) (loc []int, decided bool) {
	i := strings.Index(s, sp.lit)
	if i < 0 {
		return nil, true
	}
	if strings.Contains(s[i+1:], sp.lit) {
		return nil, false
	}
	ok, known := false, false
	if sp.preDFA != nil {
		ok, known = sp.preDFA.full(s[:i])
	}
	if !known {
		ok = sp.pre.MatchString(s[:i])
	}
	if !ok {
		return nil, true
	}
	off := i + len(sp.lit)
	loc = sp.rest.FindStringSubmatchIndex(s[off:])
	if loc == nil {
		return nil, true
	}
	for j := range loc {
		if loc[j] >= 0 {
			loc[j] += off
		}
	}
	loc[0] = 0
	return loc, true
}
