package ini

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// randomConf builds a config from the dialect's tricky pieces: both
// delimiters, indentation, blank and comment lines inside values, inline
// ';' with and without a space before, '#' in values, every kind of
// %(...)s reference, stray '%', duplicates and junk lines.
func randomConf(r *rand.Rand) string {
	sections := []string{"[a]", "[b]", "[DEFAULT]", "[a b]", "[x]y]", "[A]", "[]"}
	keys := []string{"k1", "K1", "k2", "k3", "k.x", "  k2", "\tk3", "k4", "k5", "k6", "k7", "k8", "k9", "kk", "z", "y", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"}
	delims := []string{" = ", "=", ": ", " : ", " =: ", ":="}
	vals := []string{"v", "", "%(k1)s", "%(k2)s-%(k3)s", "%(__name__)s", "%%", "50%", "%(a/k1)s", "%(default/k2)s",
		"%(known/k1)s", "%(nope)s", "%(A/k1)s", "%(Known/k2)s", "%(DEFAULT/k1)s", "%(K1)s/%(__NAME__)s", "x ; c", "x;c", "x # c", "#x", "%(k1", "%(k1)d", "a\tb", "\"q\" 'r'", "%(K2)s"}
	extra := []string{"", "\n", "\n  cont", "\n\tcont %(k2)s", "\n\n  after blank", "\n  # comment in value\n  more",
		"\n ; semi comment", "\n    deeper\n  less", "\n", "\n   "}
	var b strings.Builder
	if r.IntN(10) > 0 {
		b.WriteString(sections[r.IntN(3)] + "\n")
	}
	n := 3 + r.IntN(12)
	for i := 0; i < n; i++ {
		switch r.IntN(12) {
		case 0:
			b.WriteString(sections[r.IntN(len(sections)-1)] + "\n")
		case 11:
			// rarely: lines fail2ban refuses
			if r.IntN(4) == 0 {
				b.WriteString([]string{"junk line\n", " = no key\n", "[]\n"}[r.IntN(3)])
			}
		case 1:
			b.WriteString([]string{"# c\n", "; c\n", "\n", "   # indented comment\n"}[r.IntN(4)])
		default:
			b.WriteString(keys[r.IntN(len(keys))] + delims[r.IntN(len(delims))] + vals[r.IntN(len(vals))])
			if r.IntN(3) == 0 {
				b.WriteString(" " + vals[r.IntN(len(vals))])
			}
			b.WriteString(extra[r.IntN(len(extra))] + "\n")
		}
	}
	return b.String()
}

// TestDifferentialRandom parses generated files with this package and with
// fail2ban's own parser and requires the same values, the same
// interpolation failures and the same refused files.
func TestDifferentialRandom(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import fail2ban.client.configparserinc").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fail2ban's Python module not importable with %s: %v", py, err)
		}
		t.Skipf("fail2ban's Python module not importable with %s: %v", py, err)
	}
	const n = 400
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var paths []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("c%03d.conf", i))
		if err := os.WriteFile(p, []byte(randomConf(r)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(py, append([]string{"testdata/f2b_parse.py"}, paths...)...).Output()
	if err != nil {
		t.Fatalf("python reference: %v", err)
	}
	var want map[string]any
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	parsed, refused, diffs := 0, 0, 0
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		f, err := Parse(p, data)
		w := want[p]
		if ws, ok := w.(string); ok && ws == "PARSEERR" {
			refused++
			if err == nil {
				diffs++
				t.Errorf("%s: fail2ban refuses it, xdpban accepts it:\n%s", p, data)
			}
			continue
		}
		if err != nil {
			diffs++
			t.Errorf("%s: fail2ban accepts it, xdpban says %v:\n%s", p, err, data)
			continue
		}
		parsed++
		wm := w.(map[string]any)
		got := map[string]string{}
		for _, s := range f.Sections() {
			for _, k := range append(f.Keys(s), f.Keys(Default)...) {
				v, err := f.Get(s, k)
				if err != nil {
					v = "ERR"
				}
				got[s+"\t"+k] = v
			}
		}
		var keys []string
		for k := range wm {
			keys = append(keys, k)
		}
		for k := range got {
			if _, ok := wm[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, wok := wm[k].(string)
			gv, gok := got[k]
			if wok != gok || wv != gv {
				diffs++
				if diffs < 10 {
					t.Errorf("%s [%s]: fail2ban %q, xdpban %q\n%s", p, k, wm[k], got[k], data)
				}
			}
		}
	}
	t.Logf("%d files: %d parsed by both, %d refused by both, %d differences", n, parsed, refused, diffs)
	if parsed < n/4 || refused < n/20 {
		t.Errorf("generator too lopsided: %d parsed, %d refused", parsed, refused)
	}
}

// TestDifferentialTrees builds random trees (jail.conf with [INCLUDES],
// an included file and its .local, jail.d/*.conf and *.local, jail.local)
// and compares LoadBase with fail2ban's ConfigReader.read("jail"): file
// order, overrides, known/ values and DEFAULT merging.
func TestDifferentialTrees(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import fail2ban.client.configreader").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fail2ban's Python module not importable with %s: %v", py, err)
		}
		t.Skipf("fail2ban's Python module not importable with %s: %v", py, err)
	}
	const n = 200
	base := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	keys := []string{"k1", "k2", "k3", "k4"}
	vals := []string{"v%d", "%%(known/k1)s+%d", "%%(k2)s.%d", "%%(known/k3)s/%%(k4)s-%d", "%%(default/k1)s_%d", "%%(__name__)s%d"}
	sections := []string{"DEFAULT", "s1", "s2", "s3"}
	file := func(tag int) string {
		var b strings.Builder
		used := map[string]bool{}
		for i := 0; i < 1+r.IntN(3); i++ {
			s := sections[r.IntN(len(sections))]
			if used[s] {
				continue
			}
			used[s] = true
			b.WriteString("[" + s + "]\n")
			ku := map[string]bool{}
			for j := 0; j < 1+r.IntN(3); j++ {
				k := keys[r.IntN(len(keys))]
				if ku[k] {
					continue
				}
				ku[k] = true
				fmt.Fprintf(&b, "%s = "+vals[r.IntN(len(vals))]+"\n", k, tag*10+j)
			}
		}
		return b.String()
	}
	var names []string
	for i := 0; i < n; i++ {
		d := filepath.Join(base, fmt.Sprintf("t%03d", i))
		write := func(name, text string) {
			p := filepath.Join(d, name)
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		inc := ""
		if r.IntN(2) == 0 {
			inc = "[INCLUDES]\nbefore = paths.conf\n"
			write("paths.conf", file(1))
			if r.IntN(2) == 0 {
				write("paths.local", file(2))
			}
		}
		if r.IntN(3) == 0 {
			inc += "[INCLUDES]\nafter = over.local\n"
			if strings.Count(inc, "[INCLUDES]") > 1 {
				inc = "[INCLUDES]\nbefore = paths.conf\nafter = over.local\n"
			}
			write("over.local", file(3))
		}
		write("jail.conf", inc+file(4))
		for j, nm := range []string{"jail.d/b.conf", "jail.d/a.conf", "jail.local", "jail.d/a.local"} {
			if r.IntN(2) == 0 {
				write(nm, file(5+j))
			}
		}
		names = append(names, fmt.Sprintf("t%03d/jail", i))
	}
	out, err := exec.Command(py, append([]string{"testdata/f2b_dump.py", base}, names...)...).Output()
	if err != nil {
		t.Fatalf("python reference: %v", err)
	}
	var want map[string]map[string]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	values, diffs := 0, 0
	for _, name := range names {
		f, err := LoadBase(filepath.Join(base, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := map[string]string{}
		for _, s := range f.Sections() {
			for _, k := range append(f.Keys(s), f.Keys(Default)...) {
				v, err := f.Get(s, k)
				if err != nil {
					v = "ERR"
				}
				got[s+"\t"+k] = v
			}
		}
		for k := range got {
			if _, ok := want[name][k]; !ok {
				want[name][k] = "<absent>"
			}
		}
		for k, w := range want[name] {
			values++
			if g, ok := got[k]; !ok || g != w {
				diffs++
				if diffs < 10 {
					t.Errorf("%s [%s]: fail2ban %q, xdpban %q", name, k, w, g)
				}
			}
		}
	}
	t.Logf("%d trees, %d values, %d differences", n, values, diffs)
}
