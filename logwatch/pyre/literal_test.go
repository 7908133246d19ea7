package pyre

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestLitSet compares the one-pass search with strings.Contains on every
// substring-sized cut of generated text, for sets with short, long,
// overlapping and colliding strings.
func TestLitSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const alpha = "ab F:iled "
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		return string(b)
	}
	for round := 0; round < 300; round++ {
		var pats []string
		for k := 1 + rng.IntN(6); k > 0; k-- {
			pats = append(pats, word(2+rng.IntN(8)))
		}
		if round == 0 {
			pats = []string{"Failed ", "nvalid user ", "llegal user ", " not allowed because account is locked"}
		}
		owners := make([]uint64, len(pats))
		for k := range owners {
			owners[k] = 1 << rng.IntN(4)
		}
		s := NewLitSet(pats, owners)
		for i := 0; i < 200; i++ {
			text := word(rng.IntN(60))
			want := false
			var wantMask uint64
			for k, p := range pats {
				if strings.Contains(text, p) {
					want = true
					wantMask |= owners[k]
				}
			}
			if got := s.in(text); got != want {
				t.Fatalf("set %q in %q: %v, want %v", pats, text, got, want)
			}
			if got := s.Mask(text); got != wantMask {
				t.Fatalf("set %q (owners %v) on %q: mask %b, want %b", pats, owners, text, got, wantMask)
			}
		}
	}
}
