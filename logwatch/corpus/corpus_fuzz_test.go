package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: any file either reads or is refused with an error; what
// reads renders in every variant of its kind without a panic, one line
// per entry.
func FuzzRead(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("..", "testdata", "corpus", "*.corpus"))
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("# filter: x\n# modes: a b\n# ref: r\n* 192.0.2.1 | x[1]: y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.corpus")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cf, err := Read(p)
		if err != nil {
			return
		}
		for _, v := range Variants(cf.Kind) {
			lines, err := cf.Render(v, func(raw []byte) (string, bool) { return string(raw), true })
			if err == nil && len(lines) != len(cf.Entries) {
				t.Fatalf("variant %s: %d lines for %d entries", v, len(lines), len(cf.Entries))
			}
		}
	})
}
