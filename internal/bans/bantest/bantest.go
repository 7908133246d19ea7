// Package bantest is the conformance suite every bans.Backend passes: the
// same end-to-end checks, with real packets across an nspairtest veth pair,
// for XDP and for netfilter, so both backends give the same guarantees.
package bantest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// Factory prepares a backend protecting p.Host on p.HostIf and returns
// its opener. The opener may be called again after Close (a daemon
// restart) and must then adopt the state the first one left: same pin
// directory, same chain and sets.
type Factory func(t *testing.T, p *nspairtest.Pair) (open func() bans.Backend)

const port = 7007

// Run runs every conformance check as a subtest, each on a fresh pair.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"BanDropsAndCounts", banDropsAndCounts},
		{"UnbanRestores", unbanRestores},
		{"IPv6CoversSlash64", ipv6CoversSlash64},
		{"PrefixBans", prefixBans},
		{"ExpiresByItself", expiresByItself},
		{"RestartKeepsBans", restartKeepsBans},
		{"FlushRemovesAll", flushRemovesAll},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := nspairtest.New(t)
			open := f(t, p)
			b := open()
			t.Cleanup(func() { b.Detach() })
			e := &env{p: p, b: b, open: open, r: p.Listen(t, port)}
			tc.fn(t, e)
		})
	}
}

type env struct {
	p    *nspairtest.Pair
	b    bans.Backend
	open func() bans.Backend
	r    *nspairtest.Receiver
}

var w bans.Widen

func (e *env) send(t *testing.T, from netip.Addr, n int) int {
	t.Helper()
	s := e.p.Sender(t, from, port)
	return nspairtest.Deliver(t, s, e.r, n, 300*time.Millisecond)
}

func (e *env) mustPass(t *testing.T, from netip.Addr) {
	t.Helper()
	if got := e.send(t, from, 20); got != 20 {
		t.Fatalf("%s: %d of 20 datagrams arrived, want all (not banned)", from, got)
	}
}

func (e *env) mustDrop(t *testing.T, from netip.Addr, n int) {
	t.Helper()
	if got := e.send(t, from, n); got != 0 {
		t.Fatalf("%s: %d of %d datagrams arrived, want none (banned)", from, got, n)
	}
}

func (e *env) add(t *testing.T, p netip.Prefix, d time.Duration) {
	t.Helper()
	b := bans.Ban{Prefix: p, Jail: "conformance"}
	if d > 0 {
		b.Expires = time.Now().Add(d)
	}
	if err := e.b.Add(context.Background(), b); err != nil {
		t.Fatalf("add %s: %v", p, err)
	}
}

func find(t *testing.T, b bans.Backend, p netip.Prefix) (bans.Ban, bool) {
	t.Helper()
	list, err := b.List(context.Background())
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, x := range list {
		if x.Prefix == p {
			return x, true
		}
	}
	return bans.Ban{}, false
}

func banDropsAndCounts(t *testing.T, e *env) {
	a := nspairtest.AttackerV4
	e.mustPass(t, a)
	pfx := w.Addr(a)
	e.add(t, pfx, time.Hour)
	const n = 40
	e.mustDrop(t, a, n)
	got, ok := find(t, e.b, pfx)
	if !ok {
		t.Fatalf("%s missing from List after Add", pfx)
	}
	if got.Jail != "conformance" {
		t.Errorf("jail = %q, want conformance", got.Jail)
	}
	if got.Packets != n {
		t.Errorf("packets dropped = %d, want %d", got.Packets, n)
	}
	// IP length 60 (20+8+32); a backend counting frames adds 14 of Ethernet.
	if got.Bytes < n*60 || got.Bytes > n*74 {
		t.Errorf("bytes dropped = %d, want between %d and %d", got.Bytes, n*60, n*74)
	}
	if rem := got.Remaining(time.Now()); rem < 59*time.Minute || rem > time.Hour {
		t.Errorf("remaining = %v, want about 1h", rem)
	}
}

func unbanRestores(t *testing.T, e *env) {
	a := nspairtest.AttackerV4
	pfx := w.Addr(a)
	e.add(t, pfx, time.Hour)
	e.mustDrop(t, a, 10)
	n, err := e.b.Delete(context.Background(), pfx)
	if err != nil || n != 1 {
		t.Fatalf("delete %s = %d, %v; want 1, nil", pfx, n, err)
	}
	e.mustPass(t, a)
	if n, err := e.b.Delete(context.Background(), pfx); err != nil || n != 0 {
		t.Fatalf("second delete %s = %d, %v; want 0, nil", pfx, n, err)
	}
}

func ipv6CoversSlash64(t *testing.T, e *env) {
	same64 := netip.MustParseAddr("2001:db8::99")
	other64 := netip.MustParseAddr("2001:db8:1::9")
	e.p.AddAttackerAddr(t, same64)
	e.p.AddAttackerAddr(t, other64)
	e.mustPass(t, nspairtest.AttackerV6)

	pfx := w.Addr(nspairtest.AttackerV6)
	if pfx.Bits() != 64 {
		t.Fatalf("default widening gave /%d, want /64", pfx.Bits())
	}
	e.add(t, pfx, time.Hour)
	e.mustDrop(t, nspairtest.AttackerV6, 10)
	e.mustDrop(t, same64, 10)
	e.mustPass(t, other64)
	e.mustPass(t, nspairtest.AttackerV4)
}

func prefixBans(t *testing.T, e *env) {
	in4 := netip.MustParseAddr("198.51.100.9")
	in6 := netip.MustParseAddr("2001:db8:5:7::9")
	e.p.AddAttackerAddr(t, in4)
	e.p.AddAttackerAddr(t, in6)
	e.mustPass(t, in4)
	e.add(t, netip.MustParsePrefix("198.51.100.0/24"), time.Hour)
	e.add(t, netip.MustParsePrefix("2001:db8:5::/48"), 0)
	e.mustDrop(t, in4, 10)
	e.mustDrop(t, in6, 10)
	e.mustPass(t, nspairtest.AttackerV4)
	e.mustPass(t, nspairtest.AttackerV6)
	got, ok := find(t, e.b, netip.MustParsePrefix("2001:db8:5::/48"))
	if !ok || !got.Permanent() || got.Packets != 10 {
		t.Errorf("permanent /48 entry = %+v, %v; want permanent with 10 packets", got, ok)
	}
}

func expiresByItself(t *testing.T, e *env) {
	a := nspairtest.AttackerV4
	pfx := w.Addr(a)
	e.add(t, pfx, 2*time.Second)
	e.mustDrop(t, a, 10)
	time.Sleep(2500 * time.Millisecond)
	// Enforcement ends at the expiry even before userspace sweeps.
	e.mustPass(t, a)
	gone, err := e.b.Expire(context.Background(), time.Now())
	if err != nil {
		t.Fatalf("expire: %v", err)
	}
	if len(gone) != 1 || gone[0].Prefix != pfx {
		t.Fatalf("expire returned %v, want [%s]", gone, pfx)
	}
	if _, ok := find(t, e.b, pfx); ok {
		t.Fatalf("%s still listed after Expire", pfx)
	}
}

func restartKeepsBans(t *testing.T, e *env) {
	v4, v6 := nspairtest.AttackerV4, nspairtest.AttackerV6
	e.add(t, w.Addr(v4), time.Hour)
	e.add(t, w.Addr(v6), 0)
	if err := e.b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// The daemon is gone: enforcement must go on without it.
	e.mustDrop(t, v4, 10)
	e.mustDrop(t, v6, 10)

	e.b = e.open()
	e.mustDrop(t, v4, 10)
	got, ok := find(t, e.b, w.Addr(v4))
	if !ok || got.Jail != "conformance" || got.Packets != 20 {
		t.Fatalf("after restart %s = %+v, %v; want jail conformance, 20 packets", w.Addr(v4), got, ok)
	}
	if rem := got.Remaining(time.Now()); rem < 59*time.Minute {
		t.Errorf("after restart remaining = %v, want about 1h", rem)
	}
	if got, ok := find(t, e.b, w.Addr(v6)); !ok || !got.Permanent() {
		t.Errorf("after restart %s = %+v, %v; want permanent", w.Addr(v6), got, ok)
	}
}

func flushRemovesAll(t *testing.T, e *env) {
	e.add(t, w.Addr(nspairtest.AttackerV4), time.Hour)
	e.add(t, w.Addr(nspairtest.AttackerV6), time.Hour)
	e.add(t, netip.MustParsePrefix("203.0.113.0/24"), time.Hour)
	n, err := e.b.Flush(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("flush = %d, %v; want 3, nil", n, err)
	}
	e.mustPass(t, nspairtest.AttackerV4)
	e.mustPass(t, nspairtest.AttackerV6)
	list, err := e.b.List(context.Background())
	if err != nil || len(list) != 0 {
		t.Fatalf("list after flush = %v, %v; want empty", list, err)
	}
}
