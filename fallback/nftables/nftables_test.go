package nftables

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

var ctx = context.Background()

// newPair is a test pair whose end checks the root namespace has no trace
// of xdpban's table: everything happens inside the namespaces.
func newPair(t *testing.T) *nspairtest.Pair {
	t.Helper()
	p := nspairtest.New(t)
	t.Cleanup(func() {
		out, err := exec.Command("nft", "list", "tables").CombinedOutput()
		if err != nil || strings.Contains(string(out), "xdpban") {
			t.Errorf("root namespace: nft list tables: %v\n%s", err, out)
		}
	})
	return p
}

func mustAdd(t *testing.T, b *Backend, bs ...bans.Ban) {
	t.Helper()
	if err := b.Add(ctx, bs...); err != nil {
		t.Fatalf("add: %v", err)
	}
}

func ban(p string, d time.Duration) bans.Ban {
	x := bans.Ban{Prefix: netip.MustParsePrefix(p), Jail: "test"}
	if d > 0 {
		x.Expires = time.Now().Add(d)
	}
	return x
}

// table is `nft list table inet xdpban` without counters and expiry
// countdowns, so two listings compare.
func table(t *testing.T, p *nspairtest.Pair) string {
	t.Helper()
	out := p.Host.Run(t, "nft", "list", "table", "inet", "xdpban")
	out = regexp.MustCompile(`counter packets \d+ bytes \d+|expires [0-9hmsd]+|timeout [0-9hmsd]+`).ReplaceAllString(out, "")
	return out
}

func dropped(t *testing.T, b *Backend) uint64 {
	t.Helper()
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.Counters["dropped"]
}

// TestReopenKeepsEverything: a restart with the same options changes
// nothing in the kernel, rule counters included, and drops throughout.
func TestReopenKeepsEverything(t *testing.T) {
	p := newPair(t)
	r := p.Listen(t, 7010)
	o := Options{Interfaces: []string{p.HostIf}}
	b := openIn(t, p, o)
	t.Cleanup(func() { _ = b.Detach() })
	mustAdd(t, b, ban("192.0.2.2/32", time.Hour), ban("2001:db8::/64", 0),
		bans.Ban{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Jail: "sshd", Scope: bans.Scope{Proto: "tcp", Ports: []bans.PortRange{{From: 22, To: 22}}}})
	if got := nspairtest.Deliver(t, p.Sender(t, nspairtest.AttackerV4, 7010), r, 25, 300*time.Millisecond); got != 0 {
		t.Fatalf("banned: %d of 25 arrived", got)
	}
	before, n := table(t, p), dropped(t, b)
	if n != 25 {
		t.Errorf("status dropped = %d, want 25", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openIn(t, p, o)
	if after := table(t, p); after != before {
		t.Errorf("reopen changed the table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := dropped(t, b); got != n {
		t.Errorf("status dropped after reopen = %d, want %d (rule counters kept)", got, n)
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list after reopen = %v, %v; want 3 bans", list, err)
	}
	t.Logf("measured: reopen left `nft list table` identical, status dropped %d before and after", n)
}

// TestOptionsChangeOnReopen: blocktype, hooks and interfaces follow the
// configuration across restarts, and the bans stay.
func TestOptionsChangeOnReopen(t *testing.T) {
	p := newPair(t)
	p.ServeTCP(t, 22)
	a := nspairtest.AttackerV4
	b := openIn(t, p, Options{Interfaces: []string{"other0"}})
	t.Cleanup(func() { _ = b.Detach() })
	mustAdd(t, b, ban("192.0.2.2/32", time.Hour))
	// Bans apply to the configured interfaces only, as XDP's do.
	if !p.TCPConnects(t, a, 22) {
		t.Fatalf("a ban on interface other0 blocked traffic arriving on %s", p.HostIf)
	}
	b.Close()

	b = openIn(t, p, Options{Interfaces: []string{p.HostIf}, BlockType: "REJECT", From: []string{"INPUT", "FORWARD"}})
	start := time.Now()
	if p.TCPConnects(t, a, 22) {
		t.Fatalf("REJECT: tcp/22 connected")
	}
	// A reset answers at once; a drop would take the whole timeout.
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("REJECT: connect failed after %v, want a prompt reset", d)
	}
	got := table(t, p)
	for _, want := range []string{"chain reject", "chain forward", "hook forward", `iifname "` + p.HostIf + `" jump bans`, "jump reject"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	b.Close()

	b = openIn(t, p, Options{Interfaces: []string{p.HostIf}})
	start = time.Now()
	if p.TCPConnects(t, a, 22) {
		t.Fatalf("DROP: tcp/22 connected")
	}
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("DROP: connect failed after %v, want a timeout (no answer)", d)
	}
	got = table(t, p)
	for _, gone := range []string{"chain reject", "chain forward"} {
		if strings.Contains(got, gone) {
			t.Errorf("table still has %q after going back to DROP on INPUT:\n%s", gone, got)
		}
	}
	if list, _ := b.List(ctx); len(list) != 1 {
		t.Errorf("bans after three opens = %v, want the one ban", list)
	}
}

// TestLayout: the sets and rules are what the package documents, so an
// operator reading `nft list table inet xdpban` sees the bans.
func TestLayout(t *testing.T) {
	p := newPair(t)
	b := openIn(t, p, Options{})
	t.Cleanup(func() { _ = b.Detach() })
	sc := bans.Scope{Proto: "all", Ports: []bans.PortRange{{From: 22, To: 22}, {From: 20, To: 30}, {From: 443, To: 443}}}
	mustAdd(t, b, ban("192.0.2.2/32", time.Hour), ban("198.51.100.0/24", 0), ban("2001:db8::/64", time.Hour),
		bans.Ban{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Jail: "web", Scope: sc})
	got := p.Host.Run(t, "nft", "list", "table", "inet", "xdpban")
	for _, want := range []string{
		"set all4_32 {", "type ipv4_addr", "flags timeout", "192.0.2.2 ",
		"set all4_24 {", "flags interval,timeout", "198.51.100.0/24",
		"set all6_64 {", "2001:db8::/64",
		"set port4_32 {", "type ipv4_addr . inet_proto . inet_service",
		"203.0.113.7 . tcp . 20-30", "203.0.113.7 . udp . 443",
		"ip saddr @all4_32 counter packets 0 bytes 0 drop", "ip6 saddr @all6_64 counter",
		"ip saddr . meta l4proto . th dport @port4_32 counter", "timeout 1h expires",
		`comment "xdpban jail=web exp=0"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	// The overlapping ranges were merged; the listed scope is the one
	// given.
	list, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list {
		if x.Prefix.String() == "203.0.113.7/32" && x.Scope.String() != sc.String() {
			t.Errorf("scoped ban listed as %s, want %s", x.Scope, sc)
		}
	}
}

// TestLongAndPermanentBans: the kernel keeps no timeout beyond ten years
// (the sweep ends those); List still gives the exact end from the
// comment.
func TestLongAndPermanentBans(t *testing.T) {
	p := newPair(t)
	b := openIn(t, p, Options{})
	t.Cleanup(func() { _ = b.Detach() })
	end := time.Now().Add(20 * 365 * 24 * time.Hour).Truncate(time.Millisecond)
	mustAdd(t, b, bans.Ban{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Jail: "long", Expires: end}, ban("192.0.2.3/32", 0))
	b.Close()
	b = openIn(t, p, Options{})
	list, err := b.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %v, %v", list, err)
	}
	for _, x := range list {
		switch x.Prefix.String() {
		case "192.0.2.2/32":
			if !x.Expires.Equal(end) || x.Jail != "long" {
				t.Errorf("20-year ban listed as %+v, want expiry %v", x, end)
			}
		case "192.0.2.3/32":
			if !x.Permanent() {
				t.Errorf("permanent ban listed with expiry %v", x.Expires)
			}
		}
	}
}

// TestFull: a set at capacity refuses with bans.ErrFull, and what was
// added before stays.
func TestFull(t *testing.T) {
	p := newPair(t)
	b := openIn(t, p, Options{MaxElem: 4})
	t.Cleanup(func() { _ = b.Detach() })
	for i := 1; i <= 4; i++ {
		mustAdd(t, b, ban(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()+"/32", time.Hour))
	}
	err := b.Add(ctx, ban("192.0.2.5/32", time.Hour))
	if !errors.Is(err, bans.ErrFull) {
		t.Fatalf("fifth ban in a set of 4: %v, want ErrFull", err)
	}
	if list, _ := b.List(ctx); len(list) != 4 {
		t.Errorf("after the refusal %d bans listed, want 4", len(list))
	}
}

// TestProbe makes and deletes a scratch table in the pair's namespace.
func TestProbe(t *testing.T) {
	p := newPair(t)
	if err := Probe(ctx, p.Host.Path()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if out := p.Host.Run(t, "nft", "list", "tables"); strings.TrimSpace(out) != "" {
		t.Errorf("probe left tables:\n%s", out)
	}
	if ok, err := Exists(p.Host.Path(), ""); ok || err != nil {
		t.Errorf("exists before open = %v, %v", ok, err)
	}
	b := openIn(t, p, Options{})
	t.Cleanup(func() { _ = b.Detach() })
	if ok, err := Exists(p.Host.Path(), ""); !ok || err != nil {
		t.Errorf("exists after open = %v, %v", ok, err)
	}
	if _, err := Open(ctx, Options{Netns: p.Host.Path(), Table: "other", Existing: true}); !errors.Is(err, ErrNoTable) {
		t.Errorf("open existing of a missing table: %v, want ErrNoTable", err)
	}
}

func TestBadInput(t *testing.T) {
	for _, o := range []Options{{BlockType: "TARPIT"}, {From: []string{"OUTPUT"}}, {Interfaces: []string{"a-name-far-too-long"}}} {
		if _, err := Open(ctx, o); !errors.Is(err, ErrBadOption) {
			t.Errorf("open %+v: %v, want ErrBadOption", o, err)
		}
	}
	b := &Backend{}
	for _, x := range []bans.Ban{
		{Prefix: netip.MustParsePrefix("192.0.2.1/24")},
		{Prefix: netip.MustParsePrefix("0.0.0.0/0")},
		{Prefix: netip.MustParsePrefix("::ffff:192.0.2.1/128")},
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Scope: bans.Scope{Proto: "sctp"}},
	} {
		if err := b.Add(ctx, x); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("add %v: %v, want a one-line error", x, err)
		}
	}
}

// TestRebanAfterKernelExpiry: a ban the kernel expired but no sweep has
// seen yet is banned again (its elements to replace are gone).
func TestRebanAfterKernelExpiry(t *testing.T) {
	p := newPair(t)
	r := p.Listen(t, 7011)
	b := openIn(t, p, Options{})
	t.Cleanup(func() { _ = b.Detach() })
	in := netip.MustParseAddr("198.51.100.9")
	p.AddAttackerAddr(t, in)
	mustAdd(t, b, ban("192.0.2.2/32", 1500*time.Millisecond), ban("198.51.100.0/24", 1500*time.Millisecond),
		bans.Ban{Prefix: netip.MustParsePrefix("2001:db8::/64"), Expires: time.Now().Add(1500 * time.Millisecond), Scope: bans.Scope{Proto: "udp"}})
	time.Sleep(2 * time.Second)
	mustAdd(t, b, ban("192.0.2.2/32", time.Hour), ban("198.51.100.0/24", time.Hour),
		bans.Ban{Prefix: netip.MustParsePrefix("2001:db8::/64"), Expires: time.Now().Add(time.Hour), Scope: bans.Scope{Proto: "udp"}})
	for _, a := range []netip.Addr{nspairtest.AttackerV4, in, nspairtest.AttackerV6} {
		if got := nspairtest.Deliver(t, p.Sender(t, a, 7011), r, 10, 300*time.Millisecond); got != 0 {
			t.Errorf("re-banned %s: %d of 10 arrived", a, got)
		}
	}
	if n, err := b.Delete(ctx, netip.MustParsePrefix("192.0.2.2/32")); n != 1 || err != nil {
		t.Errorf("delete after re-ban = %d, %v", n, err)
	}
}

// TestUnbanOfABanMissingFromTheView: a ban the kernel holds but this
// backend's view lacks (a dump that skipped it) is still lifted by an
// unban, and a ban missing from a dump is listed, never forgotten.
func TestUnbanOfABanMissingFromTheView(t *testing.T) {
	p := newPair(t)
	r := p.Listen(t, 7012)
	b := openIn(t, p, Options{})
	t.Cleanup(func() { _ = b.Detach() })
	a := nspairtest.AttackerV4
	pfx := netip.PrefixFrom(a, 32)
	mustAdd(t, b, ban(pfx.String(), time.Hour))
	delete(b.known, pfx)
	if n, err := b.Delete(ctx, pfx); n != 1 || err != nil {
		t.Fatalf("delete of a ban outside the view = %d, %v; want 1, nil", n, err)
	}
	if got := nspairtest.Deliver(t, p.Sender(t, a, 7012), r, 10, time.Second); got != 10 {
		t.Fatalf("after unban %d of 10 arrived", got)
	}
	if n, err := b.Delete(ctx, pfx); n != 0 || err != nil {
		t.Errorf("second delete = %d, %v; want 0, nil", n, err)
	}

	// In the view, not in the kernel: listed until unbanned or expired.
	other := netip.MustParsePrefix("198.51.100.0/24")
	b.known[other] = entry{ban: ban(other.String(), time.Hour), inKernel: true}
	list, err := b.List(ctx)
	if err != nil || len(list) != 1 || list[0].Prefix != other {
		t.Errorf("list = %v, %v; want the ban the dump lacked", list, err)
	}
	if n, err := b.Delete(ctx, other); n != 1 || err != nil {
		t.Errorf("delete of a ban the kernel lost = %d, %v; want 1, nil", n, err)
	}
}
