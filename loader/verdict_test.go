package loader

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"

	"github.com/cilium/ebpf"
)

const (
	xdpPass = 2 // XDP_PASS
	xdpDrop = 1 // XDP_DROP
)

// TestVerdicts runs the program on hand-built frames against one set of
// bans and checks the verdict, the global counter that moved and, for
// drops, the per-entry counters.
func TestVerdicts(t *testing.T) {
	x := loadDetached(t, Options{})
	mustAdd(t, x,
		ban("192.0.2.66", "sshd", time.Hour),
		ban("2001:db8:0:1::5", "sshd", time.Hour), // widened to 2001:db8:0:1::/64
		ban("192.0.2.77", "", 0),                  // permanent
		ban("198.51.100.0/24", "recidive", time.Hour),
		ban("2001:db8:100::/48", "recidive", time.Hour),
		ban("192.0.2.99", "sshd", -time.Second), // already expired
		ban("2001:db8:0:9::1", "sshd", -time.Second),
		// Expired exact entry inside a live prefix ban: the prefix wins.
		ban("198.51.100.9", "sshd", -time.Second),
	)

	v4 := func(s string) []byte { return udp4(addr(s)) }
	v6 := func(s string) []byte { return udp6(addr(s)) }
	vlan4 := func(s string) []byte {
		return cat(eth(eth8021Q), tag(10, ethIPv4), ipv4(addr(s), hostV4, 17, udpPayload(18)))
	}
	qinq6 := func(s string) []byte {
		return cat(eth(eth8021AD), tag(100, eth8021Q), tag(10, ethIPv6), ipv6(addr(s), hostV6, 17, udpPayload(18)))
	}
	qinq4 := func(s string) []byte {
		return cat(eth(eth8021AD), tag(100, eth8021Q), tag(10, ethIPv4), ipv4(addr(s), hostV4, 17, udpPayload(18)))
	}
	full4 := v4("192.0.2.66")
	ihl15 := append([]byte(nil), full4...)
	ihl15[14] = 0x4f // claims 60 bytes of header, frame has 20+26
	ihl15 = ihl15[:14+40]
	ihl4 := append([]byte(nil), full4...)
	ihl4[14] = 0x44
	badVer4 := append([]byte(nil), full4...)
	badVer4[14] = 0x65
	full6 := v6("2001:db8:0:1::5")
	badVer6 := append([]byte(nil), full6...)
	badVer6[14] = 0x40

	cases := []struct {
		name    string
		frame   []byte
		verdict uint32
		counter string
		entry   string // ban whose packet counter must move on a drop
	}{
		{"v4 banned", v4("192.0.2.66"), xdpDrop, "dropped", "192.0.2.66/32"},
		{"v4 not banned", v4("192.0.2.2"), xdpPass, "passed", ""},
		{"v6 banned address", v6("2001:db8:0:1::5"), xdpDrop, "dropped", "2001:db8:0:1::/64"},
		{"v6 elsewhere in the banned /64", v6("2001:db8:0:1:ffff:1:2:3"), xdpDrop, "dropped", "2001:db8:0:1::/64"},
		{"v6 next /64 not banned", v6("2001:db8:0:2::5"), xdpPass, "passed", ""},
		{"permanent v4", v4("192.0.2.77"), xdpDrop, "dropped", "192.0.2.77/32"},
		{"v4 prefix ban", v4("198.51.100.200"), xdpDrop, "dropped", "198.51.100.0/24"},
		{"v4 outside prefix", v4("203.0.113.1"), xdpPass, "passed", ""},
		{"v6 prefix ban", v6("2001:db8:100:5::1"), xdpDrop, "dropped", "2001:db8:100::/48"},
		{"v6 outside prefix", v6("2001:db8:101::1"), xdpPass, "passed", ""},
		{"expired v4", v4("192.0.2.99"), xdpPass, "expired_pass", ""},
		{"expired v6", v6("2001:db8:0:9::abcd"), xdpPass, "expired_pass", ""},
		{"expired exact under live prefix", v4("198.51.100.9"), xdpDrop, "dropped", "198.51.100.0/24"},
		{"vlan v4 banned", vlan4("192.0.2.66"), xdpDrop, "dropped", "192.0.2.66/32"},
		{"vlan v4 not banned", vlan4("192.0.2.3"), xdpPass, "passed", ""},
		{"qinq v6 banned", qinq6("2001:db8:0:1::7"), xdpDrop, "dropped", "2001:db8:0:1::/64"},
		{"qinq v4 banned", qinq4("192.0.2.66"), xdpDrop, "dropped", "192.0.2.66/32"},
		{"three tags not parsed", cat(eth(eth8021AD), tag(1, eth8021Q), tag(2, eth8021Q), tag(3, ethIPv4), ipv4(addr("192.0.2.66"), hostV4, 17, udpPayload(18))), xdpPass, "not_ip", ""},
		{"arp", arp(), xdpPass, "not_ip", ""},
		{"ethernet only", eth(ethIPv4), xdpPass, "malformed", ""},
		{"truncated vlan tag", cat(eth(eth8021Q), []byte{0, 10}), xdpPass, "malformed", ""},
		{"truncated inner qinq tag", cat(eth(eth8021AD), tag(100, eth8021Q), []byte{0}), xdpPass, "malformed", ""},
		{"truncated ipv4 header", full4[:14+19], xdpPass, "malformed", ""},
		{"ipv4 options past frame end", ihl15, xdpPass, "malformed", ""},
		{"ipv4 ihl below 5", ihl4, xdpPass, "malformed", ""},
		{"ipv4 wrong version", badVer4, xdpPass, "malformed", ""},
		{"truncated ipv6 header", full6[:14+39], xdpPass, "malformed", ""},
		{"ipv6 wrong version", badVer6, xdpPass, "malformed", ""},
		{"truncated vlan ipv4", vlan4("192.0.2.66")[:18+10], xdpPass, "malformed", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counters(t, x)
			var eb struct{ p, b uint64 }
			if tc.entry != "" {
				b, ok := findBan(t, x, netip.MustParsePrefix(tc.entry))
				if !ok {
					t.Fatalf("ban %s not listed", tc.entry)
				}
				eb.p, eb.b = b.Packets, b.Bytes
			}
			if got := run(t, x, tc.frame); got != tc.verdict {
				t.Fatalf("verdict %d, want %d", got, tc.verdict)
			}
			after := counters(t, x)
			for name, v := range after {
				want := before[name]
				if name == tc.counter {
					want++
				}
				if name == "dropped_bytes" && tc.counter == "dropped" {
					want = before[name] + uint64(len(tc.frame)) // bytes, not packets
				}
				if v != want {
					t.Errorf("counter %s = %d, want %d", name, v, want)
				}
			}
			if tc.entry != "" {
				b, _ := findBan(t, x, netip.MustParsePrefix(tc.entry))
				if b.Packets != eb.p+1 || b.Bytes != eb.b+uint64(len(tc.frame)) {
					t.Errorf("entry %s packets/bytes %d/%d, want %d/%d", tc.entry, b.Packets, b.Bytes, eb.p+1, eb.b+uint64(len(tc.frame)))
				}
			}
		})
	}
}

// TestVerdictIPv6PrefixConfig checks that ipv6_prefix reaches the kernel:
// at /56, a ban (widened by the daemon) goes in the exact table, whose
// key the program cuts to /56, and covers a neighbouring /64.
func TestVerdictIPv6PrefixConfig(t *testing.T) {
	x := loadDetached(t, Options{IPv6Prefix: 56})
	mustAdd(t, x, ban("2001:db8:0:1::5/56", "sshd", time.Hour))
	if b, ok := findBan(t, x, netip.MustParsePrefix("2001:db8::/56")); !ok || b.Jail != "sshd" {
		t.Fatalf("ban not listed as 2001:db8::/56 in jail sshd: %+v %v", b, ok)
	}
	if got := run(t, x, udp6(addr("2001:db8:0:ff::1"))); got != xdpDrop {
		t.Errorf("2001:db8:0:ff::1 inside the /56: verdict %d, want drop", got)
	}
	if got := run(t, x, udp6(addr("2001:db8:0:100::1"))); got != xdpPass {
		t.Errorf("2001:db8:0:100::1 outside the /56: verdict %d, want pass", got)
	}
	// A ban narrower than ipv6_prefix (narrowed around an ignored
	// neighbour) is enforced as given, never widened back.
	mustAdd(t, x, bans.Ban{Prefix: netip.MustParsePrefix("2001:db8:1::2/127"), Jail: "sshd", Expires: time.Now().Add(time.Hour)})
	if got := run(t, x, udp6(addr("2001:db8:1::3"))); got != xdpDrop {
		t.Errorf("2001:db8:1::3 inside the /127: verdict %d, want drop", got)
	}
	if got := run(t, x, udp6(addr("2001:db8:1::1"))); got != xdpPass {
		t.Errorf("2001:db8:1::1 outside the narrowed /127: verdict %d, want pass (the ban was widened)", got)
	}
}

// TestTrieGate checks the fill counts that let the kernel skip the tries:
// they follow Add/Delete/Expire/Flush, and a prefix ban stops working
// after its removal even though other prefixes remain.
func TestTrieGate(t *testing.T) {
	x := loadDetached(t, Options{})
	ctx := context.Background()
	meta := func() xdpbanMeta {
		var m xdpbanMeta
		if err := x.meta.Lookup(uint32(0), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	mustAdd(t, x, ban("198.51.100.0/24", "a", time.Hour), ban("203.0.113.0/25", "a", time.Hour),
		ban("2001:db8:100::/48", "a", time.Hour))
	mustAdd(t, x, ban("198.51.100.0/24", "b", time.Hour)) // replace: no double count
	if m := meta(); m.V4NetEntries != 2 || m.V6NetEntries != 1 {
		t.Fatalf("trie counts %d/%d, want 2/1", m.V4NetEntries, m.V6NetEntries)
	}
	if n, err := x.Delete(ctx, pfx("198.51.100.0/24"), pfx("198.51.100.0/24")); err != nil || n != 1 {
		t.Fatalf("delete: n=%d err=%v, want 1", n, err)
	}
	if got := run(t, x, udp4(addr("198.51.100.1"))); got != xdpPass {
		t.Errorf("unbanned prefix still dropped")
	}
	if got := run(t, x, udp4(addr("203.0.113.100"))); got != xdpDrop {
		t.Errorf("remaining prefix not enforced")
	}
	mustAdd(t, x, ban("2001:db8:200::/48", "a", -time.Second))
	exp, err := x.Expire(ctx, time.Now())
	if err != nil || len(exp) != 1 || exp[0].Prefix != pfx("2001:db8:200::/48") {
		t.Fatalf("expire: %v %v, want just 2001:db8:200::/48", exp, err)
	}
	if m := meta(); m.V4NetEntries != 1 || m.V6NetEntries != 1 {
		t.Fatalf("trie counts after delete/expire %d/%d, want 1/1", m.V4NetEntries, m.V6NetEntries)
	}
	if n, err := x.Flush(ctx); err != nil || n != 2 {
		t.Fatalf("flush: %d %v, want 2", n, err)
	}
	if m := meta(); m.V4NetEntries != 0 || m.V6NetEntries != 0 {
		t.Fatalf("trie counts after flush %d/%d, want 0/0", m.V4NetEntries, m.V6NetEntries)
	}
	if got := run(t, x, udp4(addr("203.0.113.100"))); got != xdpPass {
		t.Errorf("flushed prefix still dropped")
	}
	_ = ebpf.XDP
}
