package loader

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrPinInUse: another running xdpban holds the pin path.
var ErrPinInUse = errors.New("in use by another xdpban daemon")

// lockDir takes an exclusive, non-blocking flock on a directory (as
// cloudflare/tubular locks its bpffs state). The lock lives as long as
// the returned file and ends with the process, kill -9 included, so a
// crashed daemon never leaves the pin path locked.
//
// A fresh start locks its staging directory before pinning into it:
// the rename that publishes it keeps the inode, so the lock covers the
// pin path from its first appearance.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s to lock it: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("pin path %s: %w: stop it first, or give this one its own pin_path", dir, ErrPinInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// locked reports whether a live process holds dir's lock.
func locked(dir string) bool {
	f, err := lockDir(dir)
	if err != nil {
		return errors.Is(err, ErrPinInUse)
	}
	f.Close()
	return false
}
