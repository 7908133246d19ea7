package logwatch

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/logwatch/corpus"
	"github.com/xdpban/xdpban/logwatch/filter"
	"github.com/xdpban/xdpban/logwatch/source"
)

// TestDaemonAndRegexAgreeOnCorpus follows every corpus log (each shipped
// filter in each mode, in the first file format of its kind) with the
// daemon's follower and jail, and replays the same file as `xdpban regex`
// does: both must count the same failures. Every tenth line carries a
// byte that is not UTF-8 and a control character in its tail, as an
// attacker's user name would.
func TestDaemonAndRegexAgreeOnCorpus(t *testing.T) {
	files, err := corpus.Load(filepath.Join("filter", "testdata", "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		variant := corpus.Variants(f.Kind)[0]
		lines, err := f.Render(variant, journalLine)
		if err != nil {
			t.Fatal(err)
		}
		for i := range lines {
			if i%10 == 9 {
				lines[i] += " \xff\x1b"
			}
		}
		text := strings.Join(lines, "\n") + "\n"
		for _, mode := range f.Modes {
			spec := fmt.Sprintf("%s[mode=%s]", f.Filter, mode)
			t.Run(spec, func(t *testing.T) {
				flt, err := filter.Load(nil, spec, nil)
				if err != nil {
					t.Fatal(err)
				}
				res, err := Replay(strings.NewReader(text), flt.NewScanner(), ReplayOptions{Ref: corpusRef})
				if err != nil {
					t.Fatal(err)
				}
				regex := 0
				for _, m := range res.Matches {
					if _, err := netip.ParseAddr(m.Host); err == nil {
						regex++
					}
				}

				log := filepath.Join(t.TempDir(), "test.log")
				if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				e := NewEngine(EngineOptions{Out: make(chan bans.Decision, 1), Now: func() time.Time { return corpusRef }, Rescan: 50 * time.Millisecond})
				defer e.StopAll()
				j := testJail(log)
				j.Name, j.MaxRetry, j.FindTime = "parity", 1_000_000, time.Hour
				if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: flt.NewScanner}); err != nil {
					t.Fatal(err)
				}
				var st JailStats
				for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
					if st, _ = e.Stats("parity"); len(st.Sources) == 1 && st.Sources[0].LinesRead >= uint64(len(lines)) {
						break
					}
				}
				daemon := int(st.TotalFailed + st.Ignored)
				t.Logf("%d lines: %d failures in both", len(lines), regex)
				if regex == 0 {
					t.Fatal("no failure at all: nothing compared")
				}
				if daemon != regex || st.Sources[0].LinesSkipped != uint64(res.Skipped) {
					t.Fatalf("%d lines: regex counted %d failures (%d skipped), the daemon %d (%d skipped)", len(lines), regex, res.Skipped, daemon, st.Sources[0].LinesSkipped)
				}
			})
		}
	}
}

// corpusRef is "now" for the corpus: the day after corpus.Base, so the
// year of syslog dates is 2025.
var corpusRef = corpus.Base.Add(24 * time.Hour)

func journalLine(raw []byte) (string, bool) {
	l, _, _, ok := source.FormatJournalEntry(raw)
	return l, ok
}
