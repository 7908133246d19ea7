package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The demo is a program, not a test, so internal/netnstest (built on
// testing.TB) does not fit; this is the same topology in a form that
// reports errors and registers its undo steps: a bastion and an attacker
// namespace joined by one veth pair, documentation addresses, static
// neighbours, no default route, nothing in the root namespace.

var (
	bastionV4  = netip.MustParseAddr("192.0.2.1")
	attackerV4 = netip.MustParseAddr("192.0.2.2")
)

// Every name the demo creates starts with one of these and carries the
// demo's pid, so the next run can tell a killed run's leftovers (pid
// gone) from a demo running beside it.
const (
	nsPrefix  = "xdemo-"
	pinPrefix = "xdpban-demo-"
	tmpPrefix = "xdpban-demo-"
	bpffs     = "/sys/fs/bpf"
	netnsDir  = "/var/run/netns"
)

// undo is a run's cleanup stack, run newest first.
type undo struct {
	mu  sync.Mutex
	fns []func()
}

func (u *undo) push(f func()) {
	u.mu.Lock()
	u.fns = append(u.fns, f)
	u.mu.Unlock()
}

// run undoes everything registered so far; safe to call twice.
func (u *undo) run() {
	u.mu.Lock()
	fns := u.fns
	u.fns = nil
	u.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func randomID() string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// runName is "<pid>-<random>": unique per run, even for runs in one
// process (the tests), and parseable by sweepStale.
func runName() string { return fmt.Sprintf("%d-%s", os.Getpid(), randomID()) }

// ns is a named network namespace of this run.
type ns struct {
	name   string
	handle netns.NsHandle
}

func (n *ns) path() string { return filepath.Join(netnsDir, n.name) }

func newNS(u *undo, name string) (*ns, error) {
	if err := ipCmd("netns", "add", name); err != nil {
		return nil, err
	}
	u.push(func() {
		// Deleting the namespace takes its veth end and XDP link with it.
		_ = ipCmd("netns", "del", name)
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	u.push(func() { h.Close() })
	return &ns{name: name, handle: h}, nil
}

// do runs f on an OS thread switched into the namespace: sockets made in
// f belong to it. A thread that cannot switch back stays locked, so the
// runtime retires it rather than reuse it in the wrong namespace.
func (n *ns) do(f func() error) error {
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
			errc <- fmt.Errorf("enter netns %s: %w", n.name, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return from netns %s: %w", n.name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// mac is the hardware address of dev in the namespace, asked over
// netlink: /sys/class/net shows the namespace /sys was mounted in.
func (n *ns) mac(dev string) (string, error) {
	h, err := netlink.NewHandleAt(n.handle)
	if err != nil {
		return "", fmt.Errorf("netlink in netns %s: %w", n.name, err)
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return "", fmt.Errorf("link %s in netns %s: %w", dev, n.name, err)
	}
	return l.Attrs().HardwareAddr.String(), nil
}

func ipCmd(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// network is the bastion and the attacker joined by a veth pair.
type network struct {
	bastion, attacker     *ns
	bastionIf, attackerIf string
}

func newNetwork(u *undo, id string) (*network, error) {
	short := id[strings.IndexByte(id, '-')+1:]
	n := &network{bastionIf: "xdm" + short + "b", attackerIf: "xdm" + short + "a"}
	var err error
	if n.bastion, err = newNS(u, nsPrefix+id+"-bastion"); err != nil {
		return nil, err
	}
	if n.attacker, err = newNS(u, nsPrefix+id+"-attacker"); err != nil {
		return nil, err
	}
	if err := ipCmd("-n", n.bastion.name, "link", "add", n.bastionIf, "type", "veth",
		"peer", "name", n.attackerIf, "netns", n.attacker.name); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		ns  *ns
		dev string
		v4  netip.Addr
	}{{n.bastion, n.bastionIf, bastionV4}, {n.attacker, n.attackerIf, attackerV4}} {
		for _, args := range [][]string{
			{"-n", side.ns.name, "link", "set", "lo", "up"},
			{"-n", side.ns.name, "addr", "add", side.v4.String() + "/24", "dev", side.dev},
			{"-n", side.ns.name, "link", "set", side.dev, "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
	}
	bMAC, err := n.bastion.mac(n.bastionIf)
	if err != nil {
		return nil, err
	}
	aMAC, err := n.attacker.mac(n.attackerIf)
	if err != nil {
		return nil, err
	}
	// Static neighbours: once the attacker is banned its ARP replies are
	// still let through (not IP), but a static entry keeps the demo from
	// depending on that.
	if err := ipCmd("-n", n.attacker.name, "neigh", "replace", bastionV4.String(), "lladdr",
		bMAC, "dev", n.attackerIf, "nud", "permanent"); err != nil {
		return nil, err
	}
	if err := ipCmd("-n", n.bastion.name, "neigh", "replace", attackerV4.String(), "lladdr",
		aMAC, "dev", n.bastionIf, "nud", "permanent"); err != nil {
		return nil, err
	}
	return n, nil
}

// sweepStale removes what demos killed with SIGKILL left behind (their
// pid is gone): the daemon they started, then namespaces, pin dirs and
// scratch dirs. It returns what it removed, for the narration.
func sweepStale() []string {
	var removed []string
	dead := func(name, prefix string) bool {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			return false
		}
		p, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(p)
		return err == nil && pid > 0 && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
	}
	// A stale daemon is found by its command line, which names the
	// dead demo's scratch config dir; it is ended by pid.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			dir := filepath.Base(filepath.Dir(string(arg)))
			if filepath.Base(string(arg)) == "etc" && dead(dir, tmpPrefix) {
				stopPID(pid)
				removed = append(removed, fmt.Sprintf("xdpban daemon pid %d", pid))
				break
			}
		}
	}
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if dead(e.Name(), nsPrefix) && ipCmd("netns", "del", e.Name()) == nil {
			removed = append(removed, "netns "+e.Name())
		}
	}
	pins, _ := os.ReadDir(bpffs)
	for _, e := range pins {
		if dead(e.Name(), pinPrefix) && os.RemoveAll(filepath.Join(bpffs, e.Name())) == nil {
			removed = append(removed, filepath.Join(bpffs, e.Name()))
		}
	}
	tmps, _ := os.ReadDir(os.TempDir())
	for _, e := range tmps {
		if dead(e.Name(), tmpPrefix) && os.RemoveAll(filepath.Join(os.TempDir(), e.Name())) == nil {
			removed = append(removed, filepath.Join(os.TempDir(), e.Name()))
		}
	}
	return removed
}

// stopPID asks a process to stop and kills it if it has not within 5s.
func stopPID(pid int) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
