package logwatch

import (
	"fmt"
	"net"
	"net/netip"
)

// alwaysIgnored are never banned whatever the configuration says: banning
// loopback only breaks the host's own services. The unspecified,
// broadcast and multicast addresses are never the source of a connection,
// so a log line naming one is forged or garbled (an application logging
// a client-supplied header); banning 0.0.0.0 would drop DHCP requests.
var alwaysIgnored = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("0.0.0.0/32"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("ff00::/8"),
}

// IgnoreList is a jail's ignoreip plus, with ignoreself, the host's own
// addresses. It is immutable once built.
type IgnoreList struct {
	prefixes []netip.Prefix
}

// NewIgnoreList builds the list from ignoreip prefixes. With self, the
// addresses of every local interface are added (read once: a reload
// refreshes them).
func NewIgnoreList(ignoreIP []netip.Prefix, self bool) (*IgnoreList, error) {
	l := &IgnoreList{}
	l.prefixes = append(l.prefixes, alwaysIgnored...)
	for _, p := range ignoreIP {
		a := p.Addr().Unmap()
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits = max(bits-96, 0)
		}
		q, err := a.WithZone("").Prefix(bits)
		if err != nil {
			return nil, fmt.Errorf("ignoreip %s: %w", p, err)
		}
		l.prefixes = append(l.prefixes, q)
	}
	if self {
		own, err := selfAddrs()
		if err != nil {
			return nil, fmt.Errorf("ignoreself: list interface addresses: %w", err)
		}
		l.prefixes = append(l.prefixes, own...)
	}
	return l, nil
}

// selfAddrs lists the host's own addresses as single-address prefixes.
func selfAddrs() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		na, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		na = na.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(na, na.BitLen()))
	}
	return out, nil
}

// Ignored reports whether a must never be banned.
func (l *IgnoreList) Ignored(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Prefixes returns the effective list, for `xdpban status`.
func (l *IgnoreList) Prefixes() []netip.Prefix {
	return append([]netip.Prefix(nil), l.prefixes...)
}
