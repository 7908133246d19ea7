package packaging_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/internal/version"
)

// TestPackage builds the .deb and .rpm the way a release does (`make
// package`), unpacks the .deb into a scratch root and installs it there
// with dpkg, and checks what an operator gets.
func TestPackage(t *testing.T) {
	for _, tool := range []string{"make", "dpkg-deb", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: `make deps` installs what the tests need", tool)
			}
			t.Skipf("%s not found: this test builds and installs a Debian package", tool)
		}
	}
	raw, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	ver := strings.TrimSpace(string(raw))
	if !version.Semver(ver) {
		t.Fatalf("VERSION %q is not vMAJOR.MINOR.PATCH", ver)
	}
	changelog, err := os.ReadFile("../CHANGELOG.md")
	if err != nil || !bytes.Contains(changelog, []byte("## "+ver+" ")) {
		t.Errorf("CHANGELOG.md has no section for %s (%v)", ver, err)
	}

	dist := t.TempDir()
	mk := exec.Command("make", "-C", "..", "package", "DIST="+dist)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	deb := filepath.Join(dist, "xdpban_"+strings.TrimPrefix(ver, "v")+"_"+goarch(t)+".deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("no .deb: %v", err)
	}
	rpms, _ := filepath.Glob(filepath.Join(dist, "xdpban-"+strings.TrimPrefix(ver, "v")+"-1.*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpm packages in %s: %v", dist, rpms)
	}
	if head := readHead(t, rpms[0], 4); !bytes.Equal(head, []byte{0xed, 0xab, 0xee, 0xdb}) {
		t.Errorf("%s does not start with the rpm lead magic: % x", rpms[0], head)
	}

	// Unpacked: the files where Debian puts them.
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	for _, f := range []string{
		"usr/sbin/xdpban", "usr/lib/systemd/system/xdpban.service",
		"etc/xdpban/xdpban.conf", "etc/xdpban/jail.conf", "etc/xdpban/filter.d/sshd.conf",
		"etc/logrotate.d/xdpban",
		"usr/share/bash-completion/completions/xdpban", "usr/share/zsh/vendor-completions/_xdpban",
		"usr/share/fish/vendor_completions.d/xdpban.fish", "usr/share/doc/xdpban/copyright",
	} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("package lacks /%s", f)
		}
	}
	out := run(t, filepath.Join(root, "usr/sbin/xdpban"), "--version")
	if !strings.HasPrefix(out, "xdpban "+ver+" ") {
		t.Errorf("packaged binary says %q, want version %s", out, ver)
	}
	for _, page := range []string{"usr/share/man/man8/xdpban.8.gz", "usr/share/man/man5/xdpban.conf.5.gz"} {
		text := gunzip(t, filepath.Join(root, page))
		if !strings.Contains(text, ".TH XDPBAN") || !strings.Contains(text, "xdpban "+ver) {
			t.Errorf("/%s is not a versioned man page: %.80q", page, text)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/xdpban.service"))
	if bytes.Contains(unit, []byte("@SBINDIR@")) || bytes.Contains(unit, []byte("@SYSCONFDIR@")) || !bytes.Contains(unit, []byte("ExecStart=/usr/sbin/xdpban --config /etc/xdpban run")) {
		t.Errorf("unit not substituted for /usr/sbin and /etc:\n%s", unit)
	}

	// The configuration is the operator's: conffiles, kept on upgrade.
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctl)
	conff, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	for _, f := range []string{"/etc/xdpban/xdpban.conf", "/etc/xdpban/jail.conf", "/etc/xdpban/filter.d/sshd.conf", "/etc/logrotate.d/xdpban"} {
		if !bytes.Contains(conff, []byte(f+"\n")) {
			t.Errorf("%s is not a conffile:\n%s", f, conff)
		}
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if out, err := exec.Command("sh", "-n", filepath.Join(ctl, s)).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v %s", s, err, out)
		}
	}

	// Installed and removed with dpkg in a scratch root: the maintainer
	// scripts see DPKG_ROOT and leave this machine's services alone.
	inst := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		if err := os.MkdirAll(filepath.Join(inst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		os.WriteFile(filepath.Join(inst, f), nil, 0o644)
	}
	dpkg := func(args ...string) string {
		return run(t, "dpkg", append([]string{"--root=" + inst, "--force-script-chrootless", "--force-depends", "--log=" + filepath.Join(inst, "dpkg.log")}, args...)...)
	}
	dpkg("-i", deb)
	if st := dpkg("-s", "xdpban"); !strings.Contains(st, "Status: install ok installed") || !strings.Contains(st, "Version: "+strings.TrimPrefix(ver, "v")) {
		t.Errorf("dpkg -s after install:\n%s", st)
	}
	// An operator's edit survives removal (conffiles are kept until purge).
	local := filepath.Join(inst, "etc/xdpban/xdpban.conf")
	os.WriteFile(local, []byte("[xdpban]\nbackend = nftables\n"), 0o644)
	dpkg("-r", "xdpban")
	if b, err := os.ReadFile(local); err != nil || !bytes.Contains(b, []byte("nftables")) {
		t.Errorf("removal lost the edited xdpban.conf: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(inst, "usr/sbin/xdpban")); !os.IsNotExist(err) {
		t.Errorf("binary still there after dpkg -r: %v", err)
	}
	dpkg("-P", "xdpban")
	if _, err := os.Stat(local); !os.IsNotExist(err) {
		t.Errorf("xdpban.conf still there after purge: %v", err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func goarch(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func readHead(t *testing.T, path string, n int) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	io.ReadFull(f, b)
	return b
}

func gunzip(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, _ := io.ReadAll(z)
	return string(b)
}
