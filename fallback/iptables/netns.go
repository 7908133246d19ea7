package iptables

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// nsRunner runs code inside one network namespace. iptables is a program
// xdpban execs, and a child inherits the network namespace of the thread
// that forks it, so every exec happens on a locked thread switched into
// the target namespace. ipset goes over a netlink socket opened in the
// namespace and needs none of this.
type nsRunner struct {
	ns netns.NsHandle // closed handle (-1): the caller's namespace
}

func openNS(path string) (nsRunner, error) {
	if path == "" {
		return nsRunner{ns: netns.None()}, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nsRunner{}, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return nsRunner{ns: h}, nil
}

func (r nsRunner) do(fn func() error) error {
	if !r.ns.IsOpen() {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(r.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and in the wrong namespace: the runtime
		// destroys a thread whose goroutine exits locked, so it cannot
		// leak into other goroutines.
		return errors.Join(ferr, fmt.Errorf("return to original network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func (r nsRunner) close() {
	if r.ns.IsOpen() {
		r.ns.Close()
	}
}
