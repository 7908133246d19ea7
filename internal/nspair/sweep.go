package nspair

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Stale reports whether name is "<prefix><pid>-..." of a process that is
// gone. Only ESRCH counts as gone: a live process of another user
// answers EPERM, and its things are not ours to remove. This process's
// own names are never stale.
func Stale(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	p, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// Sweep deletes the namespaces named "<prefix><pid>-..." whose pid is
// gone (see Stale) and returns their names.
func Sweep(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep stale namespaces: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if !Stale(e.Name(), prefix) {
			continue
		}
		if err := ip("netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// SweepDir removes the entries of dir named "<prefix><pid>-..." whose pid
// is gone (pin dirs on the bpffs, scratch dirs) and returns their paths.
func SweepDir(dir, prefix string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep stale entries of %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if !Stale(e.Name(), prefix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("remove stale %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}
