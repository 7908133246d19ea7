// Package netnstest builds the isolated networks xdpban's privileged tests
// run in: a protected host and an attacker, each in a network namespace of
// its own, joined by one veth pair and nothing else. No interface of the
// pair ever exists in the root namespace and neither namespace has a
// default route, so no test packet can reach the machine's real network.
//
// Everything is removed in t.Cleanup, so a failing test leaves nothing
// behind.
package netnstest

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
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// Documentation addresses of the pair (RFC 5737 / RFC 3849).
var (
	HostV4     = netip.MustParseAddr("192.0.2.1")
	AttackerV4 = netip.MustParseAddr("192.0.2.2")
	HostV6     = netip.MustParseAddr("2001:db8::1")
	AttackerV6 = netip.MustParseAddr("2001:db8::2")
)

// Require skips a test that needs root (namespaces, XDP, netfilter) when
// it runs unprivileged. Under CI=true it never skips: CI is root, so a
// missing privilege there is a failure to report, not to hide.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err != nil {
			t.Fatalf("privileged test needs iproute2's ip: %v (apt-get install iproute2)", err)
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("privileged test needs root (CAP_NET_ADMIN, CAP_BPF); CI must run as root")
	}
	t.Skip("skipping privileged test: needs root (CAP_NET_ADMIN, CAP_BPF); run `sudo make test`")
}

// NS is a named network namespace created by the test.
type NS struct {
	Name   string
	handle netns.NsHandle
}

// Handle is an open handle on the namespace (for netlink.NewHandleAt and
// the like). It stays valid until the test's cleanup.
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Path is the namespace's bind mount, usable with `nsenter --net=`.
func (n *NS) Path() string { return filepath.Join("/var/run/netns", n.Name) }

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
			// Thread stays locked and dies with this goroutine.
			errc <- fmt.Errorf("return from netns %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Run runs a command inside the namespace (`ip netns exec`) and returns
// its combined output; a failure fails the test.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Output(name, args...)
	if err != nil {
		t.Fatalf("in netns %s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Output is Run without the test: it returns the error.
func (n *NS) Output(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// Pair is a protected host and an attacker joined by a veth pair.
type Pair struct {
	Host, Attacker *NS
	// HostIf is the host's end of the veth (where XDP is attached),
	// AttackerIf the attacker's.
	HostIf, AttackerIf string
}

// New creates the two namespaces and the veth pair between them, with
// HostV4/HostV6 on the host end and AttackerV4/AttackerV6 on the attacker
// end, static neighbour entries (so a ban on the attacker cannot starve
// ARP/ND and stop its packets from being sent at all), and rp_filter off
// on the host (so extra attacker sources from other ranges arrive).
func New(t testing.TB) *Pair {
	t.Helper()
	Require(t)
	id := randomID()
	p := &Pair{HostIf: "xb-h" + id, AttackerIf: "xb-a" + id}
	p.Host = newNS(t, "xbh-"+id)
	p.Attacker = newNS(t, "xba-"+id)
	p.AddVeth(t)
	return p
}

// DeleteVeth deletes the veth, as an operator rebuilding an interface
// does: whatever was attached to it is gone with it. AddVeth makes it
// again under the same names and addresses.
func (p *Pair) DeleteVeth(t testing.TB) {
	t.Helper()
	ipCmd(t, "-n", p.Host.Name, "link", "del", p.HostIf)
}

// AddVeth makes the veth pair with both ends configured.
func (p *Pair) AddVeth(t testing.TB) {
	t.Helper()
	ipCmd(t, "-n", p.Host.Name, "link", "add", p.HostIf, "type", "veth",
		"peer", "name", p.AttackerIf, "netns", p.Attacker.Name)
	for _, side := range []struct {
		ns  *NS
		dev string
		v4  netip.Addr
		v6  netip.Addr
	}{{p.Host, p.HostIf, HostV4, HostV6}, {p.Attacker, p.AttackerIf, AttackerV4, AttackerV6}} {
		ipCmd(t, "-n", side.ns.Name, "link", "set", "lo", "up")
		ipCmd(t, "-n", side.ns.Name, "addr", "add", side.v4.String()+"/24", "dev", side.dev)
		ipCmd(t, "-n", side.ns.Name, "addr", "add", side.v6.String()+"/64", "dev", side.dev, "nodad")
		ipCmd(t, "-n", side.ns.Name, "link", "set", side.dev, "up")
	}
	for _, k := range []string{"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf." + p.HostIf + ".rp_filter=0"} {
		p.Host.Run(t, "sysctl", "-qw", k)
	}
	hostMAC := p.mac(t, p.Host, p.HostIf)
	attMAC := p.mac(t, p.Attacker, p.AttackerIf)
	for _, a := range []netip.Addr{HostV4, HostV6} {
		ipCmd(t, "-n", p.Attacker.Name, "neigh", "replace", a.String(), "lladdr", hostMAC,
			"dev", p.AttackerIf, "nud", "permanent")
	}
	for _, a := range []netip.Addr{AttackerV4, AttackerV6} {
		ipCmd(t, "-n", p.Host.Name, "neigh", "replace", a.String(), "lladdr", attMAC,
			"dev", p.HostIf, "nud", "permanent")
	}
}

// AddAttackerAddr gives the attacker another source address (any
// documentation range; the host still reaches it through the veth).
func (p *Pair) AddAttackerAddr(t testing.TB, a netip.Addr) {
	t.Helper()
	if !isDocumentation(a) {
		t.Fatalf("netnstest: %s is not a documentation address; use 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32", a)
	}
	bits := 32
	extra := []string{}
	if a.Is6() {
		bits = 128
		extra = []string{"nodad"}
	}
	args := append([]string{"-n", p.Attacker.Name, "addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", p.AttackerIf}, extra...)
	ipCmd(t, args...)
}

func (p *Pair) mac(t testing.TB, ns *NS, dev string) string {
	t.Helper()
	// /sys/class/net shows the namespace of the reader, so read it there.
	return strings.TrimSpace(ns.Run(t, "cat", "/sys/class/net/"+dev+"/address"))
}

func newNS(t testing.TB, name string) *NS {
	t.Helper()
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		// Deleting the namespace destroys the veth and every XDP link,
		// netfilter rule and ipset inside it.
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("netnstest: delete netns %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return &NS{Name: name, handle: h}
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// PinDir returns a fresh bpffs directory path of the test's own (not yet
// created) and removes whatever is pinned there when the test ends, so
// tests never touch the default /sys/fs/bpf/xdpban.
func PinDir(t testing.TB) string {
	t.Helper()
	Require(t)
	dir := filepath.Join("/sys/fs/bpf", "xdpban-test-"+randomID())
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func randomID() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
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
