package loader

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

func udp4to(src netip.Addr, dport uint16) []byte {
	u := udpPayload(18)
	binary.BigEndian.PutUint16(u[2:], dport)
	return cat(eth(ethIPv4), ipv4(src, hostV4, 17, u))
}

func scoped(s, jail, scope string) bans.Ban {
	b := ban(s, jail, time.Hour)
	sc, err := bans.ParseScopeString(scope)
	if err != nil {
		panic(err)
	}
	b.Scope = sc
	return b
}

// TestScopeVerdicts: a port-scoped ban drops only the TCP/UDP ports of
// its scope; everything else from the source passes, and a prefix ban of
// all traffic under it still drops what the scope lets through.
func TestScopeVerdicts(t *testing.T) {
	x := loadDetached(t, Options{})
	a, b, c := addr("192.0.2.70"), addr("2001:db8:0:7::1"), addr("198.51.100.71")
	mustAdd(t, x, scoped("192.0.2.70", "sshd", "tcp/22"), scoped("2001:db8:0:7::/64", "dns", "udp/53,5353"),
		scoped("198.51.100.71", "sshd", "tcp/22"), ban("198.51.100.0/24", "recidive", time.Hour))
	for _, tc := range []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"v4 tcp/22 syn", tcp4(a, 22, tcpSYN), xdpDrop},
		{"v4 tcp/22 ack", tcp4(a, 22, tcpACK), xdpDrop},
		{"v4 tcp/8080", tcp4(a, 8080, tcpSYN), xdpPass},
		{"v4 udp/22", udp4to(a, 22), xdpPass},
		{"v4 icmp", cat(eth(ethIPv4), ipv4(a, hostV4, 1, make([]byte, 8))), xdpPass},
		{"v6 udp/53", cat(eth(ethIPv6), ipv6(b, hostV6, 17, func() []byte { u := udpPayload(8); binary.BigEndian.PutUint16(u[2:], 53); return u }())), xdpDrop},
		{"v6 tcp/53", tcp6(b, 53, tcpSYN), xdpPass},
		{"v6 tcp/22", tcp6(b, 22, tcpSYN), xdpPass},
		{"v4 truncated tcp header", cat(eth(ethIPv4), ipv4(a, hostV4, 6, []byte{0x9c, 0x40})), xdpPass},
		// Outside the /32's tcp/22 scope, inside the /24's all-traffic ban.
		{"nested: scoped /32 under an all /24", tcp4(c, 8080, tcpSYN), xdpDrop},
	} {
		if got := run(t, x, tc.frame); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
	got, ok := findBan(t, x, pfx("2001:db8:0:7::/64"))
	if !ok || got.Scope.String() != "udp/53,5353" || got.Jail != "dns" || got.Packets != 1 {
		t.Errorf("listed %+v %v; want jail dns, scope udp/53,5353, 1 packet", got, ok)
	}
	// Re-banned for all traffic, the same prefix drops everything.
	mustAdd(t, x, ban("192.0.2.70", "manual", time.Hour))
	if got := run(t, x, tcp4(a, 8080, tcpSYN)); got != xdpDrop {
		t.Errorf("after a re-ban of all traffic: tcp/8080 verdict %d, want drop", got)
	}
}

// TestScopeSlots: bans of one scope share a slot; slots no ban names are
// reclaimed when a new scope needs one; a scope past the last slot is
// refused with ErrFull, never enforced as something else.
func TestScopeSlots(t *testing.T) {
	x := loadDetached(t, Options{})
	slots := int(x.scopes.MaxEntries()) - 1
	mustAdd(t, x, scoped("192.0.2.80", "sshd", "tcp/22"), scoped("192.0.2.81", "sshd", "tcp/22"))
	if len(x.scopeOf) != 1 {
		t.Fatalf("two bans of tcp/22 use %d slots, want 1", len(x.scopeOf))
	}
	var bs []bans.Ban
	for i := 1; i < slots; i++ {
		p := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		bs = append(bs, scoped(p.String(), "web", "tcp/"+itoa(1000+i)))
	}
	mustAdd(t, x, bs...)
	err := x.Add(t.Context(), scoped("203.0.113.200", "web", "udp/9"))
	if !errors.Is(err, bans.ErrFull) {
		t.Fatalf("scope %d of %d: err %v, want ErrFull", slots+1, slots, err)
	}
	if _, ok := findBan(t, x, pfx("203.0.113.200")); ok {
		t.Fatal("a ban refused for want of a scope slot is in the table")
	}
	// Lifting one scope's only ban frees its slot for the next.
	if n, err := x.Delete(t.Context(), pfx("203.0.113.1")); err != nil || n != 1 {
		t.Fatalf("delete: %d %v", n, err)
	}
	mustAdd(t, x, scoped("203.0.113.200", "web", "udp/9"))
	if got := run(t, x, udp4to(addr("203.0.113.200"), 9)); got != xdpDrop {
		t.Errorf("udp/9 ban in a reclaimed slot: verdict %d, want drop", got)
	}
	if got := run(t, x, tcp4(addr("203.0.113.2"), 1002, tcpSYN)); got != xdpDrop {
		t.Errorf("tcp/1002 ban after the reclaim: verdict %d, want drop", got)
	}
	if got := run(t, x, tcp4(addr("203.0.113.2"), 1001, tcpSYN)); got != xdpPass {
		t.Errorf("tcp/1001 (the freed scope) to a tcp/1002 ban: verdict %d, want pass", got)
	}
	t.Logf("measured: %d scope slots: %d distinct scopes taken, the next refused with ErrFull, taken after one scope's ban was lifted", slots, slots)
}

func itoa(n int) string { return strconv.Itoa(n) }
