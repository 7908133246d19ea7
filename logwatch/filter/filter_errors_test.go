package filter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFilterArgumentNamingNothing(t *testing.T) {
	_, err := Load(nil, "sshd[mode=extreme]", nil)
	if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), "is <mdre-extreme>, which the filter does not define") ||
		!strings.Contains(err.Error(), "(mode=extreme)") {
		t.Fatalf("sshd[mode=extreme]: %v", err)
	}
	for _, m := range []string{"normal", "ddos", "extra", "aggressive"} {
		if _, err := Load(nil, "sshd[mode="+m+"]", nil); err != nil {
			t.Errorf("sshd[mode=%s]: %v", m, err)
		}
	}
}

func TestFilterFileThatIsADirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "filter.d", "sshd.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Without the check the shipped sshd would load in its place.
	_, err := Load([]string{dir}, "sshd", nil)
	if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), "sshd.conf is a directory where the filter file is expected") {
		t.Fatalf("filter.d/sshd.conf a directory: %v", err)
	}
}

func TestFilterFileDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/sshd.conf", filepath.Join(dir, "filter.d", "sshd.conf")); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{dir}, "sshd", nil)
	if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), "links to /nonexistent/sshd.conf, which cannot be read") {
		t.Fatalf("dangling filter.d/sshd.conf: %v", err)
	}
}

func TestBadFailregexReportedWhereWritten(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "filter.d", "broken.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("[Definition]\n# a comment\nfailregex = ^ok <HOST>$\n            ^Failed (password for <HOST>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{dir}, "broken", nil)
	msg := fmt.Sprint(err)
	// The file and line of failregex, the entry, and the regex as the
	// operator wrote it, not the kilobyte <HOST> expands to.
	if !errors.Is(err, ErrFilter) || !strings.Contains(msg, conf+":3") || !strings.Contains(msg, "failregex 2") ||
		!strings.Contains(msg, `"^Failed (password for <HOST>"`) || strings.Contains(msg, "ip4") {
		t.Fatalf("bad failregex: %v", err)
	}
}
