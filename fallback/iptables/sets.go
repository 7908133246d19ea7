package iptables

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/xdpban/xdpban/internal/bans"
)

// dropSets destroys the sets this Open created, with the rules using them.
func (b *IPTables) dropSets() {
	for _, c := range b.created {
		if c.set == "" {
			continue
		}
		_ = b.ns.do(func() error {
			rules, err := listRules(c.f.ipt, b.opts.Chain, false)
			if err != nil {
				return nil
			}
			for _, r := range rules {
				if r.opt("--match-set") == c.set {
					_ = c.f.ipt.Delete(table, b.opts.Chain, r.args...)
				}
			}
			return nil
		})
		if err := b.nl.IpsetDestroy(c.set); err != nil {
			b.log.Warn("roll back ipset", "set", c.set, "err", err)
		}
	}
	b.created = slices.DeleteFunc(b.created, func(c created) bool { return c.set != "" })
}

// setupSets creates or adopts both sets, and checks that xt_set can use
// them by installing the chain's match rule.
func (b *IPTables) setupSets() error {
	for _, f := range b.fams {
		if err := b.ensureSet(f); err != nil {
			return err
		}
	}
	return b.ns.do(func() error {
		for _, f := range b.fams {
			if err := b.ensureChain(f, b.opts.Chain); err != nil {
				return err
			}
			if err := f.ipt.AppendUnique(table, b.opts.Chain, b.setSpec(f)...); err != nil {
				return fmt.Errorf("%s: %w: set match (-m set) unavailable: %w", f.name, bans.ErrUnsupported, err)
			}
		}
		return nil
	})
}

func (b *IPTables) setSpec(f *family) []string {
	return []string{"-m", "set", "--match-set", f.set, "src", "-j", b.target}
}

// scopeSpecs are the rules matching scope sc's set: its protocols and
// ports, then the source in the set.
func (b *IPTables) scopeSpecs(f *family, sc Scope) [][]string {
	var out [][]string
	for _, m := range scopeMatches(sc) {
		spec := append(slices.Clone(m), "-m", "set", "--match-set", scopeSetName(f.set, sc), "src",
			"-m", "comment", "--comment", scopeTag(sc), "-j", b.target)
		out = append(out, spec)
	}
	return uniqSpecs(out)
}

// ensureScope makes scope sc's sets and rules, in both families, the
// first time a ban needs them.
func (b *IPTables) ensureScope(sc Scope) error {
	if _, ok := b.scopes[sc.String()]; ok {
		return nil
	}
	for _, f := range b.fams {
		if err := b.ensureNamedSet(f, scopeSetName(f.set, sc)); err != nil {
			return fmt.Errorf("scope %s: %w", sc, err)
		}
	}
	err := b.ns.do(func() error {
		for _, f := range b.fams {
			for _, spec := range b.scopeSpecs(f, sc) {
				if err := f.ipt.AppendUnique(table, b.opts.Chain, spec...); err != nil {
					return fmt.Errorf("%s: add scope %s match to %s: %w", f.name, sc, b.opts.Chain, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.scopes[sc.String()] = sc
	return nil
}

// setOf is the set holding a ban of scope sc in family f.
func (b *IPTables) setOf(f *family, sc Scope) string {
	if sc.All() {
		return f.set
	}
	return scopeSetName(f.set, sc)
}

// sets are every set of family f with the scope of its bans.
func (b *IPTables) sets(f *family) []struct {
	name  string
	scope Scope
} {
	out := []struct {
		name  string
		scope Scope
	}{{f.set, Scope{}}}
	for _, k := range slices.Sorted(maps.Keys(b.scopes)) {
		sc := b.scopes[k]
		out = append(out, struct {
			name  string
			scope Scope
		}{scopeSetName(f.set, sc), sc})
	}
	return out
}

func (b *IPTables) ensureSet(f *family) error { return b.ensureNamedSet(f, f.set) }

func (b *IPTables) ensureNamedSet(f *family, name string) error {
	if res, err := listIpset(b.sock, name); err == nil {
		if res.typeName != "hash:net" || res.family != f.af {
			return fmt.Errorf("ipset %s exists as %s family %d, not hash:net %s: destroy it (ipset destroy %s) or configure another set name", name, res.typeName, res.family, f.name, name)
		}
		if !res.hasTimeout {
			return fmt.Errorf("ipset %s exists without timeout support: destroy it (ipset destroy %s) so xdpban can recreate it", name, name)
		}
		b.log.Info("adopted existing ipset", "set", name, "entries", len(res.entries))
		return nil
	}
	zero := uint32(0)
	var lastErr error
	// hash:net revisions 4..7 all have comments and counters; the newest
	// the kernel knows is picked, as the ipset tool does.
	for rev := uint8(7); rev >= 4; rev-- {
		lastErr = b.nl.IpsetCreate(name, "hash:net", netlink.IpsetCreateOptions{
			Timeout:     &zero,
			Counters:    true,
			Comments:    true,
			Family:      f.af,
			Revision:    rev,
			MaxElements: uint32(b.opts.MaxElem),
		})
		if lastErr == nil {
			b.created = append(b.created, created{f: f, set: name})
			return nil
		}
	}
	return fmt.Errorf("%w: create ipset %s hash:net %s: %w", bans.ErrUnsupported, name, f.name, lastErr)
}

// kernelTimeout is the set element timeout for a ban: its remaining time
// rounded up (the kernel counts seconds), 0 for permanent. Beyond ipset's
// limit the element is permanent and the sweep ends it.
func kernelTimeout(x bans.Ban, now time.Time) uint32 {
	const ipsetMax = (1<<31 - 1) / 1000
	if x.Permanent() {
		return 0
	}
	r := x.Remaining(now)
	s := (r + time.Second - 1) / time.Second
	if s > ipsetMax {
		return 0
	}
	return uint32(max(s, 1))
}

func setEntry(p netip.Prefix) *netlink.IPSetEntry {
	return &netlink.IPSetEntry{IP: net.IP(p.Addr().AsSlice()), CIDR: uint8(p.Bits())}
}

func (b *IPTables) addSet(x bans.Ban, now time.Time) error {
	f := b.fam(x.Prefix)
	if x.Expired(now) {
		// Nothing to enforce; List still shows it until the sweep.
		if err := b.delSet(f, x.Prefix); err != nil && !errors.Is(err, bans.ErrNotBanned) {
			return err
		}
		return nil
	}
	if !x.Scope.All() {
		if err := b.ensureScope(x.Scope); err != nil {
			return fmt.Errorf("ban %s: %w", x.Prefix, err)
		}
	}
	set := b.setOf(f, x.Scope)
	e := setEntry(x.Prefix)
	t := kernelTimeout(x, now)
	e.Timeout = &t
	e.Comment = banComment(x)
	e.Replace = true
	if err := b.nl.IpsetAdd(set, e); err != nil {
		if errors.Is(err, nl.IPSetError(nl.IPSET_ERR_TYPE_SPECIFIC) /* IPSET_ERR_HASH_FULL */) {
			return fmt.Errorf("ban %s: ipset %s: %w (raise the map size)", x.Prefix, set, bans.ErrFull)
		}
		return fmt.Errorf("ban %s: add to ipset %s: %w", x.Prefix, set, err)
	}
	return nil
}

// delSet removes p from whichever of f's sets holds it: the one its
// known scope names first, then the others (a ban the view lost).
func (b *IPTables) delSet(f *family, p netip.Prefix) error {
	first := f.set
	if e, ok := b.known[p]; ok {
		first = b.setOf(f, e.ban.Scope)
	}
	err := b.delFrom(f, first, p)
	if !errors.Is(err, bans.ErrNotBanned) {
		return err
	}
	for _, s := range b.sets(f) {
		if s.name == first {
			continue
		}
		if derr := b.delFrom(f, s.name, p); !errors.Is(derr, bans.ErrNotBanned) {
			return derr
		}
	}
	return err
}

func (b *IPTables) delFrom(f *family, set string, p netip.Prefix) error {
	err := b.nl.IpsetDel(set, setEntry(p))
	if err == nil {
		return nil
	}
	if errors.Is(err, nl.IPSetError(nl.IPSET_ERR_EXIST)) {
		return bans.ErrNotBanned
	}
	return fmt.Errorf("unban %s: delete from ipset %s: %w", p, set, err)
}
