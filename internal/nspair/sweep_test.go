package nspair_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xdpban/xdpban/internal/nspair"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// TestSweepRemovesOnlyDeadOwners: a namespace named after a pid that is
// gone is removed, one of a live process is not.
func TestSweepRemovesOnlyDeadOwners(t *testing.T) {
	nspairtest.Require(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := prefix + strconv.Itoa(gone.Process.Pid) + "-0000aa-host"
	live := prefix + strconv.Itoa(os.Getppid()) + "-0000bb-host"
	for _, n := range []string{dead, live} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", n, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n).Run() })
	}
	removed, err := nspair.Sweep(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if exists(dead) || len(removed) != 1 || removed[0] != dead {
		t.Errorf("sweep removed %v; want exactly %s", removed, dead)
	}
	if !exists(live) {
		t.Errorf("sweep removed %s of a live process", live)
	}

	dir := t.TempDir()
	for _, n := range []string{dead, live, "unrelated"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removed, err = nspair.SweepDir(dir, prefix)
	if err != nil || len(removed) != 1 || removed[0] != filepath.Join(dir, dead) {
		t.Errorf("SweepDir removed %v (%v); want only %s", removed, err, dead)
	}
}
