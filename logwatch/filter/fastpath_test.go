package filter

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/bench/loggen"
	"github.com/xdpban/xdpban/logwatch/pyre"
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

// TestASCIIVariants runs every expression of every filter (xdpban's and
// fail2ban's) that has an ASCII variant on every ASCII line of fail2ban's
// sample logs and of loggen's log, through both spellings: matches and
// group spans must be identical.
func TestASCIIVariants(t *testing.T) {
	var st pyre.ShortcutStats
	for _, c := range fastpathCorpus(t) {
		for _, r := range c.f.regexes() {
			if err := r.CheckASCII(c.lines, &st); err != nil {
				t.Fatalf("filter %s, %v", c.f.Name, err)
			}
		}
	}
	if st.ASCIIMatched < 1000 {
		t.Fatalf("only %d of %d comparisons matched: the lines do not exercise the filters", st.ASCIIMatched, st.ASCIICompared)
	}
	t.Logf("%d comparisons, %d matches", st.ASCIICompared, st.ASCIIMatched)
}

// TestLitSplit runs every expression of every filter (xdpban's and
// fail2ban's) that can be cut at a literal, whole and cut, on fail2ban's
// sample logs, loggen's log and crafted lines where the literal occurs
// twice or sits in the user name: same match, same groups, or the cut
// declines.
func TestLitSplit(t *testing.T) {
	crafted := []string{
		" web1 sshd[1]: Failed password for Failed from 192.0.2.1 port 22 ssh2",
		" web1 sshd[1]: Failed password for x from 192.0.2.1 port 22 ssh2 Failed ",
		" web1 sshd[1]: Invalid user x user  from 192.0.2.1 port 22",
		" web1 sshd[1]: Invalid user from 192.0.2.1 port 22",
		" <a.b> sshd[1]: Failed password for x from 192.0.2.1 port 22",
		" host Failed sshd[1]: Failed password for x from 192.0.2.1 port 22",
		// The first "Failed " is in the prefix: only the second one
		// gives a match.
		" <a Failed b.c> sshd[1]: Failed password for x from 192.0.2.1 port 22",
	}
	var st pyre.ShortcutStats
	for _, c := range fastpathCorpus(t) {
		lines := append(c.lines, crafted...)
		for _, r := range c.f.regexes() {
			if err := r.CheckCut(lines, &st); err != nil {
				t.Fatalf("filter %s, %v", c.f.Name, err)
			}
		}
	}
	if st.Cuts < 20 || st.CutMatched < 1000 || st.DFALines == 0 {
		t.Fatalf("only %d cut expressions and %d matches compared: the test exercises nothing", st.Cuts, st.CutMatched)
	}
	t.Logf("%d cut expressions, %d lines decided by the cut, %d matches, %d lines' heads through a prefix DFA", st.Cuts, st.CutDecided, st.CutMatched, st.DFALines)
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
	common := append(strings.Split(buf.String(), "\n"), read(filepath.Join("..", "..", "testdata", "logs", "auth-sample.log"))...)
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
		f, err := Load(nil, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, corpusFilter{f, withCut(append(append([]string(nil), common...), all...))})
	}
	confs, _ := filepath.Glob(filepath.Join(f2bConfig, "filter.d", "*.conf"))
	for _, c := range confs {
		n := strings.TrimSuffix(filepath.Base(c), ".conf")
		if f, err := Load([]string{f2bConfig}, n, nil); err == nil {
			own := read(filepath.Join(f2bTests, "files", "logs", n))
			out = append(out, corpusFilter{f, withCut(append(own, common...))})
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d filters to check on: install fail2ban", len(out))
	}
	return out
}

// regexes are every compiled expression of f: prefregex, failregexes,
// ignoreregexes.
func (f *Filter) regexes() []*pyre.Regex {
	var out []*pyre.Regex
	for _, r := range append(append([]*pyre.Regex{f.pref}, f.fails...), f.ignores...) {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}
