package loader

import (
	"fmt"
	"net/netip"

	"github.com/xdpban/xdpban/internal/bans"
)

// table says which map holds a canonical prefix.
type table int

const (
	tV4    table = iota // ban_v4: single IPv4 addresses
	tV6                 // ban_v6: IPv6 widened to ipv6_prefix
	tV4Net              // ban_v4_net: shorter IPv4 prefixes
	tV6Net              // ban_v6_net: shorter IPv6 prefixes
	tables
)

var tableNames = [tables]string{"ban_v4", "ban_v6", "ban_v4_net", "ban_v6_net"}

func (t table) String() string { return tableNames[t] }

// slot is where one ban lives: its table and the key bytes, already in
// the map's layout (addresses in network order, which is how they sit in
// the packet the kernel compares them with).
type slot struct {
	t   table
	key any // [4]byte, [16]byte, xdpbanLpmV4Key or xdpbanLpmV6Key
}

// slotFor places a prefix. It canonicalises first (unmap, mask) but
// never widens: the daemon widens once, where it decides a ban, and
// narrows there around ignored addresses; widening a narrowed
// 2001:db8::2/127 back to its /64 here would cut off the ignoreip
// neighbour the narrowing protected.
func (x *XDP) slotFor(p netip.Prefix) (netip.Prefix, slot, error) {
	if !p.IsValid() {
		return p, slot{}, fmt.Errorf("invalid prefix %v: give an address or CIDR such as 192.0.2.7 or 2001:db8::/64", p)
	}
	p = exact.Prefix(p)
	a := p.Addr()
	switch {
	case a.Is4() && p.Bits() == 32:
		return p, slot{tV4, a.As4()}, nil
	case a.Is4():
		return p, slot{tV4Net, xdpbanLpmV4Key{Prefixlen: uint32(p.Bits()), Addr: a.As4()}}, nil
	case p.Bits() == x.v6Prefix:
		return p, slot{tV6, a.As16()}, nil
	default:
		return p, slot{tV6Net, xdpbanLpmV6Key{Prefixlen: uint32(p.Bits()), Addr: a.As16()}}, nil
	}
}

// exact canonicalises without widening anything.
var exact = bans.Widen{IPv6: 128}

// prefixOf is slotFor's inverse for a key read back from table t.
func (x *XDP) prefixOf(t table, key []byte) (netip.Prefix, error) {
	switch t {
	case tV4:
		if len(key) != 4 {
			break
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(key)), 32), nil
	case tV6:
		if len(key) != 16 {
			break
		}
		return netip.PrefixFrom(netip.AddrFrom16([16]byte(key)), x.v6Prefix), nil
	case tV4Net:
		if len(key) != 8 {
			break
		}
		bits := int(nativeEndian.Uint32(key[:4]))
		return netip.AddrFrom4([4]byte(key[4:])).Prefix(bits)
	case tV6Net:
		if len(key) != 20 {
			break
		}
		bits := int(nativeEndian.Uint32(key[:4]))
		return netip.AddrFrom16([16]byte(key[4:])).Prefix(bits)
	}
	return netip.Prefix{}, fmt.Errorf("%s: key of %d bytes does not match the map layout", t, len(key))
}
