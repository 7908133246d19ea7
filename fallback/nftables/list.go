package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/xdpban/xdpban/internal/bans"
)

// load rebuilds the in-memory view from the kernel (adopting a table).
func (b *Backend) load() error {
	got, err := b.read(b.opts.Now())
	if err != nil {
		return err
	}
	b.known = map[netip.Prefix]entry{}
	for _, x := range got {
		b.known[x.Prefix] = entry{ban: x, inKernel: true}
	}
	if len(got) > 0 {
		b.log.Info("nftables: adopted bans left in the table", "table", b.opts.Table, "bans", len(got))
	}
	return nil
}

// read dumps every set: one ban per prefix, its scope rebuilt from its
// elements, its counters summed over them.
func (b *Backend) read(now time.Time) ([]bans.Ban, error) {
	type acc struct {
		ban    bans.Ban
		ranges []protoRange
	}
	byPrefix := map[netip.Prefix]*acc{}
	var order []netip.Prefix
	for _, k := range b.sortedKinds() {
		s := b.sets[k]
		es, err := b.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables: list set %s: %w", s.Name, err)
		}
		for _, e := range es {
			if e.IntervalEnd {
				continue
			}
			p, pr, err := k.parseElem(e)
			if err != nil {
				b.log.Warn("nftables: unreadable element", "err", err)
				continue
			}
			a := byPrefix[p]
			if a == nil {
				a = &acc{ban: bans.Ban{Prefix: p}}
				jail, exp, ours, perr := parseComment(e.Comment)
				switch {
				case ours && perr == nil:
					a.ban.Jail, a.ban.Expires = jail, exp
				default:
					if perr != nil {
						b.log.Warn("nftables: unreadable element comment", "set", s.Name, "err", perr)
					}
					if e.Timeout > 0 {
						a.ban.Expires = now.Add(e.Expires)
					}
				}
				byPrefix[p] = a
				order = append(order, p)
			}
			if e.Counter != nil {
				a.ban.Packets += e.Counter.Packets
				a.ban.Bytes += e.Counter.Bytes
			}
			if k.scoped {
				a.ranges = append(a.ranges, pr)
			}
		}
	}
	out := make([]bans.Ban, 0, len(order))
	for _, p := range order {
		a := byPrefix[p]
		if len(a.ranges) > 0 {
			a.ban.Scope = scopeOf(a.ranges)
		}
		out = append(out, a.ban)
	}
	return out, nil
}

// List implements bans.Backend.
func (b *Backend) List(ctx context.Context) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	return b.list(b.opts.Now())
}

func (b *Backend) list(now time.Time) ([]bans.Ban, error) {
	got, err := b.read(now)
	if err != nil {
		return nil, err
	}
	seen := map[netip.Prefix]bool{}
	for i, x := range got {
		seen[x.Prefix] = true
		// The scope as it was given, when the kernel's says the same
		// (the kernel's form merges and sorts the port ranges).
		if e, ok := b.known[x.Prefix]; ok && sameScope(e.ban.Scope, x.Scope) {
			got[i].Scope = e.ban.Scope
		}
	}
	// The kernel removes timed-out elements itself; until the sweep has
	// seen them they are listed like XDP's expired entries. A ban missing
	// before its end is listed too, never forgotten: a dump of a set the
	// kernel is still resizing after a bulk insert can skip elements
	// (seen with 200k), and forgetting one would leave it unliftable.
	for p, e := range b.known {
		if !seen[p] {
			got = append(got, e.ban)
		}
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Prefix.String() < got[j].Prefix.String() })
	return got, nil
}

func sameScope(a, b bans.Scope) bool {
	if a.All() || b.All() {
		return a.All() == b.All()
	}
	pa, pb := portElems(a), portElems(b)
	return slices.Equal(pa, pb)
}

// Expire implements bans.Backend. It works from the bans this backend
// holds, without a dump: the kernel ends the elements by itself, so what
// is left to do is forget them (and delete any the kernel still has, for
// bans longer than the kernel's timeout). A dump of a large set costs
// seconds; a sweep must not.
func (b *Backend) Expire(ctx context.Context, now time.Time) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	var done []bans.Ban
	var ps []netip.Prefix
	for p, e := range b.known {
		if e.ban.Expired(now) {
			done = append(done, e.ban)
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil, nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Prefix.String() < done[j].Prefix.String() })
	if _, err := b.delete(ctx, ps); err != nil {
		return nil, err
	}
	return done, nil
}

// Status implements bans.Backend. Table entries are the bans this
// backend holds per set (counting the kernel's would dump every element).
func (b *Backend) Status(ctx context.Context) (bans.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bans.Status{}, errClosed
	}
	st := bans.Status{Backend: "nftables", Reason: b.opts.Reason, Counters: map[string]uint64{}}
	ifs := b.opts.Interfaces
	if len(ifs) == 0 {
		ifs = []string{"*"}
	}
	for _, i := range ifs {
		st.Interfaces = append(st.Interfaces, bans.IfaceStatus{Name: i, Mode: "netfilter"})
	}
	count := map[kind]int{}
	for _, e := range b.known {
		if e.inKernel {
			count[kindOf(e.ban)]++
		}
	}
	for _, k := range b.sortedKinds() {
		st.Tables = append(st.Tables, bans.TableStatus{Name: b.opts.Table + "/" + k.name(), Entries: count[k], Capacity: b.opts.MaxElem})
	}
	rules, err := b.conn.GetRules(b.table, &nftables.Chain{Name: chainBans, Table: b.table})
	if err != nil {
		return bans.Status{}, fmt.Errorf("nftables: list rules of chain %s: %w", chainBans, err)
	}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				st.Counters["dropped"] += c.Packets
				st.Counters["dropped_bytes"] += c.Bytes
			}
		}
	}
	st.Counters["entries"] = uint64(len(b.known))
	return st, nil
}
