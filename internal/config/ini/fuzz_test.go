package ini

import (
	"strings"
	"testing"
)

// FuzzParse checks that no input makes the reader panic or hang, that a
// successful parse can interpolate every value (error or not), and that
// errors always carry a position.
func FuzzParse(f *testing.F) {
	f.Add("[a]\nk = v\n")
	f.Add("[DEFAULT]\nx = %(y)s\ny = %(x)s\n[a]\nk = %(x)s\n")
	f.Add("[a]\nk = one\n\n  two ; c\n# c\n[b]\nj: %(a/k)s %(known/k)s %%\n")
	f.Add("k = v\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse("fuzz.conf", []byte(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.conf") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		for _, s := range append(p.Sections(), Default) {
			for _, k := range p.Keys(s) {
				if _, ok := p.Raw(s, k); !ok {
					t.Fatalf("key %q listed in [%s] but not found", k, s)
				}
				_, _ = p.Get(s, k)
			}
		}
	})
}

// FuzzParseSpec checks ParseSpec and SplitSpecs never panic and that a
// reference without brackets is its own name.
func FuzzParseSpec(f *testing.F) {
	f.Add(`sshd[mode=aggressive, x="a,b]"]`)
	f.Add("act[a=1][b=2]")
	f.Add("x[a=\"unterminated")
	f.Fuzz(func(t *testing.T, s string) {
		name, _, err := ParseSpec(s)
		if err == nil && strings.TrimSpace(s) != "" && !strings.Contains(s, "[") && name != strings.TrimSpace(s) {
			t.Fatalf("ParseSpec(%q) name %q", s, name)
		}
		for _, tok := range SplitSpecs(s) {
			if strings.TrimSpace(tok) == "" {
				t.Fatalf("SplitSpecs(%q) returned an empty token", s)
			}
		}
	})
}
