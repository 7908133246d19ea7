package logwatch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFilterArgumentNamingNothing(t *testing.T) {
	_, err := LoadFilter(nil, "sshd[mode=extreme]", nil)
	if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), "is <mdre-extreme>, which the filter does not define") ||
		!strings.Contains(err.Error(), "(mode=extreme)") {
		t.Fatalf("sshd[mode=extreme]: %v", err)
	}
	for _, m := range []string{"normal", "ddos", "extra", "aggressive"} {
		if _, err := LoadFilter(nil, "sshd[mode="+m+"]", nil); err != nil {
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
	_, err := LoadFilter([]string{dir}, "sshd", nil)
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
	_, err := LoadFilter([]string{dir}, "sshd", nil)
	if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), "links to /nonexistent/sshd.conf, which cannot be read") {
		t.Fatalf("dangling filter.d/sshd.conf: %v", err)
	}
}
