package nspair

import (
	"os"
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
