package ledger

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
)

// The XDP ban maps are LRU hashes: full, the kernel makes room by
// evicting a ban, silently. So the daemon never lets them fill: a ban
// (or a whole import) that does not fit below the backend's limit is
// refused before anything is added, the log warns at 90%, and the
// kernel is checked against the mirror (Reconcile, Ensure) so that a ban
// evicted anyway is put back.

// warnFill is the fill ratio that logs a warning.
const warnFill = 0.9

func (c *Core) limiter() bans.Limiter {
	b := c.Backend
	if u, ok := b.(interface{ Unwrap() bans.Backend }); ok {
		b = u.Unwrap()
	}
	l, _ := b.(bans.Limiter)
	return l
}

func (c *Core) holder() bans.Holder {
	b := c.Backend
	if u, ok := b.(interface{ Unwrap() bans.Backend }); ok {
		b = u.Unwrap()
	}
	h, _ := b.(bans.Holder)
	return h
}

// reserve checks that the new prefixes among ps fit in their tables and
// holds room for them until the returned release (called once the
// mirror has them, or the add failed). The caller holds ps's stripes or
// the gate. It returns bans.ErrFull, naming the table and its setting,
// when they do not: nothing of ps may then be added. With wantFresh it
// also says whether none of ps is banned yet (fresh), from the lookups
// the check makes anyway.
func (c *Core) reserve(ps []netip.Prefix, wantFresh bool) (release func(), fresh bool, err error) {
	_, release, fresh, err = c.room(ps, nil, true, wantFresh)
	return release, fresh && wantFresh, err
}

// room counts the new prefixes of ps per table and checks that they fit
// with extra more (an import's earlier parts); with hold it reserves the
// room until release. fresh reports that none of ps is banned yet
// (without a limiter, only when wantFresh: the lookups are then its own).
func (c *Core) room(ps []netip.Prefix, extra map[string]int, hold, wantFresh bool) (need map[string]int, release func(), fresh bool, err error) {
	lim := c.limiter()
	if lim == nil {
		return nil, func() {}, wantFresh && c.allNew(ps), nil
	}
	limits := lim.Limits()
	need = map[string]int{}
	// Each new prefix once: sorted, duplicates side by side (a set of
	// a million keys for an import's check cost more than the sort; an
	// import comes sorted).
	idx := make([]int, len(ps))
	keys := make([]store.Key, len(ps))
	for i, p := range ps {
		idx[i], keys[i] = i, store.KeyOf(p)
	}
	byKey := func(a, b int) int { return bytes.Compare(keys[a][:], keys[b][:]) }
	if !slices.IsSortedFunc(idx, byKey) {
		slices.SortFunc(idx, byKey)
	}
	fresh = true
	c.mu.Lock()
	for n, i := range idx {
		if n > 0 && keys[idx[n-1]] == keys[i] {
			continue
		}
		if _, ok := c.active.get(keys[i]); ok {
			fresh = false
			continue
		}
		need[lim.TableOf(ps[i])]++
	}
	c.mu.Unlock()
	fills := c.TableFills(lim.TableOf)
	c.mu.Lock()
	defer c.mu.Unlock()
	var full []string
	for _, t := range slices.Sorted(maps.Keys(need)) {
		l, ok := limits[t]
		if !ok {
			continue
		}
		have := fills[t] + c.reserved[t]
		if more := need[t] + extra[t]; have+more > l.Limit {
			full = append(full, fmt.Sprintf("%s holds %d of the %d bans it takes and %d more do not fit: raise %s in [xdpban] and restart",
				t, have, l.Limit, more, l.Setting))
		}
	}
	if len(full) > 0 {
		return nil, nil, false, fmt.Errorf("%w: nothing banned: %s", bans.ErrFull, strings.Join(full, "; "))
	}
	if !hold {
		return need, nil, fresh, nil
	}
	if c.reserved == nil {
		c.reserved = map[string]int{}
	}
	for t, n := range need {
		c.reserved[t] += n
	}
	return need, func() {
		c.mu.Lock()
		for t, n := range need {
			c.reserved[t] -= n
		}
		c.mu.Unlock()
	}, fresh, nil
}

// CheckRoom reports (bans.ErrFull) whether bs, with pending more new
// bans per table, would not fit, banning nothing, and returns the new
// bans of bs per table. An import sent in several requests checks each
// part first, adding up, so it is refused whole or not at all.
func (c *Core) CheckRoom(bs []bans.Ban, pending map[string]int) (map[string]int, error) {
	ps := prefixesOf(bs)
	unlock := c.lock(ps)
	defer unlock()
	need, _, _, err := c.room(ps, pending, false, false)
	return need, err
}

// warnFull logs the tables past warnFill, once per crossing.
func (c *Core) warnFull() {
	lim := c.limiter()
	if lim == nil {
		return
	}
	limits := lim.Limits()
	fills := c.TableFills(lim.TableOf)
	c.mu.Lock()
	var warn []string
	for t, l := range limits {
		if l.Limit <= 0 {
			continue
		}
		r := float64(fills[t]) / float64(l.Limit)
		switch {
		case r >= warnFill && !c.fullWarned[t]:
			if c.fullWarned == nil {
				c.fullWarned = map[string]bool{}
			}
			c.fullWarned[t] = true
			warn = append(warn, t)
		case r < warnFill-0.05:
			delete(c.fullWarned, t)
		}
	}
	c.mu.Unlock()
	for _, t := range warn {
		l := limits[t]
		c.Log.Warn("ban table nearly full: bans past its limit will be refused; raise its map size in [xdpban] and restart",
			"table", t, "bans", fills[t], "limit", l.Limit, "setting", l.Setting)
	}
}

// Ensure puts b (a ban the mirror holds) back into the backend if the
// backend lost it (evicted, or removed behind the daemon's back): a jail
// decision skipped as "already banned for longer" must not trust the
// mirror over the kernel. It reports whether b was put back.
func (c *Core) Ensure(ctx context.Context, b bans.Ban) (bool, error) {
	h := c.holder()
	if h == nil {
		return false, nil
	}
	unlock := c.lock([]netip.Prefix{b.Prefix})
	defer unlock()
	if cur, ok := c.Lookup(b.Prefix); !ok || cur.Expired(c.Now()) {
		return false, nil
	}
	held, err := h.Holds(b.Prefix)
	if err != nil || held {
		return false, err
	}
	if err := c.Backend.Add(ctx, b); err != nil {
		return false, fmt.Errorf("put back %s, missing from the kernel: %w", b.Prefix, err)
	}
	c.reinserted(1, "ensure")
	return true, nil
}

// Reconcile compares the backend with the mirror and puts back every
// unexpired ban the backend lost. It returns how many. Unless forced it
// first compares the tables' entry counts (a walk that allocates
// nothing) and lists the bans only when one differs: with the headroom
// the kernel never evicts on its own, so a lost ban means another writer
// added entries, which shows in the count.
func (c *Core) Reconcile(ctx context.Context, force bool) (int, error) {
	c.gate.Lock()
	defer c.gate.Unlock()
	if !force {
		lim := c.limiter()
		if lim == nil {
			return 0, nil
		}
		st, err := c.Backend.Status(ctx)
		if err != nil {
			return 0, fmt.Errorf("count the bans the backend holds: %w", err)
		}
		fills := c.TableFills(lim.TableOf)
		same := true
		for _, t := range st.Tables {
			if _, ban := lim.Limits()[t.Name]; ban && t.Entries != fills[t.Name] {
				same = false
			}
		}
		if same {
			return 0, nil
		}
	}
	// A set of keys (18 bytes each), not a list of bans.
	in := map[store.Key]bool{}
	err := bans.Walk(ctx, c.Backend, func(b bans.Ban) error {
		in[store.KeyOf(b.Prefix)] = true
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read bans the backend holds: %w", err)
	}
	ns := c.Now().UnixNano()
	var lost []bans.Ban
	c.mu.Lock()
	c.active.each(func(k mkey, v mval) bool {
		if !in[store.Key(k)] && !v.expired(ns) {
			lost = append(lost, c.ban(k, v))
		}
		return true
	})
	c.mu.Unlock()
	if len(lost) == 0 {
		return 0, nil
	}
	if err := c.Backend.Add(ctx, lost...); err != nil {
		return 0, fmt.Errorf("put back %d bans missing from the kernel: %w", len(lost), err)
	}
	c.reinserted(len(lost), "reconcile")
	return len(lost), nil
}

func (c *Core) reinserted(n int, how string) {
	if c.Metrics != nil {
		c.Metrics.BansReinserted.Add(float64(n))
	}
	c.Log.Warn("bans were missing from the kernel (evicted from a full map, or removed behind the daemon's back): put back from the store",
		"bans", n, "found_by", how)
}

// fitsAtStart refuses a restore of more bans than the tables take (the
// maps were made smaller than the store's bans need): adding them would
// have the kernel evict some at once, silently.
func (c *Core) fitsAtStart(n map[string]int) error {
	lim := c.limiter()
	if lim == nil {
		return nil
	}
	limits := lim.Limits()
	for _, t := range slices.Sorted(maps.Keys(n)) {
		if l, ok := limits[t]; ok && n[t] > l.Limit {
			return fmt.Errorf("%w: %d stored bans go in %s, which takes %d: raise %s in [xdpban] and restart (no ban was lost: the store keeps them)",
				bans.ErrFull, n[t], t, l.Limit, l.Setting)
		}
	}
	return nil
}
