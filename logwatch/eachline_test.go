package logwatch

import (
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// TestEachLine compares eachLine with a plain split on random texts
// (empty lines, no final newline, lines around the length cap and the
// chunk size) read in random pieces.
func TestEachLine(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type got struct {
		line    string
		tooLong bool
	}
	for round := 0; round < 400; round++ {
		maxLine := 1 + rng.IntN(40)
		if round%10 == 0 {
			maxLine = lineChunk + rng.IntN(100)
		}
		var b strings.Builder
		for k := rng.IntN(30); k > 0; k-- {
			n := rng.IntN(2 * maxLine)
			if round%10 == 0 && rng.IntN(3) == 0 {
				n = lineChunk - 50 + rng.IntN(200)
			}
			b.WriteString(strings.Repeat(string(rune('a'+rng.IntN(26))), n))
			if k > 1 || rng.IntN(2) == 0 {
				b.WriteByte('\n')
			}
		}
		text := b.String()
		var want []got
		if text != "" {
			parts := strings.Split(text, "\n")
			if strings.HasSuffix(text, "\n") {
				parts = parts[:len(parts)-1]
			}
			for _, p := range parts {
				if len(p) > maxLine {
					want = append(want, got{"", true})
				} else {
					want = append(want, got{p, false})
				}
			}
		}
		var r io.Reader = strings.NewReader(text)
		switch round % 3 {
		case 1:
			if round%10 == 0 {
				break // large: one byte at a time is just slow
			}
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		}
		var have []got
		if err := eachLine(r, maxLine, func(l string, tooLong bool) { have = append(have, got{l, tooLong}) }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(have, want) {
			t.Fatalf("round %d (max %d) on %q:\n got %v\nwant %v", round, maxLine, text, have, want)
		}
	}
}
