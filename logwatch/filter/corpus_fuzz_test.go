package filter

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/xdpban/xdpban/logwatch/corpus"
)

// FuzzShippedFilters runs arbitrary lines, seeded with every corpus line
// under each prefix, through every shipped filter in every mode its
// corpus lists: never a panic, and a failure's address is always one
// written in the line.
func FuzzShippedFilters(f *testing.F) {
	files, err := corpus.Load(filepath.Join("testdata", "corpus"))
	if err != nil {
		f.Fatal(err)
	}
	var filters []*Filter
	for _, cf := range files {
		for _, mode := range cf.Modes {
			flt, err := Load(nil, fmt.Sprintf("%s[mode=%s]", cf.Filter, mode), nil)
			if err != nil {
				f.Fatal(err)
			}
			filters = append(filters, flt)
		}
		for _, v := range corpus.Variants(cf.Kind) {
			lines, err := cf.Render(v, journalLine)
			if err != nil {
				f.Fatal(err)
			}
			for _, l := range lines {
				f.Add(l)
			}
		}
	}
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) > 8192 {
			return
		}
		for _, flt := range filters {
			v, ms := flt.NewScanner().Scan(line, corpusRef)
			if v != Fail {
				continue
			}
			for _, m := range ms {
				if m.Host.IsValid() && !addrWritten(line, m.Host) {
					t.Fatalf("line %q: banned %s, which the line does not contain", line, m.Host)
				}
			}
		}
	})
}
