package bans

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
var alwaysIgnored = []ignored{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/32"), "the unspecified address"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

type ignored struct {
	p   netip.Prefix
	why string
}

// IgnoreList is what must never be banned: ignoreip, with ignoreself the
// host's own addresses, and loopback. It is immutable once built. Every
// source of bans asks the same list the same two questions: is this
// address ignored (Ignored), and does this ban cover an ignored address
// (Narrow for a widened single address, Overlap for a prefix someone
// named), so a jail, the CLI and the fleet can never disagree.
type IgnoreList struct {
	list []ignored
}

// NewIgnoreList builds the list from ignoreip prefixes. With self, the
// addresses of every local interface are added (read once: a reload
// refreshes them).
func NewIgnoreList(ignoreIP []netip.Prefix, self bool) (*IgnoreList, error) {
	l := &IgnoreList{}
	l.list = append(l.list, alwaysIgnored...)
	if err := l.add(ignoreIP, "in ignoreip"); err != nil {
		return nil, err
	}
	if self {
		own, err := SelfAddrs()
		if err != nil {
			return nil, fmt.Errorf("ignoreself: list interface addresses: %w", err)
		}
		for _, p := range own {
			l.list = append(l.list, ignored{p, "this host's own address"})
		}
	}
	return l, nil
}

// Add returns a list that also ignores ps, each described by why (e.g.
// "in ignoreip of jail sshd").
func (l *IgnoreList) Add(ps []netip.Prefix, why string) (*IgnoreList, error) {
	n := &IgnoreList{list: append([]ignored(nil), l.list...)}
	return n, n.add(ps, why)
}

func (l *IgnoreList) add(ps []netip.Prefix, why string) error {
	for _, p := range ps {
		a := p.Addr().Unmap()
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits = max(bits-96, 0)
		}
		q, err := a.WithZone("").Prefix(bits)
		if err != nil {
			return fmt.Errorf("ignoreip %s: %w", p, err)
		}
		l.list = append(l.list, ignored{q, why})
	}
	return nil
}

// SelfAddrs lists the host's own addresses as single-address prefixes.
func SelfAddrs() ([]netip.Prefix, error) {
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
	_, ok := l.Why(a)
	return ok
}

// Why says why a must never be banned ("loopback", "in ignoreip", ...),
// or false when it may be.
func (l *IgnoreList) Why(a netip.Addr) (string, bool) {
	a = a.Unmap().WithZone("")
	for _, e := range l.list {
		if e.p.Contains(a) {
			return e.why, true
		}
	}
	return "", false
}

// Overlap returns the first ignored prefix that shares an address with p
// and why it is ignored: a ban on p would cut it off.
func (l *IgnoreList) Overlap(p netip.Prefix) (netip.Prefix, string, bool) {
	for _, e := range l.list {
		if e.p.Overlaps(p) {
			return e.p, e.why, true
		}
	}
	return netip.Prefix{}, "", false
}

// Narrow makes the ban p on the (not ignored) address a cover no ignored
// address. p is a widened, e.g. the /64 of an IPv6 address: when an
// ignored address lies inside it, the result is the widest prefix that
// still holds a and none of them, down to a alone, and blocker is one
// ignored prefix that forced the narrowing (invalid when p is returned
// unchanged). Narrowing cannot fail: a itself is not ignored.
func (l *IgnoreList) Narrow(p netip.Prefix, a netip.Addr) (q, blocker netip.Prefix) {
	a = a.Unmap().WithZone("")
	blocked := func(q netip.Prefix) (netip.Prefix, bool) {
		for _, e := range l.list {
			// An ignored prefix wider than q and holding it means a
			// itself is ignored: the caller's business, not ours.
			if e.p.Overlaps(q) && e.p.Bits() > q.Bits() {
				return e.p, true
			}
		}
		return netip.Prefix{}, false
	}
	b, ok := blocked(p)
	if !ok {
		return p, netip.Prefix{}
	}
	for bits := p.Bits() + 1; bits < a.BitLen(); bits++ {
		q, _ := a.Prefix(bits)
		if _, still := blocked(q); !still {
			return q, b
		}
	}
	return netip.PrefixFrom(a, a.BitLen()), b
}

// Prefixes returns the effective list, for `xdpban status`.
func (l *IgnoreList) Prefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(l.list))
	for i, e := range l.list {
		out[i] = e.p
	}
	return out
}
