package loader

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// flood runs n copies of frame on one CPU (the hit cache is per CPU, so
// the slot warmed is the one the next packets meet) and checks each
// verdict.
func flood(t *testing.T, x *XDP, frame []byte, n int, want uint32) {
	t.Helper()
	floodOn(t, x, 0, frame, n, want)
}

func floodOn(t *testing.T, x *XDP, cpu int, frame []byte, n int, want uint32) {
	t.Helper()
	onCPU(t, cpu, func() {
		for i := 0; i < n; i++ {
			if got := run(t, x, frame); got != want {
				t.Errorf("packet %d of %d: verdict %d, want %d", i+1, n, got, want)
				return
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
}

// collidingPair returns two IPv4 documentation addresses whose exact
// keys share a hit-cache slot (768 addresses in 1,024 slots: the birthday
// bound makes a pair all but certain).
func collidingPair(t *testing.T) (netip.Addr, netip.Addr) {
	t.Helper()
	seen := map[uint32]netip.Addr{}
	for _, base := range [][3]byte{{203, 0, 113}, {198, 51, 100}, {192, 0, 2}} {
		for i := 1; i < 255; i++ {
			b := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(i)})
			idx := hitKeyOfAddr(b).index()
			if a, ok := seen[idx]; ok {
				return a, b
			}
			seen[idx] = b
		}
	}
	t.Fatal("no two documentation addresses share a slot")
	return netip.Addr{}, netip.Addr{}
}

func hitKeyOfAddr(a netip.Addr) hitKey {
	k := hitKey{family: 4}
	a4 := a.As4()
	copy(k.addr[:], a4[:])
	return k
}

// TestHitCacheUnban: a source whose slot a flood has warmed passes from
// the very next packet after its unban, for IPv4 and IPv6, and a new ban
// is enforced from its first packet.
func TestHitCacheUnban(t *testing.T) {
	x := loadDetached(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		ban   string
		frame []byte
	}{
		{"192.0.2.80", udp4(addr("192.0.2.80"))},
		{"2001:db8:0:80::/64", udp6(addr("2001:db8:0:80::1"))},
	} {
		flood(t, x, tc.frame, 1, xdpPass) // a miss is not cached
		mustAdd(t, x, bans.Ban{Prefix: pfx(tc.ban), Jail: "sshd"})
		flood(t, x, tc.frame, 1000, xdpDrop)
		if n, err := x.Delete(ctx, pfx(tc.ban)); err != nil || n != 1 {
			t.Fatalf("unban %s: %d, %v", tc.ban, n, err)
		}
		flood(t, x, tc.frame, 1, xdpPass)
		// Banned again with AddNew (no bump): the cache never held the
		// miss, so the first packet drops.
		if err := x.AddNew(ctx, bans.Ban{Prefix: pfx(tc.ban)}); err != nil {
			t.Fatal(err)
		}
		flood(t, x, tc.frame, 1, xdpDrop)
		if _, err := x.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		flood(t, x, tc.frame, 1, xdpPass)
	}
	// Expire removes a warm entry: its source passes as passed, not
	// dropped by the slot.
	a := addr("192.0.2.81")
	mustAdd(t, x, bans.Ban{Prefix: pfx("192.0.2.81"), Expires: time.Now().Add(time.Hour)})
	flood(t, x, udp4(a), 100, xdpDrop)
	if _, err := x.Expire(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	before := counters(t, x)["passed"]
	flood(t, x, udp4(a), 1, xdpPass)
	if got := counters(t, x)["passed"]; got != before+1 {
		t.Fatalf("passed counter %d → %d after the expired ban's removal, want +1", before, got)
	}
}

// TestHitCacheReban: changing a warm ban in place (scope, expiry) takes
// effect at the next packet, and expiry is honoured from the slot.
func TestHitCacheReban(t *testing.T) {
	x := loadDetached(t, Options{})
	a := addr("192.0.2.90")
	mustAdd(t, x, ban("192.0.2.90", "sshd", time.Hour))
	flood(t, x, udp4to(a, 9999), 1000, xdpDrop)
	// Narrowed to tcp/22: UDP to 9999 now passes, tcp/22 still drops.
	mustAdd(t, x, scoped("192.0.2.90", "sshd", "tcp/22"))
	flood(t, x, udp4to(a, 9999), 1, xdpPass)
	flood(t, x, tcp4(a, 22, tcpSYN), 1000, xdpDrop)
	flood(t, x, udp4to(a, 9999), 1, xdpPass)
	// Widened back to all traffic.
	mustAdd(t, x, ban("192.0.2.90", "sshd", time.Hour))
	flood(t, x, udp4to(a, 9999), 1000, xdpDrop)
	// Re-banned with an expiry already past: passes as expired.
	mustAdd(t, x, ban("192.0.2.90", "sshd", -time.Second))
	before := counters(t, x)["expired_pass"]
	flood(t, x, udp4to(a, 9999), 1, xdpPass)
	if got := counters(t, x)["expired_pass"]; got != before+1 {
		t.Fatalf("expired_pass %d → %d, want +1", before, got)
	}

	// The same for IPv6, whose fast path checks the slot before the
	// extension headers (walked only for a scope).
	v6 := addr("2001:db8:0:90::1")
	mustAdd(t, x, bans.Ban{Prefix: pfx("2001:db8:0:90::/64"), Jail: "sshd"})
	flood(t, x, udp6(v6), 1000, xdpDrop)
	mustAdd(t, x, scoped("2001:db8:0:90::/64", "sshd", "tcp/22"))
	flood(t, x, udp6(v6), 1, xdpPass)
	flood(t, x, tcp6(v6, 22, tcpSYN), 1000, xdpDrop)
	flood(t, x, tcp6(v6, 8080, tcpSYN), 1, xdpPass)
	flood(t, x, tcp6ext(v6, 22, tcpSYN, ext6{kind: 0}), 10, xdpDrop)

	// A ban that runs out while its slot is warm: no userspace change,
	// the kernel's clock alone ends it (at most one tick late).
	b := addr("192.0.2.91")
	mustAdd(t, x, ban("192.0.2.91", "sshd", 300*time.Millisecond))
	flood(t, x, udp4(b), 1000, xdpDrop)
	time.Sleep(400 * time.Millisecond)
	flood(t, x, udp4(b), 1, xdpPass)
}

// TestHitCacheCounters: per-ban, per-jail and global counters stay exact
// with drops held in the CPUs' slots: after a flood, after the slot is
// taken by a colliding banned source, and for a ban lifted and made
// again while its slot still held counts (the new ban starts at zero).
func TestHitCacheCounters(t *testing.T) {
	x := loadDetached(t, Options{})
	ctx := context.Background()
	a, b := collidingPair(t)
	fa, fb := udp4(a), udp4(b)
	mustAdd(t, x, ban(a.String(), "sshd", time.Hour), ban(b.String(), "web", time.Hour))
	check := func(when string, p netip.Addr, n int, frame []byte) {
		t.Helper()
		got, ok := findBan(t, x, netip.PrefixFrom(p, 32))
		if !ok || got.Packets != uint64(n) || got.Bytes != uint64(n*len(frame)) {
			t.Fatalf("%s: %s listed %d packets %d bytes (found %v), want %d and %d", when, p, got.Packets, got.Bytes, ok, n, n*len(frame))
		}
	}
	flood(t, x, fa, 1000, xdpDrop)
	check("after 1000 drops", a, 1000, fa)
	flood(t, x, fb, 500, xdpDrop) // evicts a's slot
	check("after a colliding source took the slot", a, 1000, fa)
	check("colliding source", b, 500, fb)
	flood(t, x, fa, 7, xdpDrop) // and back
	check("after taking the slot back", a, 1007, fa)
	check("colliding source, evicted", b, 500, fb)
	pk, by, err := x.DroppedByJail()
	if err != nil {
		t.Fatal(err)
	}
	if pk["sshd"] != 1007 || pk["web"] != 500 || by["sshd"] != uint64(1007*len(fa)) {
		t.Fatalf("per-jail drops %v %v, want sshd 1007, web 500", pk, by)
	}
	if c := counters(t, x); c["dropped"] != 1507 || c["dropped_bytes"] != uint64(1007*len(fa)+500*len(fb)) {
		t.Fatalf("global dropped %d (%d bytes), want 1507", c["dropped"], c["dropped_bytes"])
	}

	// Lifted while the slot holds a's recent drops, then banned again
	// (Add and AddNew): the new ban starts from zero, and the old ban's
	// counts folded by the kernel later do not land in it.
	for _, add := range []func(...bans.Ban) error{
		func(bs ...bans.Ban) error { return x.Add(ctx, bs...) },
		func(bs ...bans.Ban) error { return x.AddNew(ctx, bs...) },
	} {
		flood(t, x, fa, 10, xdpDrop)
		if _, err := x.Delete(ctx, netip.PrefixFrom(a, 32)); err != nil {
			t.Fatal(err)
		}
		if err := add(ban(a.String(), "sshd", time.Hour)); err != nil {
			t.Fatal(err)
		}
		check("banned again", a, 0, fa)
		flood(t, x, fa, 3, xdpDrop) // the slow path folds the old counts
		check("banned again, 3 drops", a, 3, fa)
		flood(t, x, fb, 1, xdpDrop)
		check("banned again, slot evicted", a, 3, fa)
		if _, err := x.Delete(ctx, netip.PrefixFrom(a, 32)); err != nil {
			t.Fatal(err)
		}
		if err := add(ban(a.String(), "sshd", time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Expire reports what the ban dropped, slots included.
	mustAdd(t, x, ban("192.0.2.95", "sshd", time.Hour))
	f := udp4(addr("192.0.2.95"))
	flood(t, x, f, 42, xdpDrop)
	gone, err := x.Expire(ctx, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gone {
		if g.Prefix == pfx("192.0.2.95") && (g.Packets != 42 || g.Bytes != uint64(42*len(f))) {
			t.Fatalf("expired ban reported %d packets %d bytes, want 42", g.Packets, g.Bytes)
		}
	}
}

// TestHitCacheEvents: with slots warm on two CPUs, drop events stay at
// the entry's rate, the drops held back are counted, and the next event
// once the second is over, sent from one CPU, hands over those of both.
func TestHitCacheEvents(t *testing.T) {
	t.Run("percpu-lookup", func(t *testing.T) { testHitCacheEvents(t, havePercpuLookup) })
	// Before 5.19: held-back drops go on the entry at once.
	t.Run("no-percpu-lookup", func(t *testing.T) { testHitCacheEvents(t, func() uint32 { return 0 }) })
}

func testHitCacheEvents(t *testing.T, have func() uint32) {
	percpuLookup = have
	x := loadDetached(t, Options{})
	percpuLookup = havePercpuLookup
	if err := x.SetDropLog(2, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, err := x.DropEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := addr("192.0.2.96")
	mustAdd(t, x, ban("192.0.2.96", "sshd", time.Hour))
	other := 0
	if runtime.NumCPU() > 1 {
		other = 1
	}
	start := time.Now()
	flood(t, x, udp4(a), 500, xdpDrop)
	floodOn(t, x, other, udp4(a), 500, xdpDrop)
	if time.Since(start) > 800*time.Millisecond {
		t.Skip("1000 test runs took most of a second: the window may have reopened")
	}
	for range 2 {
		nextEvent(t, evs)
	}
	noEvent(t, evs)
	if e := reported(t, x, a.As4(), tV4); e.EventsSuppressed != 998 {
		t.Fatalf("held back %d drops, want 998", e.EventsSuppressed)
	}
	if c := counters(t, x); c["events_sent"] != 2 || c["events_suppressed"] != 998 {
		t.Fatalf("global events sent/suppressed %d/%d, want 2/998", c["events_sent"], c["events_suppressed"])
	}
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond)))
	flood(t, x, udp4(a), 1, xdpDrop)
	if ev := nextEvent(t, evs); ev.Src != a || ev.Suppressed != 998 {
		t.Fatalf("event after the window: from %v standing for %d held back, want %v and 998", ev.Src, ev.Suppressed, a)
	}
	if e := reported(t, x, a.As4(), tV4); e.EventsSuppressed != 0 {
		t.Fatalf("%d drops still held back after the event handed them over", e.EventsSuppressed)
	}
}

// TestHitCacheIPv6Prefix: with a width other than the default /64 the
// cached path masks as the tables do: every address of a warm /56 drops,
// its neighbour passes, and the unban ends it at the next packet.
func TestHitCacheIPv6Prefix(t *testing.T) {
	x := loadDetached(t, Options{IPv6Prefix: 56})
	mustAdd(t, x, bans.Ban{Prefix: pfx("2001:db8:0:100::/56")})
	flood(t, x, udp6(addr("2001:db8:0:1ff::1")), 100, xdpDrop)
	flood(t, x, udp6(addr("2001:db8:0:100::2")), 100, xdpDrop)
	flood(t, x, udp6(addr("2001:db8:0:200::1")), 1, xdpPass)
	if n, err := x.Delete(context.Background(), pfx("2001:db8:0:100::/56")); err != nil || n != 1 {
		t.Fatalf("unban: %d, %v", n, err)
	}
	flood(t, x, udp6(addr("2001:db8:0:1ff::1")), 1, xdpPass)
	if got, ok := findBan(t, x, pfx("2001:db8:0:100::/56")); ok {
		t.Fatalf("unbanned /56 still listed: %+v", got)
	}
}
