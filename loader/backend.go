package loader

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
)

// Add implements bans.Backend. Re-adding a banned prefix replaces its
// jail and expiry but keeps its drop counters, so a ban extended by
// bantime.increment still shows everything it dropped.
//
// Single addresses (the bulk of a --from-file import) are written with
// batch updates: a lookup per ban (for the counters) and one update
// syscall per batch instead of one per ban. The kernel takes no
// BPF_NOEXIST on batches, so the lookup cannot be saved.
func (x *XDP) Add(ctx context.Context, bs ...bans.Ban) error {
	return x.add(ctx, false, bs)
}

// AddNew implements bans.NewAdder: the caller knows none of bs is in
// force, so single addresses are written without reading them first.
func (x *XDP) AddNew(ctx context.Context, bs ...bans.Ban) error {
	return x.add(ctx, true, bs)
}

func (x *XDP) add(ctx context.Context, fresh bool, bs []bans.Ban) (err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return err
	}
	// An exact entry changed in place (expiry, jail, scope) may sit in
	// the kernel's hit cache with its old values: bump once the writes
	// are in, failed or not.
	modified := false
	defer func() {
		if modified {
			err = errors.Join(err, x.bumpGen())
		}
	}()
	// What the hit cache still counts for these keys; a large batch
	// (an import's part) reads the whole cache rather than collect its
	// keys first.
	var stale map[hitKey]pend
	if len(bs) > hitSlots/4 {
		stale, err = x.pendingAll()
	} else {
		var keys []hitKey
		for _, b := range bs {
			if !b.Prefix.IsValid() {
				continue
			}
			if _, s, err := x.slotFor(b.Prefix); err == nil {
				if k, ok := hitKeyOf(s); ok {
					keys = append(keys, k)
				}
			}
		}
		stale, err = x.pendingFor(keys)
	}
	if err != nil {
		return err
	}
	var v4 batch[[4]byte]
	var v6 batch[[16]byte]
	clock := newBootClock()
	for _, b := range bs {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, s, err := x.slotFor(b.Prefix)
		if err != nil {
			return err
		}
		id, err := x.jailID(b.Jail)
		if err != nil {
			return fmt.Errorf("ban %s: %w", p, err)
		}
		sid, err := x.scopeID(b.Scope)
		if err != nil {
			return fmt.Errorf("ban %s: %w", p, err)
		}
		v := xdpbanBanEntry{ExpiresNs: clock.toBoot(b.Expires), JailId: uint16(id), ScopeId: sid}
		if s.t == tV4 || s.t == tV6 {
			var old xdpbanBanEntry
			if !fresh && x.tbl[s.t].Lookup(s.key, &old) == nil {
				old.ExpiresNs, old.JailId, old.ScopeId = v.ExpiresNs, v.JailId, v.ScopeId
				v = old
				modified = true
			} else if len(stale) > 0 {
				hk, _ := hitKeyOf(s)
				if p, ok := stale[hk]; ok {
					startFrom(&v, p)
				}
			}
		}
		switch s.t {
		case tV4:
			v4.add(s.key.([4]byte), v, p)
			if len(v4.keys) == batchSize {
				err = flushBatch(x, tV4, &v4)
			}
		case tV6:
			v6.add(s.key.([16]byte), v, p)
			if len(v6.keys) == batchSize {
				err = flushBatch(x, tV6, &v6)
			}
		default:
			err = x.addOne(p, s, v)
		}
		if err != nil {
			return err
		}
	}
	if err := flushBatch(x, tV4, &v4); err != nil {
		return err
	}
	return flushBatch(x, tV6, &v6)
}

type batch[K any] struct {
	keys []K
	vals []xdpbanBanEntry
	ps   []netip.Prefix
}

func (b *batch[K]) add(k K, v xdpbanBanEntry, p netip.Prefix) {
	b.keys, b.vals, b.ps = append(b.keys, k), append(b.vals, v), append(b.ps, p)
}

func flushBatch[K any](x *XDP, t table, b *batch[K]) error {
	m := x.tbl[t]
	for off := 0; off < len(b.keys); {
		n, err := m.BatchUpdate(b.keys[off:], b.vals[off:], nil)
		off += n
		switch {
		case err == nil:
			off = len(b.keys)
		case errors.Is(err, ebpf.ErrNotSupported):
			// No batch API (before 5.6): one at a time.
			for ; off < len(b.keys); off++ {
				if err := m.Update(b.keys[off], &b.vals[off], ebpf.UpdateAny); err != nil {
					return x.addErr(b.ps[off], t, err)
				}
			}
		default:
			return x.addErr(b.ps[min(off, len(b.ps)-1)], t, err)
		}
	}
	b.keys, b.vals, b.ps = b.keys[:0], b.vals[:0], b.ps[:0]
	return nil
}

// addOne puts one ban, keeping the counters of an entry already there.
func (x *XDP) addOne(p netip.Prefix, s slot, nv xdpbanBanEntry) error {
	m := x.tbl[s.t]
	var v xdpbanBanEntry
	existed := m.Lookup(s.key, &v) == nil
	v.ExpiresNs = nv.ExpiresNs
	v.JailId = nv.JailId
	v.ScopeId = nv.ScopeId
	if err := m.Update(s.key, &v, ebpf.UpdateAny); err != nil {
		return x.addErr(p, s.t, err)
	}
	if !existed && (s.t == tV4Net || s.t == tV6Net) {
		if err := x.bumpNet(s.t, 1); err != nil {
			return err
		}
	}
	return nil
}

func (x *XDP) addErr(p netip.Prefix, t table, err error) error {
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("ban %s: %s is full at %d entries: raise its map size in [xdpban] and restart: %w",
			p, t, x.tbl[t].MaxEntries(), bans.ErrFull)
	}
	return fmt.Errorf("ban %s in %s: %w", p, t, err)
}

// Delete implements bans.Backend.
func (x *XDP) Delete(ctx context.Context, ps ...netip.Prefix) (n int, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return 0, err
	}
	cached := false // an exact entry went: its slots must stop dropping
	defer func() {
		if cached {
			err = errors.Join(err, x.bumpGen())
		}
	}()
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		p, s, err := x.slotFor(p)
		if err != nil {
			return n, err
		}
		err = x.tbl[s.t].Delete(s.key)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("unban %s in %s: %w", p, s.t, err)
		}
		n++
		if s.t == tV4 || s.t == tV6 {
			cached = true
		}
		if s.t == tV4Net || s.t == tV6Net {
			if err := x.bumpNet(s.t, -1); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Flush implements bans.Backend.
func (x *XDP) Flush(ctx context.Context) (n int, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, x.bumpGen()) }()
	for t := table(0); t < tables; t++ {
		m := x.tbl[t]
		// Collect first: deleting while walking a hash map restarts the
		// walk.
		var keys [][]byte
		cur := make([]byte, m.KeySize())
		next := make([]byte, m.KeySize())
		var prev any // nil: first key
		for {
			if err := m.NextKey(prev, next); err != nil {
				if errors.Is(err, ebpf.ErrKeyNotExist) {
					break
				}
				return n, fmt.Errorf("flush %s: %w", t, err)
			}
			keys = append(keys, append([]byte(nil), next...))
			copy(cur, next)
			prev = cur
		}
		for _, k := range keys {
			if err := m.Delete(k); err == nil {
				n++
			} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
				return n, fmt.Errorf("flush %s: %w", t, err)
			}
		}
		if t == tV4Net || t == tV6Net {
			if err := x.recountNet(t); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// entry is one map element read back.
type entry struct {
	t   table
	key []byte
	v   xdpbanBanEntry
}

// walk calls fn for every element of table t. Hash tables are read in
// batches (a 1M-entry table in a few hundred syscalls); tries have no
// batch support and are walked key by key.
func (x *XDP) walk(t table, fn func(entry) error) error {
	m := x.tbl[t]
	switch t {
	case tV4:
		return walkBatch[[4]byte](m, func(k [4]byte, v xdpbanBanEntry) error {
			return fn(entry{t, k[:], v})
		})
	case tV6:
		return walkBatch[[16]byte](m, func(k [16]byte, v xdpbanBanEntry) error {
			return fn(entry{t, k[:], v})
		})
	}
	if t == tV4Net {
		return walkIter(m, func(k xdpbanLpmV4Key, v xdpbanBanEntry) error {
			return fn(entry{t, append(nativeEndian.AppendUint32(nil, k.Prefixlen), k.Addr[:]...), v})
		})
	}
	return walkIter(m, func(k xdpbanLpmV6Key, v xdpbanBanEntry) error {
		return fn(entry{t, append(nativeEndian.AppendUint32(nil, k.Prefixlen), k.Addr[:]...), v})
	})
}

func walkIter[K any](m *ebpf.Map, fn func(K, xdpbanBanEntry) error) error {
	it := m.Iterate()
	var k K
	var v xdpbanBanEntry
	for it.Next(&k, &v) {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", m, err)
	}
	return nil
}

const batchSize = 4096

func walkBatch[K, V any](m *ebpf.Map, fn func(K, V) error) error {
	keys := make([]K, batchSize)
	vals := make([]V, batchSize)
	var cur ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cur, keys, vals, nil)
		for i := 0; i < n; i++ {
			if ferr := fn(keys[i], vals[i]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", m, err)
		}
	}
}

// toBan reads e back as a ban; pending is what the hit cache's slots
// hold for the exact tables' keys (pendingAll, read before the entry so
// a fold in between counts twice for a moment rather than going
// missing, or wrapping an entry started below zero).
func (x *XDP) toBan(e entry, pending map[hitKey]pend, clock bootClock) (bans.Ban, error) {
	p, err := x.prefixOf(e.t, e.key)
	if err != nil {
		return bans.Ban{}, err
	}
	if k, ok := hitKeyOfEntry(e); ok {
		e.v = withPending(e.v, pending[k])
	}
	return bans.Ban{
		Prefix:  p,
		Jail:    x.jailName(uint32(e.v.JailId)),
		Scope:   x.scopeName(e.v.ScopeId),
		Expires: clock.toWall(e.v.ExpiresNs),
		Packets: e.v.Packets,
		Bytes:   e.v.Bytes,
	}, nil
}

// List implements bans.Backend.
func (x *XDP) List(ctx context.Context) ([]bans.Ban, error) {
	var out []bans.Ban
	err := x.Walk(ctx, func(b bans.Ban) error {
		out = append(out, b)
		return nil
	})
	return out, err
}

var _ bans.Walker = (*XDP)(nil)

// Walk implements bans.Walker.
func (x *XDP) Walk(ctx context.Context, fn func(bans.Ban) error) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return err
	}
	pending, err := x.pendingAll()
	if err != nil {
		return err
	}
	// One reading of the clocks for the walk: two a ban were a sixth of
	// a restart's walk of a million.
	clock := newBootClock()
	for t := table(0); t < tables; t++ {
		err := x.walk(t, func(e entry) error {
			b, err := x.toBan(e, pending, clock)
			if err != nil {
				return err
			}
			if err := fn(b); err != nil {
				return err
			}
			return ctx.Err()
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Expire implements bans.Backend. The kernel already passes traffic from
// expired entries; this frees their slots.
func (x *XDP) Expire(ctx context.Context, now time.Time) (_ []bans.Ban, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	limit := toBoot(now)
	var out []bans.Ban
	cached := false
	defer func() {
		if cached {
			err = errors.Join(err, x.bumpGen())
		}
	}()
	for t := table(0); t < tables; t++ {
		var dead []entry
		err := x.walk(t, func(e entry) error {
			if e.v.ExpiresNs != 0 && e.v.ExpiresNs <= limit {
				dead = append(dead, e)
			}
			return ctx.Err()
		})
		if err != nil {
			return out, err
		}
		var keys []hitKey
		for _, e := range dead {
			if k, ok := hitKeyOfEntry(e); ok {
				keys = append(keys, k)
			}
		}
		pending, err := x.pendingFor(keys)
		if err != nil {
			return out, err
		}
		clock := newBootClock()
		removed := 0
		for _, e := range dead {
			// Re-read: a ban renewed since the walk must survive.
			var cur xdpbanBanEntry
			if err := x.tbl[t].Lookup(e.key, &cur); err != nil ||
				cur.ExpiresNs == 0 || cur.ExpiresNs > limit {
				continue
			}
			if err := x.tbl[t].Delete(e.key); err != nil {
				if errors.Is(err, ebpf.ErrKeyNotExist) {
					continue
				}
				return out, fmt.Errorf("expire in %s: %w", t, err)
			}
			e.v = cur
			b, err := x.toBan(e, pending, clock)
			if err != nil {
				return out, err
			}
			out = append(out, b)
			removed++
			if t == tV4 || t == tV6 {
				cached = true
			}
		}
		if removed > 0 && (t == tV4Net || t == tV6Net) {
			if err := x.bumpNet(t, -removed); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// Counter names and the fields of struct stats (xdpban_stats) they sum.
var counterNames = []struct {
	name  string
	field func(*xdpbanStats) uint64
}{
	{"passed", func(s *xdpbanStats) uint64 { return s.Passed }},
	{"dropped", func(s *xdpbanStats) uint64 { return s.Dropped }},
	{"expired_pass", func(s *xdpbanStats) uint64 { return s.ExpiredPass }},
	{"not_ip", func(s *xdpbanStats) uint64 { return s.NotIp }},
	{"malformed", func(s *xdpbanStats) uint64 { return s.Malformed }},
	{"rate_limited", func(s *xdpbanStats) uint64 { return s.RateLimited }},
	{"events_sent", func(s *xdpbanStats) uint64 { return s.EventsSent }},
	{"events_suppressed", func(s *xdpbanStats) uint64 { return s.EventsSuppressed }},
	{"dropped_bytes", func(s *xdpbanStats) uint64 { return s.DroppedBytes }},
}

// Counters returns the global counters summed over CPUs.
func (x *XDP) Counters() (map[string]uint64, error) {
	// The slots before the counters: a slot the kernel settles in
	// between counts twice for a moment rather than not at all.
	held, _, err := x.slotTotals()
	if err != nil {
		return nil, err
	}
	var per []xdpbanStats
	if err := x.stats.Lookup(uint32(0), &per); err != nil {
		return nil, fmt.Errorf("read xdpban_stats: %w", err)
	}
	out := make(map[string]uint64, len(counterNames))
	for _, c := range counterNames {
		var sum uint64
		for i := range per {
			sum += c.field(&per[i])
		}
		out[c.name] = sum
	}
	out["dropped"] += held.packets
	out["dropped_bytes"] += held.bytes
	out["events_suppressed"] += held.suppressed
	return out, nil
}

// DroppedByJail returns, per jail name, the packets and bytes its bans
// dropped since the pins were made (summed over CPUs; bans lifted long
// ago included).
func (x *XDP) DroppedByJail() (packets, bytes map[string]uint64, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return nil, nil, err
	}
	packets, bytes = map[string]uint64{}, map[string]uint64{}
	_, held, err := x.slotTotals()
	if err != nil {
		return nil, nil, err
	}
	it := x.jailDrops.Iterate()
	var id uint32
	var per []xdpbanJailDropCount
	for it.Next(&id, &per) {
		var n, b uint64
		for _, c := range per {
			n += c.Packets
			b += c.Bytes
		}
		if id < 1<<16 {
			n += held[uint16(id)].packets
			b += held[uint16(id)].bytes
		}
		if n == 0 {
			continue
		}
		name := x.jailName(id)
		if name == "" {
			name = "none" // bans made without a jail name
		}
		packets[name] += n
		bytes[name] += b
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("read jail_drops: %w", err)
	}
	return packets, bytes, nil
}

// Status implements bans.Backend.
func (x *XDP) Status(ctx context.Context) (bans.Status, error) {
	return x.status(ctx, true)
}

// StatusUncounted implements bans.TableFiller: the ban tables' Entries
// are -1. rl_buckets, which nobody mirrors, is still counted; it holds
// at most RL_BUCKETS entries.
func (x *XDP) StatusUncounted(ctx context.Context) (bans.Status, error) {
	return x.status(ctx, false)
}

// TableOf implements bans.TableFiller.
func (x *XDP) TableOf(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	_, s, err := x.slotFor(p)
	if err != nil {
		return ""
	}
	return s.t.String()
}

func (x *XDP) status(ctx context.Context, count bool) (bans.Status, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return bans.Status{}, err
	}
	st := bans.Status{Backend: "xdp"}
	ifs, err := x.interfaces()
	if err != nil {
		return st, err
	}
	st.Interfaces = ifs
	for t := table(0); t < tables; t++ {
		n := -1
		if count {
			n = 0
			if err := x.walk(t, func(entry) error { n++; return ctx.Err() }); err != nil {
				return st, err
			}
		}
		ts := bans.TableStatus{Name: t.String(), Entries: n, Capacity: int(x.tbl[t].MaxEntries())}
		if l := x.limit(t); l < ts.Capacity {
			ts.Limit = l
		}
		st.Tables = append(st.Tables, ts)
	}
	n := 0
	if err := walkBatch(x.rlBuckets, func(xdpbanRlKey, xdpbanRlBucket) error { n++; return ctx.Err() }); err != nil {
		return st, fmt.Errorf("read rl_buckets: %w", err)
	}
	st.Tables = append(st.Tables, bans.TableStatus{Name: xdpbanMapRlBuckets, Entries: n, Capacity: int(x.rlBuckets.MaxEntries())})
	if st.Counters, err = x.Counters(); err != nil {
		return st, err
	}
	return st, nil
}

// interfaces lists the pinned links with their attach mode. The mode
// comes from the interface itself (netlink), read in the caller's
// namespace: an interface that cannot be found there is "unknown".
func (x *XDP) interfaces() ([]bans.IfaceStatus, error) {
	ents, err := os.ReadDir(x.pin)
	if err != nil {
		return nil, fmt.Errorf("list pinned links in %s: %w", x.pin, err)
	}
	var out []bans.IfaceStatus
	for _, e := range ents {
		name, ok := linkName(e.Name())
		if !ok {
			continue
		}
		out = append(out, bans.IfaceStatus{Name: name, Mode: x.mode(filepath.Join(x.pin, e.Name()))})
	}
	// Interfaces deleted under the daemon have no pin left (reattach.go).
	for _, name := range slices.Sorted(maps.Keys(x.links)) {
		if x.links[name] == nil {
			out = append(out, bans.IfaceStatus{Name: name, Mode: "gone"})
		}
	}
	return out, nil
}

func (x *XDP) mode(linkPath string) string {
	l, err := link.LoadPinnedLink(linkPath, nil)
	if err != nil {
		return "unknown"
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil || info.XDP() == nil {
		return "unknown"
	}
	nl, err := netlink.LinkByIndex(int(info.XDP().Ifindex))
	if err != nil || nl.Attrs().Xdp == nil || nl.Attrs().Xdp.ProgId != uint32(info.Program) {
		return "unknown"
	}
	switch nl.Attrs().Xdp.AttachMode {
	case 1: // XDP_ATTACHED_DRV
		return "native"
	case 2: // XDP_ATTACHED_SKB
		return "generic"
	case 3: // XDP_ATTACHED_HW
		return "offload"
	}
	return "unknown"
}

// bumpNet adjusts the trie fill count the kernel reads. When a decrement
// would reach zero the trie is recounted: a wrong zero would switch
// prefix enforcement off.
func (x *XDP) bumpNet(t table, d int) error {
	var m xdpbanMeta
	if err := x.meta.Lookup(uint32(0), &m); err != nil {
		return fmt.Errorf("read meta: %w", err)
	}
	c := &m.V4NetEntries
	if t == tV6Net {
		c = &m.V6NetEntries
	}
	n := int(*c) + d
	if n <= 0 {
		return x.recountNet(t)
	}
	*c = uint32(n)
	if err := x.meta.Put(uint32(0), &m); err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	return nil
}

func (x *XDP) recountNet(t table) error {
	n := 0
	if err := x.walk(t, func(entry) error { n++; return nil }); err != nil {
		return err
	}
	var m xdpbanMeta
	if err := x.meta.Lookup(uint32(0), &m); err != nil {
		return fmt.Errorf("read meta: %w", err)
	}
	if t == tV6Net {
		m.V6NetEntries = uint32(n)
	} else {
		m.V4NetEntries = uint32(n)
	}
	if err := x.meta.Put(uint32(0), &m); err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	return nil
}
