package loader

import (
	"net/netip"
	"testing"

	"github.com/xdpban/xdpban/internal/bans"
)

// TestLayoutVersion keeps the Go constant and the object's XDPBAN_LAYOUT
// in step: pins are judged compatible by it.
func TestLayoutVersion(t *testing.T) {
	spec, err := loadXdpban()
	if err != nil {
		t.Fatal(err)
	}
	var v uint32
	if err := spec.Variables[xdpbanVarLayoutVersion].Get(&v); err != nil {
		t.Fatal(err)
	}
	if v != layoutVersion {
		t.Fatalf("object layout %d, loader expects %d: update layoutVersion with XDPBAN_LAYOUT", v, layoutVersion)
	}
}

// TestSlotRoundTrip: every prefix lands in the table its width calls for
// and reads back unchanged from the key bytes. Nothing is widened here (the
// daemon widens, and narrows around ignored addresses): a prefix of
// exactly ipv6_prefix goes in the exact table, any other in the trie.
func TestSlotRoundTrip(t *testing.T) {
	for _, v6 := range []int{48, 64, 128} {
		x := &XDP{widen: bans.Widen{IPv6: v6}, v6Prefix: v6}
		exactOr := func(bits int) table {
			if bits == v6 {
				return tV6
			}
			return tV6Net
		}
		for _, tc := range []struct {
			in string
			t  table
		}{
			{"192.0.2.7/32", tV4},
			{"::ffff:192.0.2.7/128", tV4},
			{"198.51.100.77/24", tV4Net},
			{"0.0.0.0/0", tV4Net},
			{"2001:db8:1:2:3::/128", exactOr(128)},
			{"2001:db8:1:2::/64", exactOr(64)},
			{"2001:db8:1::/48", exactOr(48)},
			{"2001:db8:1:2::2/127", tV6Net}, // narrowed around an ignored neighbour
			{"2001:db8::/32", tV6Net},
		} {
			p, s, err := x.slotFor(netip.MustParsePrefix(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			want := netip.MustParsePrefix(tc.in)
			want = bans.Widen{IPv6: 128}.Prefix(want)
			if s.t != tc.t {
				t.Errorf("/%d: %s in %s, want %s", v6, tc.in, s.t, tc.t)
			}
			if p != want {
				t.Errorf("/%d: %s canonical %s, want %s", v6, tc.in, p, want)
			}
			var key []byte
			switch k := s.key.(type) {
			case [4]byte:
				key = k[:]
			case [16]byte:
				key = k[:]
			case xdpbanLpmV4Key:
				key = append(nativeEndian.AppendUint32(nil, k.Prefixlen), k.Addr[:]...)
			case xdpbanLpmV6Key:
				key = append(nativeEndian.AppendUint32(nil, k.Prefixlen), k.Addr[:]...)
			}
			back, err := x.prefixOf(s.t, key)
			if err != nil || back != p {
				t.Errorf("/%d: %s read back as %s (%v)", v6, p, back, err)
			}
		}
	}
	x := &XDP{v6Prefix: 64}
	if _, err := x.prefixOf(tV4Net, []byte{1, 2}); err == nil {
		t.Error("short key accepted")
	}
	if _, _, err := x.slotFor(netip.Prefix{}); err == nil {
		t.Error("invalid prefix accepted")
	}
}
