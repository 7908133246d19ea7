package logwatch

import (
	"regexp/syntax"
	"strings"
)

// requiredLiteral returns the longest case-sensitive literal that every
// match of the RE2 expression must contain, or "" if there is none. It is
// the cheap pre-check that makes the common miss (a line that is not a
// failure) cost one strings.Contains instead of a regex run.
func requiredLiteral(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	best := ""
	for _, l := range literalsOf(re.Simplify()) {
		if len(l) > len(best) {
			best = l
		}
	}
	// Very short literals reject almost nothing and cost a scan.
	if len(best) < 3 {
		return ""
	}
	return best
}

// literalsOf lists strings that must each appear in any match of re.
func literalsOf(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil
		}
		return []string{string(re.Rune)}
	case syntax.OpCapture:
		return literalsOf(re.Sub[0])
	case syntax.OpPlus:
		return literalsOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalsOf(re.Sub[0])
		}
	case syntax.OpConcat:
		// Adjacent literal pieces join into one longer run.
		var out []string
		var run strings.Builder
		flush := func() {
			if run.Len() > 0 {
				out = append(out, run.String())
				run.Reset()
			}
		}
		for _, sub := range re.Sub {
			s := sub
			for s.Op == syntax.OpCapture {
				s = s.Sub[0]
			}
			if s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0 {
				run.WriteString(string(s.Rune))
				continue
			}
			flush()
			out = append(out, literalsOf(sub)...)
		}
		flush()
		return out
	case syntax.OpAlternate:
		// Common to all branches: only when every branch requires the
		// same literal.
		var common []string
		for i, sub := range re.Sub {
			ls := literalsOf(sub)
			if i == 0 {
				common = ls
				continue
			}
			var keep []string
			for _, c := range common {
				for _, l := range ls {
					if strings.Contains(l, c) {
						keep = append(keep, c)
						break
					}
				}
			}
			common = keep
		}
		return common
	}
	return nil
}
