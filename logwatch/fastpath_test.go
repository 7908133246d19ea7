package logwatch

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/xdpban/xdpban/bench/loggen"
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
				if ok != wok || h.start != wh.start || h.end != wh.end || !h.time().Equal(wh.t) {
					t.Fatalf("%s on %q (ref %s): fast gives %v %+v, the regex %v %+v", p, l, ref, ok, h, wok, wh)
				}
			}
		}
		if decided < len(refs)*len(base)*9/10 {
			t.Errorf("%s: the fast matcher decided only %d lines", p, decided)
		}
	}
}

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
		s := newLitSet(pats, owners)
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
			if got := s.mask(text); got != wantMask {
				t.Fatalf("set %q (owners %v) on %q: mask %b, want %b", pats, owners, text, got, wantMask)
			}
		}
	}
}

// TestASCIIVariants runs every expression of every filter (xdpban's and
// fail2ban's) that has an ASCII variant on every ASCII line of fail2ban's
// sample logs and of loggen's log, through both spellings: matches and
// group spans must be identical.
func TestASCIIVariants(t *testing.T) {
	compared, matched := 0, 0
	for _, c := range fastpathCorpus(t) {
		f := c.f
		all := append(append([]*pyRegex{f.pref}, f.fails...), f.ignores...)
		for _, r := range all {
			if r == nil || r.asc == nil {
				continue
			}
			for _, l := range c.lines {
				if !isASCII(l) {
					continue
				}
				want := r.re2.FindStringSubmatchIndex(l)
				got := r.asc.FindStringSubmatchIndex(l)
				if !slices.Equal(want, got) {
					t.Fatalf("filter %s, %q on %q: ASCII spelling gives %v, the Unicode one %v", f.Name, r.src, l, got, want)
				}
				compared++
				if want != nil {
					matched++
				}
			}
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d of %d comparisons matched: the lines do not exercise the filters", matched, compared)
	}
	t.Logf("%d comparisons, %d matches", compared, matched)
}

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

// TestLitSplit runs every expression of every filter (xdpban's and
// fail2ban's) that can be cut at a literal, whole and cut, on fail2ban's
// sample logs, loggen's log and crafted lines where the literal occurs
// twice or sits in the user name: same match, same groups, or the cut
// declines.
func TestLitSplit(t *testing.T) {
	var lines []string
	lines = append(lines,
		" web1 sshd[1]: Failed password for Failed from 192.0.2.1 port 22 ssh2",
		" web1 sshd[1]: Failed password for x from 192.0.2.1 port 22 ssh2 Failed ",
		" web1 sshd[1]: Invalid user x user  from 192.0.2.1 port 22",
		" web1 sshd[1]: Invalid user from 192.0.2.1 port 22",
		" <a.b> sshd[1]: Failed password for x from 192.0.2.1 port 22",
		" host Failed sshd[1]: Failed password for x from 192.0.2.1 port 22",
		// The first "Failed " is in the prefix: only the second one
		// gives a match.
		" <a Failed b.c> sshd[1]: Failed password for x from 192.0.2.1 port 22")
	crafted := lines
	splits, decided, matched, dfas := 0, 0, 0, 0
	for _, c := range fastpathCorpus(t) {
		f, lines := c.f, append(c.lines, crafted...)
		all := append(append([]*pyRegex{f.pref}, f.fails...), f.ignores...)
		for _, r := range all {
			if r == nil {
				continue
			}
			for _, v := range []struct {
				re *regexp.Regexp
				sp *litSplit
			}{{r.re2, r.split}, {r.asc, r.splitAsc}} {
				if v.sp == nil {
					continue
				}
				splits++
				for li, l := range lines {
					if v.re == r.asc && !isASCII(l) {
						continue
					}
					// The prefix DFA against the prefix regexp on
					// every head of the line.
					// Each piece's DFA against its regexp on pieces of
					// the line.
					for _, p := range v.sp.pieces {
						if p.dfa == nil || li%64 != 0 {
							continue
						}
						dfas++
						for k := 0; k < len(l) && k < 60; k += 5 {
							for e := k; e <= len(l) && e < k+40; e++ {
								m, ok := p.dfa.full(l[k:e])
								if ok && m != p.re.MatchString(l[k:e]) {
									t.Fatalf("filter %s, piece %s on %q: DFA says %v", f.Name, p.re, l[k:e], m)
								}
							}
						}
					}
					got, dec := v.sp.find(l)
					if !dec {
						continue
					}
					decided++
					want := v.re.FindStringSubmatchIndex(l)
					if !slices.Equal(got, want) {
						t.Fatalf("filter %s, cut at %q, %q on %q: cut gives %v, whole %v", f.Name, v.sp.lits, r.src, l, got, want)
					}
					if want != nil {
						matched++
					}
				}
			}
		}
	}
	if splits < 20 || matched < 1000 || dfas == 0 {
		t.Fatalf("only %d cut expressions and %d matches compared: the test exercises nothing", splits, matched)
	}
	t.Logf("%d cut expressions, %d lines decided by the cut, %d matches, %d lines' heads through a prefix DFA", splits, decided, matched, dfas)
}

// corpusFilter is a filter and the lines to check its fast paths on.
type corpusFilter struct {
	f     *Filter
	lines []string
}

// fastpathCorpus: xdpban's filters on every sample log, fail2ban's on
// their own sample log (files/logs/NAME); all of them on loggen's lines
// and on xdpban's sample auth.log; every line also with its first 15
// bytes (a syslog date) cut, as failregexes see it.
func fastpathCorpus(t *testing.T) []corpusFilter {
	read := func(p string) []string {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var out []string
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out
	}
	var buf bytes.Buffer
	if _, err := loggen.Generate(&buf, loggen.Options{Lines: 2000}); err != nil {
		t.Fatal(err)
	}
	common := append(strings.Split(buf.String(), "\n"), read(filepath.Join("..", "testdata", "logs", "auth-sample.log"))...)
	var all []string
	logs, _ := filepath.Glob(filepath.Join(f2bTests, "files", "logs", "*"))
	for _, p := range logs {
		all = append(all, read(p)...)
	}
	withCut := func(ls []string) []string {
		out := append([]string(nil), ls...)
		for _, l := range ls {
			if len(l) > 16 {
				out = append(out, l[15:])
			}
		}
		return out
	}
	var out []corpusFilter
	for _, name := range []string{"sshd", "sshd[mode=aggressive]", "nginx-http-auth", "nginx-limit-req", "apache-auth", "postfix", "dovecot", "vsftpd", "recidive"} {
		f, err := LoadFilter(nil, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, corpusFilter{f, withCut(append(append([]string(nil), common...), all...))})
	}
	confs, _ := filepath.Glob(filepath.Join(f2bConfig, "filter.d", "*.conf"))
	for _, c := range confs {
		n := strings.TrimSuffix(filepath.Base(c), ".conf")
		if f, err := LoadFilter([]string{f2bConfig}, n, nil); err == nil {
			own := read(filepath.Join(f2bTests, "files", "logs", n))
			out = append(out, corpusFilter{f, withCut(append(own, common...))})
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d filters to check on: install fail2ban", len(out))
	}
	return out
}
