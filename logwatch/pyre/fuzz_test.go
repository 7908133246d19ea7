package pyre

import (
	"testing"
)

// FuzzTranslatePy feeds arbitrary patterns to the Python-re translator: it
// must never panic, and a pattern it accepts must compile to a regex that
// can be searched without panicking.
func FuzzTranslatePy(f *testing.F) {
	for _, s := range []string{
		`^Failed \S+ for (?P<user>.*?) from <HOST>(?: port \d+)?\s*$`,
		`(?<=foo)bar(?!baz)`, `(?P<a>x)(?P=a)`, `[\]\\-]{2,}?`, `\x41\u00e9\N`,
		`(?i:abc)(?#comment)`, `(`, `[`, `\`, `a{3,2}`, `(?P<1>x)`,
	} {
		f.Add(s, "Failed password for root from 192.0.2.7 port 22 ssh2")
	}
	f.Fuzz(func(t *testing.T, pat, line string) {
		if len(pat) > 512 || len(line) > 4096 {
			return
		}
		if _, err := translatePy(pat); err != nil {
			return
		}
		r, err := Compile(pat, false)
		if err != nil {
			return
		}
		m, err := r.Search(line)
		if err != nil || m == nil {
			return
		}
		if m.Start < 0 || m.End < m.Start || m.End > len(line) {
			t.Fatalf("pattern %q on %q: match [%d,%d) outside the line", pat, line, m.Start, m.End)
		}
		for _, sp := range m.spans {
			if sp.a < 0 || sp.b < sp.a || sp.b > len(line) || m.Groups[sp.name] != line[sp.a:sp.b] {
				t.Fatalf("pattern %q on %q: group %s [%d,%d) = %q is not that part of the line", pat, line, sp.name, sp.a, sp.b, m.Groups[sp.name])
			}
		}
	})
}
