package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
)

// List implements bans.Backend.
func (b *IPTables) List(ctx context.Context) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	return b.list(b.opts.Now())
}

func (b *IPTables) list(now time.Time) ([]bans.Ban, error) {
	var out []bans.Ban
	if b.mode == ModeIPSet {
		seen := map[netip.Prefix]bool{}
		for _, f := range b.fams {
			es, err := b.allSetEntries(f, now)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				seen[e.Prefix] = true
				out = append(out, e)
			}
		}
		// The kernel drops timed-out elements itself; until the sweep has
		// seen them they are listed like XDP's expired entries. Anything
		// else missing was removed behind our back and is forgotten.
		for p, e := range b.known {
			if seen[p] {
				continue
			}
			if e.ban.Expired(now) {
				out = append(out, e.ban)
			} else {
				delete(b.known, p)
			}
		}
	} else {
		err := b.ns.do(func() error {
			for _, f := range b.fams {
				rs, err := b.chainBans(f)
				if err != nil {
					return err
				}
				for _, r := range rs {
					out = append(out, r.ban)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// Bans added already expired have no rule.
		for _, e := range b.known {
			if len(e.specs) == 0 {
				out = append(out, e.ban)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.String() < out[j].Prefix.String() })
	return out, nil
}

// allSetEntries lists every set of f, each ban with its set's scope.
func (b *IPTables) allSetEntries(f *family, now time.Time) ([]bans.Ban, error) {
	var out []bans.Ban
	for _, s := range b.sets(f) {
		es, err := b.setEntries(f, s.name, now)
		if err != nil {
			return nil, err
		}
		for i := range es {
			es[i].Scope = s.scope
		}
		out = append(out, es...)
	}
	return out, nil
}

func (b *IPTables) setEntries(f *family, set string, now time.Time) ([]bans.Ban, error) {
	res, err := listIpset(b.sock, set)
	if err != nil {
		return nil, fmt.Errorf("list ipset %s: %w", set, err)
	}
	out := make([]bans.Ban, 0, len(res.entries))
	for _, e := range res.entries {
		p := e.prefix
		if f.af == unix.AF_INET {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
		}
		x := bans.Ban{Prefix: p, Packets: e.packets, Bytes: e.bytes}
		jail, exp, ours, perr := parseComment(e.comment)
		switch {
		case ours && perr == nil:
			x.Jail, x.Expires = jail, exp
		default:
			if perr != nil {
				b.log.Warn("unreadable ipset comment", "set", set, "err", perr)
			}
			if e.timeout > 0 {
				x.Expires = now.Add(time.Duration(e.timeout) * time.Second)
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// chainBans reads the per-address rules of our chain with their counters.
// Must run inside ns.do.
func (b *IPTables) chainBans(f *family) ([]entry, error) {
	rules, err := listRules(f.ipt, b.opts.Chain, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	var out []entry
	at := map[netip.Prefix]int{}
	for _, r := range rules {
		src, comment := r.opt("-s"), r.opt("--comment")
		if src == "" || comment == "" {
			continue
		}
		jail, exp, sc, ours, perr := parseBanComment(comment)
		if !ours {
			continue
		}
		if perr != nil {
			b.log.Warn("unreadable rule comment", "rule", r.line, "err", perr)
			continue
		}
		p, err := netip.ParsePrefix(src)
		if err != nil {
			a, aerr := netip.ParseAddr(src)
			if aerr != nil {
				b.log.Warn("unreadable rule source", "rule", r.line)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		// A scoped ban is several rules: one entry, counters summed.
		if i, ok := at[p]; ok {
			out[i].specs = append(out[i].specs, r.args)
			out[i].ban.Packets += r.pkts
			out[i].ban.Bytes += r.bytes
			continue
		}
		x := bans.Ban{Prefix: p, Jail: jail, Expires: exp, Scope: sc, Packets: r.pkts, Bytes: r.bytes}
		at[p] = len(out)
		out = append(out, entry{ban: x, specs: [][]string{r.args}})
	}
	return out, nil
}
