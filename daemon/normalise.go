package daemon

import (
	"fmt"
	"net/netip"
	"strings"
)

// Normalised says how the prefix banned, p, differs from what the
// operator typed, in: "" when it does not, else "normalised from
// 10.1.2.3/8: host bits cleared". The CLI prints it beside the prefix:
// echoing 0.0.0.0/4 for 10.0.0.0/4 without a word read as a bug, or
// hid a typo.
func Normalised(in string, p netip.Prefix) string {
	in = strings.TrimSpace(in)
	var typed netip.Prefix
	if strings.Contains(in, "/") {
		q, err := netip.ParsePrefix(in)
		if err != nil {
			return ""
		}
		typed = q
	} else {
		a, err := netip.ParseAddr(in)
		if err != nil {
			return ""
		}
		typed = netip.PrefixFrom(a, a.BitLen())
	}
	a, bits := typed.Addr().WithZone(""), typed.Bits()
	if netip.PrefixFrom(a, bits) == p {
		return ""
	}
	var why []string
	if a.Is4In6() {
		a, bits = a.Unmap(), max(bits-96, 0)
		why = append(why, "IPv4-mapped, banned as IPv4")
	}
	if q := netip.PrefixFrom(a, bits); q.Masked() != q {
		why = append(why, "host bits cleared")
	}
	switch {
	case p.Bits() < bits:
		// IPv6: ipv6_prefix, or narrower around a protected address.
		why = append(why, fmt.Sprintf("widened to /%d", p.Bits()))
	case p.Bits() > bits:
		why = append(why, fmt.Sprintf("narrowed to /%d", p.Bits()))
	}
	if len(why) == 0 {
		return "normalised from " + in
	}
	return "normalised from " + in + ": " + strings.Join(why, ", ")
}

// named is p as a message names it: with how it differs from typed.
func named(p netip.Prefix, typed string) string {
	if n := Normalised(typed, p); n != "" {
		return fmt.Sprintf("%s (%s)", p, n)
	}
	return p.String()
}
