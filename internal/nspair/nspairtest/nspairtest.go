// Package nspairtest is internal/nspair for tests: the isolated network
// xdpban's privileged tests run in (a protected host and an attacker, each
// in a network namespace of its own, joined by one veth pair and nothing
// else), tied to a testing.TB, plus the traffic helpers tests measure
// with.
//
// Everything is removed in t.Cleanup, so a failing test leaves nothing
// behind; namespaces of a test binary killed before its cleanup are
// removed by the next New.
package nspairtest

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/xdpban/xdpban/internal/nspair"
)

// Documentation addresses of the pair (RFC 5737 / RFC 3849).
var (
	HostV4     = nspair.HostV4
	AttackerV4 = nspair.AttackerV4
	HostV6     = nspair.HostV6
	AttackerV6 = nspair.AttackerV6
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

// NS is a network namespace of the test's pair.
type NS struct {
	*nspair.NS
}

// Run runs a command inside the namespace (`ip netns exec`) and returns
// its combined output; a failure fails the test.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Output(name, args...)
	if err != nil {
		// The error carries the output.
		t.Fatal(err)
	}
	return out
}

// Output is Run without the test: it returns the error.
func (n *NS) Output(name string, args ...string) (string, error) {
	return n.NS.Output(context.Background(), name, args...)
}

// Pair is a protected host and an attacker joined by a veth pair (see
// nspair.Pair), owned by one test.
type Pair struct {
	Host, Attacker *NS
	// HostIf is the host's end of the veth (where XDP is attached),
	// AttackerIf the attacker's.
	HostIf, AttackerIf string
	pair               *nspair.Pair
}

// nsPrefix names the test pairs' namespaces, with the test binary's pid:
// a binary killed by its -timeout runs no cleanup, and the next New
// removes what it left.
const nsPrefix = "xbt-"

var sweepOnce sync.Once

// New creates the pair (see nspair.New) and deletes it when the test
// ends.
func New(t testing.TB) *Pair {
	t.Helper()
	Require(t)
	sweepOnce.Do(func() {
		if removed, err := nspair.Sweep(nsPrefix); err != nil || len(removed) > 0 {
			t.Logf("nspairtest: removed namespaces of killed test runs: %v (%v)", removed, err)
		}
	})
	np, err := nspair.New(nspair.Config{Prefix: nsPrefix, IfPrefix: "xb-"})
	if err != nil {
		t.Fatalf("nspairtest: %v", err)
	}
	t.Cleanup(func() {
		if err := np.Close(); err != nil {
			t.Logf("nspairtest: %v", err)
		}
	})
	return &Pair{Host: &NS{np.Host}, Attacker: &NS{np.Attacker}, HostIf: np.HostIf, AttackerIf: np.AttackerIf, pair: np}
}

// DeleteVeth deletes the veth, as an operator rebuilding an interface
// does: whatever was attached to it is gone with it. AddVeth makes it
// again under the same names and addresses.
func (p *Pair) DeleteVeth(t testing.TB) {
	t.Helper()
	if err := p.pair.DeleteVeth(); err != nil {
		t.Fatal(err)
	}
}

// AddVeth makes the veth pair with both ends configured.
func (p *Pair) AddVeth(t testing.TB) {
	t.Helper()
	if err := p.pair.AddVeth(); err != nil {
		t.Fatal(err)
	}
}

// AddAttackerAddr gives the attacker another source address (any
// documentation range; the host still reaches it through the veth).
func (p *Pair) AddAttackerAddr(t testing.TB, a netip.Addr) {
	t.Helper()
	if err := p.pair.AddAttackerAddr(a); err != nil {
		t.Fatalf("nspairtest: %v", err)
	}
}

// PinDir returns a fresh bpffs directory path of the test's own (not yet
// created) and removes whatever is pinned there when the test ends, so
// tests never touch the default /sys/fs/bpf/xdpban.
func PinDir(t testing.TB) string {
	t.Helper()
	Require(t)
	dir := filepath.Join("/sys/fs/bpf", "xdpban-test-"+nspair.NewID())
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
