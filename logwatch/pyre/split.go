package pyre

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// A failregex is nearly always "^" + a prefix shared by every filter
// (%(__prefix_line)s: host, daemon, pid…) + a literal ("Failed ") + more
// pieces and literals (" for ", " from ", " port ") with the captures in
// between. Go's backtracker pays for every branch of the whole program on
// every byte. When each literal occurs exactly once in the text left
// after the previous one, a match has to put the literals there, so the
// expression matches if and only if every piece matches all of the text
// between its literals (the last one: from its literal on); and because
// the engine takes the highest-priority path, the groups are those of
// each piece's own highest-priority match. Pieces are small programs on
// short texts, and those without captures are walked by a DFA.
//
// That holds only when no piece looks across a cut: no assertion (^, $,
// \b…) in any piece but the last, and none about what comes before it in
// the last one (^, \A, \b, \B). Any other shape, or a text where a
// literal occurs twice, runs the whole expression.
type litSplit struct {
	lits   []string   // L1…Ln
	pieces []cutPiece // P0…Pn: P0 L1 P1 … Ln Pn
	groups int        // the whole expression's capture count
}

type cutPiece struct {
	// re is \A(?:P)\z, or \A(?:P) for a last piece that does not end
	// with $.
	re *regexp.Regexp
	// dfa answers for re on ASCII text when P has no capture and ends
	// with the text (nil otherwise).
	dfa *byteDFA
}

// minSplitLit keeps the cuts on selective literals.
const minSplitLit = 4

// maxCuts bounds the pieces.
const maxCuts = 4

// newLitSplit returns the cut of the RE2 expression expr (as compiled
// into full), or nil.
func newLitSplit(expr string, full *regexp.Regexp) *litSplit {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 3 || re.Sub[0].Op != syntax.OpBeginText {
		return nil
	}
	subs := re.Sub[1:]
	// Cut while the pieces before the cuts have no capture (a DFA walks
	// them): a piece with captures costs a regexp call of its own, which
	// costs more than the shorter program saves; from the first capture
	// on, the rest is one piece.
	var cuts []int
	from := 0
	for i, s := range subs {
		if len(cuts) == maxCuts {
			break
		}
		if s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0 && len(string(s.Rune)) >= minSplitLit && i > 0 {
			if hasCapture(subs[from:i]) {
				break
			}
			cuts = append(cuts, i)
			from = i + 1
		}
	}
	// Every piece but the last is matched on a cut text: no assertion
	// in it may look at either end.
	for len(cuts) > 0 {
		ok := true
		for _, s := range subs[:cuts[len(cuts)-1]] {
			ok = ok && noAssertion(s)
		}
		if ok {
			break
		}
		cuts = cuts[:len(cuts)-1]
	}
	if len(cuts) == 0 {
		return nil
	}
	last := subs[cuts[len(cuts)-1]+1:]
	for _, s := range last {
		if !noLookBehind(s) {
			return nil
		}
	}
	join := func(subs []*syntax.Regexp) string {
		var b strings.Builder
		for _, s := range subs {
			b.WriteString("(?:")
			writeRE(&b, s)
			b.WriteString(")")
		}
		return b.String()
	}
	sp := &litSplit{groups: full.NumSubexp()}
	var names []string
	from = 0
	for j := 0; j <= len(cuts); j++ {
		to := len(subs)
		if j < len(cuts) {
			to = cuts[j]
			sp.lits = append(sp.lits, string(subs[to].Rune))
		}
		part, anchored := subs[from:to], true
		if j == len(cuts) {
			// The last piece is anchored at the end only when the
			// expression is (then the DFA can take it).
			anchored = len(part) > 0 && part[len(part)-1].Op == syntax.OpEndText
			if anchored {
				part = part[:len(part)-1]
			}
			for _, s := range part {
				anchored = anchored && noAssertion(s)
			}
			if !anchored {
				part = subs[from:to]
			}
		}
		body := join(part)
		src := `\A(?:` + body + `)`
		if anchored {
			src += `\z`
		}
		r, err := regexp.Compile(src)
		if err != nil {
			return nil
		}
		p := cutPiece{re: r}
		if anchored && r.NumSubexp() == 0 {
			p.dfa = newByteDFA(body)
		}
		names = append(names, r.SubexpNames()[1:]...)
		sp.pieces = append(sp.pieces, p)
		if j < len(cuts) {
			from = cuts[j] + 1
		}
	}
	// The groups must be the whole expression's, in the same order.
	fullNames := full.SubexpNames()[1:]
	if len(names) != len(fullNames) {
		return nil
	}
	for i := range names {
		if names[i] != fullNames[i] {
			return nil
		}
	}
	return sp
}

func hasCapture(subs []*syntax.Regexp) bool {
	for _, s := range subs {
		if s.Op == syntax.OpCapture || hasCapture(s.Sub) {
			return true
		}
	}
	return false
}

// noAssertion: no ^ $ \A \z \b \B anywhere in re.
func noAssertion(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return false
	}
	for _, s := range re.Sub {
		if !noAssertion(s) {
			return false
		}
	}
	return true
}

// noLookBehind: no assertion about the text before a position.
func noLookBehind(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return false
	}
	for _, s := range re.Sub {
		if !noLookBehind(s) {
			return false
		}
	}
	return true
}

// find returns what FindStringSubmatchIndex of the whole expression
// returns, and decided false when the text must go to the whole
// expression (a literal occurs twice where it is looked for).
func (sp *litSplit) find(s string) (loc []int, decided bool) {
	// Where each piece starts and ends.
	var bounds [2 * (maxCuts + 1)]int
	from := 0
	for j, lit := range sp.lits {
		i := strings.Index(s[from:], lit)
		if i < 0 {
			return nil, true
		}
		if strings.Contains(s[from+i+1:], lit) {
			return nil, false
		}
		bounds[2*j], bounds[2*j+1] = from, from+i
		from += i + len(lit)
	}
	n := len(sp.lits)
	bounds[2*n], bounds[2*n+1] = from, len(s)
	g := 1
	for j, p := range sp.pieces {
		text := s[bounds[2*j]:bounds[2*j+1]]
		if p.dfa != nil {
			ok, known := p.dfa.full(text)
			if !known {
				ok = p.re.MatchString(text)
			}
			if !ok {
				return nil, true
			}
			continue
		}
		pl := p.re.FindStringSubmatchIndex(text)
		if pl == nil {
			return nil, true
		}
		if j == len(sp.pieces)-1 {
			bounds[2*j+1] = bounds[2*j] + pl[1]
		}
		if loc == nil && len(pl) == 2*(sp.groups+1) {
			// The usual shape: one piece holds every group. Its
			// result becomes the whole one (shifted below; the whole
			// match's span is written last).
			loc = pl
		} else if loc == nil {
			loc = make([]int, 2*(sp.groups+1))
		}
		for k := 2; k < len(pl); k += 2 {
			// Read before writing: loc may be pl (then g == k/2).
			a, b := pl[k], pl[k+1]
			loc[2*g], loc[2*g+1] = -1, -1
			if a >= 0 {
				loc[2*g], loc[2*g+1] = a+bounds[2*j], b+bounds[2*j]
			}
			g++
		}
	}
	if loc == nil {
		loc = make([]int, 2*(sp.groups+1))
	}
	loc[0], loc[1] = 0, bounds[2*n+1]
	return loc, true
}

// writeRE spells a parsed expression back for regexp.Compile. syntax's
// own String works out which classes are closed under case folding by
// folding every rune of every class: seconds for a filter full of [^\s]
// with Unicode ranges. Here every piece is spelled explicitly instead
// (classes as ranges, flags scoped to the node that has them).
func writeRE(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpNoMatch:
		b.WriteString(`[^\x00-\x{10FFFF}]`)
	case syntax.OpEmptyMatch:
		b.WriteString(`(?:)`)
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			b.WriteString(`(?i:`)
		}
		for _, r := range re.Rune {
			writeRune(b, r)
		}
		if re.Flags&syntax.FoldCase != 0 {
			b.WriteString(`)`)
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			b.WriteString(`[^\x00-\x{10FFFF}]`)
			return
		}
		b.WriteByte('[')
		for i := 0; i < len(re.Rune); i += 2 {
			writeRune(b, re.Rune[i])
			if re.Rune[i+1] != re.Rune[i] {
				b.WriteByte('-')
				writeRune(b, re.Rune[i+1])
			}
		}
		b.WriteByte(']')
	case syntax.OpAnyCharNotNL:
		b.WriteString(`(?-s:.)`)
	case syntax.OpAnyChar:
		b.WriteString(`(?s:.)`)
	case syntax.OpBeginLine:
		b.WriteString(`(?m:^)`)
	case syntax.OpEndLine:
		b.WriteString(`(?m:$)`)
	case syntax.OpBeginText:
		b.WriteString(`\A`)
	case syntax.OpEndText:
		b.WriteString(`\z`)
	case syntax.OpWordBoundary:
		b.WriteString(`\b`)
	case syntax.OpNoWordBoundary:
		b.WriteString(`\B`)
	case syntax.OpCapture:
		if re.Name != "" {
			b.WriteString(`(?P<` + re.Name + `>`)
		} else {
			b.WriteByte('(')
		}
		writeRE(b, re.Sub[0])
		b.WriteByte(')')
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		b.WriteString(`(?:`)
		writeRE(b, re.Sub[0])
		b.WriteByte(')')
		switch re.Op {
		case syntax.OpStar:
			b.WriteByte('*')
		case syntax.OpPlus:
			b.WriteByte('+')
		case syntax.OpQuest:
			b.WriteByte('?')
		default:
			if re.Max < 0 {
				fmt.Fprintf(b, "{%d,}", re.Min)
			} else {
				fmt.Fprintf(b, "{%d,%d}", re.Min, re.Max)
			}
		}
		if re.Flags&syntax.NonGreedy != 0 {
			b.WriteByte('?')
		}
	case syntax.OpConcat:
		b.WriteString(`(?:`)
		for _, s := range re.Sub {
			writeRE(b, s)
		}
		b.WriteByte(')')
	case syntax.OpAlternate:
		b.WriteString(`(?:`)
		for i, s := range re.Sub {
			if i > 0 {
				b.WriteByte('|')
			}
			writeRE(b, s)
		}
		b.WriteByte(')')
	default:
		// An operator this spelling does not know: make the piece
		// fail to compile, so the expression is not cut.
		b.WriteString(`(`)
	}
}

func writeRune(b *strings.Builder, r rune) {
	if r < 0x80 && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ' ') {
		b.WriteRune(r)
		return
	}
	fmt.Fprintf(b, `\x{%x}`, r)
}
