package bans

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultIPv6Prefix is how wide a ban on a single IPv6 address is by
// default: attackers rotate addresses inside the /64 they are given.
const DefaultIPv6Prefix = 64

// Widen holds the policy that turns a single address into the prefix that
// is actually banned. The zero value widens IPv6 to /64.
type Widen struct {
	// IPv6 is the prefix length a single IPv6 address is widened to
	// (48..128); 0 means DefaultIPv6Prefix.
	IPv6 int
}

// ValidateIPv6Prefix checks a configured ipv6_prefix.
func ValidateIPv6Prefix(n int) error {
	if n < 48 || n > 128 {
		return fmt.Errorf("ipv6_prefix %d out of range: use a length from 48 to 128 (default 64)", n)
	}
	return nil
}

func (w Widen) v6() int {
	if w.IPv6 == 0 {
		return DefaultIPv6Prefix
	}
	return w.IPv6
}

// Addr returns the prefix a ban on the single address a covers: /32 for
// IPv4 (IPv4-mapped IPv6 is unmapped first, so ::ffff:192.0.2.1 bans
// 192.0.2.1), the configured width for IPv6.
func (w Widen) Addr(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(w.v6())
	return p
}

// Prefix canonicalises an explicit prefix: unmapped, masked. An IPv6
// prefix narrower than the widening policy is widened too, so that a ban
// on 2001:db8::1/128 and one on 2001:db8::1 mean the same thing.
func (w Widen) Prefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	bits := p.Bits()
	if a.Is4In6() {
		a = a.Unmap()
		bits -= 96
		if bits < 0 {
			bits = 0
		}
	}
	if a.Is6() && bits > w.v6() {
		bits = w.v6()
	}
	q, _ := a.Prefix(bits)
	return q
}

// Parse reads what an operator typed: an address ("192.0.2.7",
// "2001:db8::7", "::ffff:192.0.2.7") or a CIDR ("198.51.100.0/24",
// "2001:db8::/48"), and returns the canonical prefix to ban. Host bits in
// a CIDR are masked off. The error names the input and says what is
// expected.
func (w Widen) Parse(s string) (netip.Prefix, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return netip.Prefix{}, fmt.Errorf("empty address: give an IPv4/IPv6 address or CIDR, e.g. 192.0.2.7 or 2001:db8::/64")
	}
	if strings.Contains(in, "/") {
		p, err := netip.ParsePrefix(in)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: want ADDR/LEN with LEN 0-32 for IPv4, 0-128 for IPv6, e.g. 198.51.100.0/24", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: a zone (%%%s) cannot be banned, drop it", s, p.Addr().Zone())
		}
		return w.Prefix(p), nil
	}
	a, err := netip.ParseAddr(in)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: want an IPv4 or IPv6 address such as 192.0.2.7 or 2001:db8::7", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: a zone (%%%s) cannot be banned, drop it", s, a.Zone())
	}
	return w.Addr(a), nil
}

// Covers reports whether the ban prefix p covers address a (unmapped).
func Covers(p netip.Prefix, a netip.Addr) bool {
	return p.Contains(a.Unmap())
}
