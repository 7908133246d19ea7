package nspair

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetnsDir is where `ip netns` keeps its namespaces' bind mounts.
const NetnsDir = "/var/run/netns"

// NS is a named network namespace of this process.
type NS struct {
	Name   string
	handle netns.NsHandle
	once   sync.Once
	err    error
}

// NewNS creates a lone namespace "<prefix><NewID>-<role>", for a program
// that needs isolating but no traffic (a fail2ban server with stamp-only
// actions). The caller must Close it.
func NewNS(prefix, role string) (*NS, error) {
	return newNS(prefix + NewID() + "-" + role)
}

func newNS(name string) (*NS, error) {
	if err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		_ = ip("netns", "del", name)
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	return &NS{Name: name, handle: h}, nil
}

// Close closes the handle and deletes the namespace, once: whatever was
// inside (veth ends, XDP links, netfilter rules, ipsets) goes with it.
func (n *NS) Close() error {
	n.once.Do(func() {
		n.handle.Close()
		n.err = ip("netns", "del", n.Name)
	})
	return n.err
}

// Handle is an open handle on the namespace (for netlink.NewHandleAt and
// the like), valid until the pair is closed.
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Path is the namespace's bind mount, usable with `nsenter --net=`.
func (n *NS) Path() string { return filepath.Join(NetnsDir, n.Name) }

// Do runs f on an OS thread switched into the namespace. Sockets, BPF
// links and netlink sockets created inside f belong to the namespace and
// stay there after f returns. The thread is switched back before it is
// released; if that fails the thread is left locked so the Go runtime
// retires it instead of reusing a thread in the wrong namespace.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with this goroutine.
			errc <- fmt.Errorf("return from netns %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// MAC is the hardware address of dev in the namespace, asked over
// netlink: /sys/class/net shows the namespace /sys was mounted in.
func (n *NS) MAC(dev string) (net.HardwareAddr, error) {
	h, err := netlink.NewHandleAt(n.handle)
	if err != nil {
		return nil, fmt.Errorf("netlink in netns %s: %w", n.Name, err)
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("link %s in netns %s: %w", dev, n.Name, err)
	}
	return l.Attrs().HardwareAddr, nil
}

// sysctl writes a /proc/sys value of the namespace (from a thread in it:
// /proc/sys/net is the reader's namespace's).
func (n *NS) sysctl(key, val string) error {
	return n.Do(func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in netns %s: %w", strings.ReplaceAll(key, "/", "."), val, n.Name, err)
		}
		return nil
	})
}

// Command is a command that will run inside the namespace (`ip netns
// exec`, which also remounts /sys for it: use nsenter --net=Path() for a
// program that needs the bpffs).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Output runs a command inside the namespace and returns its combined
// output, also on error.
func (n *NS) Output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := n.Command(ctx, name, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return b.String(), fmt.Errorf("in netns %s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(b.Bytes()))
	}
	return b.String(), nil
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
