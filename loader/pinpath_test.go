package loader

import (
	"errors"
	"strings"
	"testing"
)

func TestPinPathOutsideBPFFSIsErrPinPath(t *testing.T) {
	dir := t.TempDir()
	err := checkBPFFS(dir)
	if !errors.Is(err, ErrPinPath) || !strings.Contains(err.Error(), dir+" is not on a bpf filesystem") {
		t.Fatalf("checkBPFFS(%s) = %v, want ErrPinPath", dir, err)
	}
	err = checkBPFFS(dir + "/missing")
	if !errors.Is(err, ErrPinPath) || !strings.Contains(err.Error(), "create it on a bpf filesystem") {
		t.Fatalf("checkBPFFS of a missing directory = %v, want ErrPinPath", err)
	}
}
