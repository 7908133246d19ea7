package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// A filter that does not compile is cited at the operator's line that
// broke it (jail.local's mode = or failregex =), in `check`, `regex
// --jail` and the daemon's start, not at the shipped jail.conf's [sshd]
// header or filter = line.
func TestFilterErrorsCiteTheOperatorsLine(t *testing.T) {
	for _, c := range []struct{ local, want string }{
		{"mode = bogus\n", `jail.local:5: [sshd] mode = "bogus", used in filter = "sshd[mode=bogus]": invalid filter sshd`},
		{"failregex = ^(foo\n", `jail.local:5: [sshd] failregex = "^(foo": invalid filter sshd`},
		{"filter = sshd[mode=bogus]\n", `jail.local:5: [sshd] filter = "sshd[mode=bogus]": invalid filter sshd`},
	} {
		dir := t.TempDir()
		log := filepath.Join(dir, "auth.log")
		writeConf(t, dir, "jail.local", "[sshd]\nenabled = true\nbackend = file\nlogpath = "+log+"\n"+c.local)
		want := filepath.Join(dir, c.want)
		_, out, _ := cli(t, "", "--config", dir, "check")
		if !strings.Contains(out, "error: filter: "+want) {
			t.Errorf("%scheck output lacks %q:\n%s", c.local, want, out)
		}
		cfg, err := config.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jailSpecs(cfg, bans.Widen{}); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%sthe daemon's start: %v, want it to start with %q", c.local, err, want)
		}
		if _, _, errs := cli(t, "", "--config", dir, "regex", "line", "--jail", "sshd"); !strings.Contains(errs, "xdpban: regex: "+want) {
			t.Errorf("%sregex --jail sshd: %q, want %q", c.local, errs, want)
		}
	}
}
