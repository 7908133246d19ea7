package daemon

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// Protected is what no ban that did not come from a jail may cover: every
// jail's ignoreip, the host's own addresses (whatever ignoreself says: an
// operator banning the bastion's own address locks themselves out) and
// loopback. Manual bans are checked against it, and so are bans another
// node of the fleet sends. The interface addresses are read on each call,
// so an address added since the start is protected too.
func Protected(cfg *config.Config) (*bans.IgnoreList, error) {
	l, err := bans.NewIgnoreList(nil, true)
	if err != nil {
		return nil, err
	}
	// Jails mostly inherit one [DEFAULT] ignoreip: each prefix goes in
	// once, credited to the first jail that names it, or a fail2ban tree
	// of a hundred jails checks every ban against a hundred copies.
	seen := map[netip.Prefix]bool{}
	for _, j := range cfg.Jails {
		var fresh []netip.Prefix
		for _, p := range j.IgnoreIP {
			if !seen[p] {
				seen[p] = true
				fresh = append(fresh, p)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		if l, err = l.Add(fresh, "in ignoreip of jail "+j.Name); err != nil {
			return nil, fmt.Errorf("jail %s: %w", j.Name, err)
		}
	}
	return l, nil
}

// guard refuses a manual ban on a protected address, or on a prefix that
// covers one, and narrows the widened prefix of a single address around
// protected neighbours. in is what the operator typed, p its parse.
func guard(l *bans.IgnoreList, in string, p netip.Prefix) (netip.Prefix, error) {
	if l == nil {
		return p, nil
	}
	// A CIDR is the operator's chosen width: refused if it covers a
	// protected address. (Told by its slash, not by a failed address
	// parse: that allocates its error, a million times in an import.)
	in = strings.TrimSpace(in)
	cidr := strings.Contains(in, "/")
	var a netip.Addr
	if !cidr {
		var err error
		a, err = netip.ParseAddr(in)
		cidr = err != nil
	}
	if cidr {
		if q, why, hit := l.Overlap(p); hit {
			return p, fmt.Errorf("refusing to ban %s: it covers %s, which is %s; ban a narrower prefix, or pass --force to ban it anyway", p, q, why)
		}
		return p, nil
	}
	a = a.Unmap()
	if why, hit := l.Why(a); hit {
		return p, fmt.Errorf("refusing to ban %s: it is %s; pass --force to ban it anyway", a, why)
	}
	q, _ := l.Narrow(p, a)
	return q, nil
}
