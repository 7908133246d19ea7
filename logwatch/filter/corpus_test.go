package filter

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpban/xdpban/logwatch/corpus"
	"github.com/xdpban/xdpban/logwatch/source"
)

// corpusRef is "now" for the corpus: the day after corpus.Base, so the
// year of syslog dates is 2025.
var corpusRef = corpus.Base.Add(24 * time.Hour)

func journalLine(raw []byte) (string, bool) {
	l, _, _, ok := source.FormatJournalEntry(raw)
	return l, ok
}

// TestCorpus runs every line of the filter corpus (lines composed from
// the daemons' own format strings, logwatch/filter/testdata/corpus) through the
// shipped filter in each of its modes and under each prefix real logs
// carry, each variant through one scanner as when following a file, and
// checks the verdict and the captured address of every line.
func TestCorpus(t *testing.T) {
	files, err := corpus.Load(filepath.Join("testdata", "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for _, mode := range f.Modes {
			spec := fmt.Sprintf("%s[mode=%s]", f.Filter, mode)
			flt, err := Load(nil, spec, nil)
			if err != nil {
				t.Errorf("%s: %v", spec, err)
				continue
			}
			for _, variant := range corpus.Variants(f.Kind) {
				lines, err := f.Render(variant, journalLine)
				if err != nil {
					t.Fatal(err)
				}
				sc := flt.NewScanner()
				counted, want := 0, 0
				for i, line := range lines {
					e := f.Entries[i]
					v, ms := sc.Scan(line, corpusRef)
					if e.Counts(mode) {
						want++
					}
					where := fmt.Sprintf("%s:%d %s %s", e.File, e.LineNo, spec, variant)
					if v == Skipped {
						t.Errorf("%s: line skipped: %q", where, line)
						continue
					}
					if v != Fail {
						if e.Counts(mode) {
							t.Errorf("%s: verdict %d, want a failure of %s\n    %s\n    (%s)", where, v, e.Host, line, e.Ref)
						}
						continue
					}
					if len(ms) != 1 {
						t.Errorf("%s: %d matches, want 1: %q", where, len(ms), line)
						continue
					}
					got := ms[0].Host
					switch {
					case e.Counts(mode) && got == e.Host:
						counted++
					case e.Counts(mode):
						t.Errorf("%s: captured %v (%q), want %s\n    %s", where, got, ms[0].HostName, e.Host, line)
					case e.Self.IsValid() && got == e.Self:
						// the host's own address: ignoreself never bans it
					default:
						t.Errorf("%s: counted as a failure of %v (%q), want no failure\n    %s\n    (%s)", where, got, ms[0].HostName, line, e.Ref)
					}
				}
				t.Logf("%-16s %-22s %-8s %3d/%3d counted as the corpus says (%d lines)", f.Filter, spec, variant, counted, want, len(lines))
			}
		}
	}
}
