package pyre

import (
	"fmt"
	"regexp"
	"slices"
)

// ShortcutStats counts what CheckASCII and CheckCut compared.
type ShortcutStats struct {
	ASCIICompared, ASCIIMatched int // lines through both spellings; matches among them
	Cuts                        int // spellings cut at a literal
	CutDecided, CutMatched      int // lines the cut decided; matches among them
	DFALines                    int // lines whose pieces went through their DFAs
}

// CheckASCII runs every ASCII line through both of r's spellings, the
// Unicode one and the ASCII one it takes for ASCII input, and returns the
// first line on which their matches or group spans differ. The shortcuts
// are this package's, but whether they hold is seen on real filters and
// logs, which live above it: the filter package's tests call this.
func (r *Regex) CheckASCII(lines []string, st *ShortcutStats) error {
	if r.asc == nil {
		return nil
	}
	for _, l := range lines {
		if !IsASCII(l) {
			continue
		}
		want := r.re2.FindStringSubmatchIndex(l)
		got := r.asc.FindStringSubmatchIndex(l)
		if !slices.Equal(want, got) {
			return fmt.Errorf("%q on %q: ASCII spelling gives %v, the Unicode one %v", r.src, l, got, want)
		}
		st.ASCIICompared++
		if want != nil {
			st.ASCIIMatched++
		}
	}
	return nil
}

// CheckCut runs every line through each of r's spellings cut at a literal
// and whole, and returns the first line on which a cut that decided gives
// another match or other groups than the whole expression; every 64th
// line also goes, in pieces, through each piece's DFA against the piece's
// regexp. For tests, as CheckASCII.
func (r *Regex) CheckCut(lines []string, st *ShortcutStats) error {
	for _, v := range []struct {
		re *regexp.Regexp
		sp *litSplit
	}{{r.re2, r.split}, {r.asc, r.splitAsc}} {
		if v.sp == nil {
			continue
		}
		st.Cuts++
		for li, l := range lines {
			if v.re == r.asc && !IsASCII(l) {
				continue
			}
			for _, p := range v.sp.pieces {
				if p.dfa == nil || li%64 != 0 {
					continue
				}
				st.DFALines++
				for k := 0; k < len(l) && k < 60; k += 5 {
					for e := k; e <= len(l) && e < k+40; e++ {
						m, ok := p.dfa.full(l[k:e])
						if ok && m != p.re.MatchString(l[k:e]) {
							return fmt.Errorf("piece %s on %q: DFA says %v", p.re, l[k:e], m)
						}
					}
				}
			}
			got, dec := v.sp.find(l)
			if !dec {
				continue
			}
			st.CutDecided++
			want := v.re.FindStringSubmatchIndex(l)
			if !slices.Equal(got, want) {
				return fmt.Errorf("cut at %q, %q on %q: cut gives %v, whole %v", v.sp.lits, r.src, l, got, want)
			}
			if want != nil {
				st.CutMatched++
			}
		}
	}
	return nil
}
