package logwatch

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/loggen"
)

// TestFastDates checks that every hand-written date matcher agrees with
// its template's regex wherever it decides, on generated log lines and on
// random mutations of their first bytes, and that it does decide on the
// canonical lines (or it would be dead code).
func TestFastDates(t *testing.T) {
	var buf bytes.Buffer
	if _, err := loggen.Generate(&buf, loggen.Options{Lines: 2000, Span: 400 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	base := strings.Split(strings.TrimSpace(buf.String()), "\n")
	base = append(base,
		"Jan  1 00:00:00 h sshd[1]: x", "Dec 31 23:59:59 h x", "Feb 29 12:00:00",
		"Nov 24 06:25:13 2026 h x", "Nov 24 06:25:13.123 h", "Mon Nov 24 06:25:13 h",
		"Nov 30 06:25:13 h", "Nov 04 06:25:13 h", "NOV 24 06:25:13 h", "nov 24 06:25:13x",
		"Nov 24 24:00:00 h", "Nov 24 29:00:00 h", "Nov 24 06:60:13 h", "Nov 24 6:25:13 h",
		"ſep 24 06:25:13 h", "Nov 24 06:25:13\th", "Nov 24 06:25:13 ", "Nov 24 06:25:13")
	rng := rand.New(rand.NewPCG(7, 7))
	alphabet := []string{"0", "1", "2", "3", "9", " ", ":", ".", "a", "N", "o", "v", "x", "@", "[", "ſ", "K", "\t", "é", "٣"}
	lines := append([]string(nil), base...)
	for i := 0; i < 20000; i++ {
		l := []byte(base[rng.IntN(len(base))])
		for k := 1 + rng.IntN(3); k > 0; k-- {
			p := rng.IntN(min(len(l), 20))
			r := alphabet[rng.IntN(len(alphabet))]
			l = append(l[:p:p], append([]byte(r), l[p+1:]...)...)
		}
		lines = append(lines, string(l))
	}
	refs := []time.Time{
		time.Date(2026, 11, 25, 0, 0, 0, 0, time.Local),
		time.Date(2027, 1, 1, 0, 30, 0, 0, time.UTC),
		time.Date(2026, 3, 29, 2, 30, 0, 0, time.FixedZone("X", 3600)),
	}
	for _, p := range []string{syslogPattern, lnBeg + syslogPattern} {
		tpl, err := compileDateTemplate(p)
		if err != nil {
			t.Fatal(err)
		}
		if tpl.fast == nil {
			t.Fatalf("%s: no fast matcher", p)
		}
		slow := *tpl
		slow.fast = nil
		decided := 0
		for _, ref := range refs {
			for _, l := range lines {
				h, ok, dec := tpl.fast(l, ref)
				if !dec {
					continue
				}
				decided++
				wh, wok := slow.match(l, ref)
				if ok != wok || h.start != wh.start || h.end != wh.end || !h.t.Equal(wh.t) {
					t.Fatalf("%s on %q (ref %s): fast gives %v %+v, the regex %v %+v", p, l, ref, ok, h, wok, wh)
				}
			}
		}
		if decided < len(refs)*len(base)*9/10 {
			t.Errorf("%s: the fast matcher decided only %d lines", p, decided)
		}
	}
}
