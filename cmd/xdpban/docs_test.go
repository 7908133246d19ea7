package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/version"
)

func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(&env{stdout: &out, stderr: &errb}, args)
	return out.String(), errb.String(), code
}

func TestVersion(t *testing.T) {
	old := version.Version
	defer func() { version.Version = old }()
	version.Version = "v9.8.7"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, _, code := runCmd(t, args...)
		if code != 0 || !strings.HasPrefix(out, "xdpban v9.8.7 (go") {
			t.Errorf("%v: %q exit %d", args, out, code)
		}
	}
	out, _, code := runCmd(t, "version", "--json")
	if code != 0 || !strings.Contains(out, `"version": "v9.8.7"`) {
		t.Errorf("version --json: %q exit %d", out, code)
	}
	if _, errs, code := runCmd(t, "version", "extra"); code != exitUsage || !strings.Contains(errs, "extra") {
		t.Errorf("version extra: exit %d, %q", code, errs)
	}
}

// The manual lists every command of the table with each of its flags:
// it is generated from them, and this fails if that ever stops.
func TestManPagesCoverCommandsAndSettings(t *testing.T) {
	page, _, code := runCmd(t, "man", "8")
	if code != 0 {
		t.Fatalf("man 8 exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(page, ".SS "+roff(c.name)+"\n") {
			t.Errorf("xdpban(8) lacks command %s", c.name)
		}
		for _, f := range commandFlags(c.name) {
			if !strings.Contains(page, `\-\-`+roff(f.Name)) {
				t.Errorf("xdpban(8) lacks %s --%s", c.name, f.Name)
			}
		}
	}
	if len(commandFlags("ban")) < 3 {
		t.Errorf("ban has %d flags documented, want --for, --jail, --from-file...", len(commandFlags("ban")))
	}
	conf, _, code := runCmd(t, "man", "5")
	if code != 0 {
		t.Fatalf("man 5 exit %d", code)
	}
	for _, k := range append(config.DaemonKeys(), config.JailKeys()...) {
		if !strings.Contains(conf, roff(k)) {
			t.Errorf("xdpban.conf(5) lacks setting %s", k)
		}
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		for name, p := range map[string]string{"xdpban.8": page, "xdpban.conf.5": conf} {
			path := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(path, []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(groff, "-man", "-ww", "-z", path).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("groff -ww on %s: %v: %s", name, err, out)
			}
		}
	}
	if _, errs, code := runCmd(t, "man", "3"); code != exitUsage || !strings.Contains(errs, `"3"`) {
		t.Errorf("man 3: exit %d, %q", code, errs)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, _, code := runCmd(t, "completion", sh)
		if code != 0 {
			t.Fatalf("completion %s: exit %d", sh, code)
		}
		for _, c := range commands {
			if !strings.Contains(out, c.name) {
				t.Errorf("%s completion lacks command %s", sh, c.name)
			}
		}
		if !strings.Contains(out, "from-file") {
			t.Errorf("%s completion lacks ban --from-file", sh)
		}
		shell, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		// The script must at least parse in its own shell.
		check := exec.Command(shell, "-n")
		if sh == "fish" {
			check = exec.Command(shell, "--no-execute")
		}
		check.Stdin = strings.NewReader(out)
		if msg, err := check.CombinedOutput(); err != nil {
			t.Errorf("%s -n on the %s completion: %v: %s", sh, sh, err, msg)
		}
	}
	if _, errs, code := runCmd(t, "completion", "tcsh"); code != exitUsage || !strings.Contains(errs, "tcsh") {
		t.Errorf("completion tcsh: exit %d, %q", code, errs)
	}
}
