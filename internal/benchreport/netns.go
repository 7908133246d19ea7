package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netns"
)

// The benchmark is a program, not a test, so internal/netnstest (built on
// testing.TB) cannot be used as is. This file builds the same topology:
// a host and an attacker namespace joined by one veth pair, documentation
// addresses, static neighbours, no default route, nothing in the root
// namespace. Everything it creates is registered with the cleanup stack,
// which main runs on exit, on SIGINT/SIGTERM and after a panic.

var (
	hostV4     = netip.MustParseAddr("192.0.2.1")
	attackerV4 = netip.MustParseAddr("192.0.2.2")
	hostV6     = netip.MustParseAddr("2001:db8::1")
	attackerV6 = netip.MustParseAddr("2001:db8::2")
)

// nsPrefix names every namespace this program creates, with its pid, so a
// later run can remove what a killed run (SIGKILL) left behind.
const nsPrefix = "xbb-"

// cleanups is the process-wide undo stack.
var cleanups struct {
	sync.Mutex
	fns []func()
}

func atCleanup(f func()) {
	cleanups.Lock()
	cleanups.fns = append(cleanups.fns, f)
	cleanups.Unlock()
}

// runCleanups undoes everything, newest first. Safe to call twice.
func runCleanups() {
	cleanups.Lock()
	fns := cleanups.fns
	cleanups.fns = nil
	cleanups.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// sweepStale deletes namespaces and pin dirs of earlier runs whose
// process is gone (a run killed with SIGKILL cannot clean up itself).
func sweepStale() {
	ents, _ := os.ReadDir("/var/run/netns")
	for _, e := range ents {
		if pid, ok := stalePID(e.Name(), nsPrefix); ok && !alive(pid) {
			slog.Info("removing namespace left by an earlier run", "netns", e.Name())
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
	pins, _ := os.ReadDir("/sys/fs/bpf")
	for _, e := range pins {
		if pid, ok := stalePID(e.Name(), "xdpban-bench-"); ok && !alive(pid) {
			slog.Info("removing pin dir left by an earlier run", "dir", e.Name())
			_ = os.RemoveAll(filepath.Join("/sys/fs/bpf", e.Name()))
		}
	}
}

// stalePID reads the pid out of "<prefix><pid>-<id>...".
func stalePID(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	p, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(p)
	return pid, err == nil && pid > 0
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil || pid == os.Getpid()
}

func randomID() string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// pinDir returns a fresh bpffs directory name of this run (not created),
// removed at cleanup.
func pinDir() string {
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xdpban-bench-%d-%s", os.Getpid(), randomID()))
	atCleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// NS is a network namespace of this run.
type NS struct {
	Name   string
	handle netns.NsHandle
}

func newNS(role string) (*NS, error) {
	name := fmt.Sprintf("%s%d-%s-%s", nsPrefix, os.Getpid(), randomID(), role)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("create netns %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	atCleanup(func() {
		// Deleting the namespace removes its veth end, XDP links,
		// netfilter rules and ipsets with it.
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			slog.Warn("delete netns", "netns", name, "err", err, "out", string(out))
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	atCleanup(func() { h.Close() })
	return &NS{Name: name, handle: h}, nil
}

// Path is the namespace's bind mount.
func (n *NS) Path() string { return filepath.Join("/var/run/netns", n.Name) }

// Do runs f on an OS thread switched into the namespace. A thread that
// cannot switch back stays locked so the runtime retires it.
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
			errc <- fmt.Errorf("return from netns %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Command is a command that will run inside the namespace.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Output runs a command inside the namespace and returns its combined
// output.
func (n *NS) Output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Pair is a protected host and an attacker joined by a veth pair.
type Pair struct {
	Host, Attacker     *NS
	HostIf, AttackerIf string
}

func ipCmd(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newPair builds the two namespaces and the veth between them.
func newPair() (*Pair, error) {
	id := randomID()
	p := &Pair{HostIf: "xbbh" + id, AttackerIf: "xbba" + id}
	var err error
	if p.Host, err = newNS("host"); err != nil {
		return nil, err
	}
	if p.Attacker, err = newNS("att"); err != nil {
		return nil, err
	}
	if err := ipCmd("-n", p.Host.Name, "link", "add", p.HostIf, "type", "veth",
		"peer", "name", p.AttackerIf, "netns", p.Attacker.Name); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		ns     *NS
		dev    string
		v4, v6 netip.Addr
	}{{p.Host, p.HostIf, hostV4, hostV6}, {p.Attacker, p.AttackerIf, attackerV4, attackerV6}} {
		for _, args := range [][]string{
			{"-n", side.ns.Name, "link", "set", "lo", "up"},
			{"-n", side.ns.Name, "addr", "add", side.v4.String() + "/24", "dev", side.dev},
			{"-n", side.ns.Name, "addr", "add", side.v6.String() + "/64", "dev", side.dev, "nodad"},
			{"-n", side.ns.Name, "link", "set", side.dev, "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
	}
	ctx := context.Background()
	for _, k := range []string{"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf." + p.HostIf + ".rp_filter=0"} {
		if _, err := p.Host.Output(ctx, "sysctl", "-qw", k); err != nil {
			return nil, err
		}
	}
	hostMAC, err := p.Host.Output(ctx, "cat", "/sys/class/net/"+p.HostIf+"/address")
	if err != nil {
		return nil, err
	}
	attMAC, err := p.Attacker.Output(ctx, "cat", "/sys/class/net/"+p.AttackerIf+"/address")
	if err != nil {
		return nil, err
	}
	// Static neighbours: a ban on the attacker must not starve ARP/ND and
	// stop its packets from being sent at all.
	for _, a := range []netip.Addr{hostV4, hostV6} {
		if err := ipCmd("-n", p.Attacker.Name, "neigh", "replace", a.String(), "lladdr",
			strings.TrimSpace(hostMAC), "dev", p.AttackerIf, "nud", "permanent"); err != nil {
			return nil, err
		}
	}
	for _, a := range []netip.Addr{attackerV4, attackerV6} {
		if err := ipCmd("-n", p.Host.Name, "neigh", "replace", a.String(), "lladdr",
			strings.TrimSpace(attMAC), "dev", p.HostIf, "nud", "permanent"); err != nil {
			return nil, err
		}
	}
	return p, nil
}

var docRanges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func isDocumentation(a netip.Addr) bool {
	for _, p := range docRanges {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// addAttackerAddr gives the attacker another documentation source
// address.
func (p *Pair) addAttackerAddr(a netip.Addr) error {
	if !isDocumentation(a) {
		return fmt.Errorf("attacker address %s is not a documentation address: use 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32", a)
	}
	bits, extra := 32, []string{}
	if a.Is6() {
		bits, extra = 128, []string{"nodad"}
	}
	return ipCmd(append([]string{"-n", p.Attacker.Name, "addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", p.AttackerIf}, extra...)...)
}
