package ini

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestDifferentialFail2ban reads the stock /etc/fail2ban tree (jail, every
// filter.d and action.d file) with this package and with fail2ban's own
// Python ConfigReader, and requires every interpolated value to agree.
func TestDifferentialFail2ban(t *testing.T) {
	const base = "/etc/fail2ban"
	ci := os.Getenv("CI") == "true"
	if _, err := os.Stat(filepath.Join(base, "jail.conf")); err != nil {
		if ci {
			t.Fatalf("%s missing in CI: install the fail2ban package", base)
		}
		t.Skipf("%s missing: install fail2ban to run this test", base)
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import fail2ban.client.configreader").Run(); err != nil {
		if ci {
			t.Fatalf("fail2ban's Python module not importable with %s: %v", py, err)
		}
		t.Skipf("fail2ban's Python module not importable with %s: %v", py, err)
	}
	names := []string{"jail"}
	for _, d := range []string{"filter.d", "action.d"} {
		fs, _ := filepath.Glob(filepath.Join(base, d, "*.conf"))
		for _, f := range fs {
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(f, base+"/"), ".conf"))
		}
	}
	out, err := exec.Command(py, append([]string{"testdata/f2b_dump.py", base}, names...)...).Output()
	if err != nil {
		t.Fatalf("python reference: %v", err)
	}
	var want map[string]map[string]string
	if err := json.Unmarshal(out, &want); err != nil {
		// a "PARSEERR" string in place of a map lands here too
		t.Fatalf("python reference output: %v", err)
	}
	values, diffs := 0, 0
	for _, name := range names {
		f, err := LoadBase(filepath.Join(base, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := map[string]string{}
		for _, s := range f.Sections() {
			keys := append(f.Keys(s), f.Keys(Default)...)
			for _, k := range keys {
				v, err := f.Get(s, k)
				if err != nil {
					v = "ERR"
				}
				got[s+"\t"+k] = v
			}
		}
		var all []string
		for k := range want[name] {
			all = append(all, k)
		}
		for k := range got {
			if _, ok := want[name][k]; !ok {
				all = append(all, k)
			}
		}
		sort.Strings(all)
		for _, k := range all {
			values++
			w, wok := want[name][k]
			g, gok := got[k]
			if w != g || wok != gok {
				diffs++
				if diffs <= 10 {
					t.Errorf("%s [%s]: fail2ban %q (%v), xdpban %q (%v)", name, strings.Replace(k, "\t", "] ", 1), w, wok, g, gok)
				}
			}
		}
	}
	t.Logf("%d files, %d values compared, %d differences", len(names), values, diffs)
	if values < 1000 {
		t.Errorf("only %d values compared", values)
	}
}
