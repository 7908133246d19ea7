package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// The kernel keeps a per-CPU cache of exact-table hits (xdpban_hitcache,
// struct hit_slot in bpf/xdpban.c) so a flood from a banned source is
// dropped without a hash lookup or a shared atomic add per packet. Two
// duties fall on userspace:
//
//   - Every change to an existing exact entry and every delete bumps
//     xdpban_gen; the kernel ignores slots filled at another value. A
//     new entry needs no bump: the kernel never caches a miss.
//   - A slot holds its CPU's drops not yet added to the entry. Reports
//     add them (pending), and an entry created where slots still hold
//     counts of an earlier ban of the key starts at minus those counts,
//     which the kernel's later fold cancels: a new ban starts from zero.

const hitSlots = 1024 // HIT_SLOTS

// percpuLookup sets have_percpu_lookup (a variable so tests can run the
// path older kernels take).
var percpuLookup = havePercpuLookup

// havePercpuLookup is 1 when the kernel lets a drop event take the
// counts other CPUs' slots hold back (5.19+).
func havePercpuLookup() uint32 {
	if features.HaveProgramHelper(ebpf.XDP, asm.FnMapLookupPercpuElem) == nil {
		return 1
	}
	return 0
}

// hitKey is a slot's key: the exact table's key bytes and family.
type hitKey struct {
	family uint8
	addr   [16]byte
}

func (k hitKey) words() [4]uint32 {
	var w [4]uint32
	for i := range w {
		w[i] = nativeEndian.Uint32(k.addr[4*i:])
	}
	return w
}

// index is hit_hash in bpf/xdpban.c, on the words as the kernel loads
// them from the packet.
func (k hitKey) index() uint32 {
	w := k.words()
	h := w[0] ^ w[1] ^ w[2] ^ w[3]
	h ^= h >> 16
	return (h * 2654435761) >> 22
}

// hitKeyOf is the cache key of an exact-table slot; ok is false for the
// tries, which are not cached.
func hitKeyOf(s slot) (hitKey, bool) {
	switch s.t {
	case tV4:
		k := hitKey{family: 4}
		a := s.key.([4]byte)
		copy(k.addr[:], a[:])
		return k, true
	case tV6:
		return hitKey{family: 6, addr: s.key.([16]byte)}, true
	}
	return hitKey{}, false
}

func hitKeyOfEntry(e entry) (hitKey, bool) {
	switch e.t {
	case tV4:
		k := hitKey{family: 4}
		copy(k.addr[:], e.key)
		return k, true
	case tV6:
		k := hitKey{family: 6}
		copy(k.addr[:], e.key)
		return k, true
	}
	return hitKey{}, false
}

func slotKey(s *xdpbanHitSlot) hitKey {
	k := hitKey{family: s.Family}
	for i, w := range s.Key {
		nativeEndian.PutUint32(k.addr[4*i:], w)
	}
	return k
}

// pend is what the slots hold for one key, summed over CPUs.
type pend struct{ packets, bytes, suppressed uint64 }

// genFence orders the map writes before a bump (made by syscalls on this
// thread's CPU) before the bump itself on weakly ordered CPUs: Go's
// atomics are full barriers.
var genFence atomic.Uint64

// bumpGen invalidates every slot. The new value is the boot clock's when
// that is larger: two processes bumping from the same old value (the
// CLI beside a stopped daemon) still each write one no slot was filled
// with before their change. Callers hold x.mu.
func (x *XDP) bumpGen() error {
	if x.gen == nil {
		return nil // pins of an xdpban without the cache: nothing cached
	}
	genFence.Add(1)
	var g uint64
	if err := x.gen.Lookup(uint32(0), &g); err != nil {
		return fmt.Errorf("read xdpban_gen: %w", err)
	}
	next := max(g+1, uint64(bootNow()))
	if err := x.gen.Put(uint32(0), next); err != nil {
		return fmt.Errorf("write xdpban_gen: %w: the kernel may keep dropping a source just unbanned until the next change; retry the unban", err)
	}
	return nil
}

// pendingAll reads every CPU's slots.
func (x *XDP) pendingAll() (map[hitKey]pend, error) {
	out := map[hitKey]pend{}
	err := x.eachSlot(func(s *xdpbanHitSlot) {
		if s.Family == 0 || (s.Packets == 0 && s.Suppressed == s.Handed) {
			return
		}
		k := slotKey(s)
		out[k] = out[k].plus(s)
	})
	return out, err
}

// eachSlot calls fn for every CPU's copy of every slot, a chunk of slots
// per syscall.
func (x *XDP) eachSlot(fn func(*xdpbanHitSlot)) error {
	if x.hitCache == nil {
		return nil
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("count possible CPUs: %w", err)
	}
	const chunk = 64
	keys := make([]uint32, chunk)
	vals := make([]xdpbanHitSlot, chunk*ncpu)
	var cur ebpf.MapBatchCursor
	var got []xdpbanHitSlot
	for {
		n, err := x.hitCache.BatchLookup(&cur, keys, vals, nil)
		got = append(got, vals[:n*ncpu]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			// Before 5.6: one slot at a time.
			got = got[:0]
			var per []xdpbanHitSlot
			for i := uint32(0); i < hitSlots; i++ {
				if err := x.hitCache.Lookup(i, &per); err != nil {
					return fmt.Errorf("read xdpban_hitcache: %w", err)
				}
				got = append(got, per...)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("read xdpban_hitcache: %w", err)
		}
	}
	for i := range got {
		fn(&got[i])
	}
	return nil
}

// pendingFor reads only the slots keys can be in: one lookup per distinct
// slot, for the few keys of a single ban or unban.
func (x *XDP) pendingFor(keys []hitKey) (map[hitKey]pend, error) {
	if len(keys) > hitSlots/4 {
		return x.pendingAll()
	}
	out := map[hitKey]pend{}
	if x.hitCache == nil || len(keys) == 0 {
		return out, nil
	}
	want := make(map[hitKey]bool, len(keys))
	seen := map[uint32]bool{}
	var per []xdpbanHitSlot
	for _, k := range keys {
		want[k] = true
	}
	for _, k := range keys {
		i := k.index()
		if seen[i] {
			continue
		}
		seen[i] = true
		if err := x.hitCache.Lookup(i, &per); err != nil {
			return nil, fmt.Errorf("read xdpban_hitcache: %w", err)
		}
		addPending(out, per, want)
	}
	return out, nil
}

func addPending(out map[hitKey]pend, per []xdpbanHitSlot, want map[hitKey]bool) {
	for i := range per {
		s := &per[i]
		if s.Family == 0 || (s.Packets == 0 && s.Suppressed == s.Handed) {
			continue
		}
		if k := slotKey(s); want[k] {
			out[k] = out[k].plus(s)
		}
	}
}

// slotTotals sums what every CPU's slots hold, whatever their key: drops
// not yet in xdpban_stats and jail_drops (the kernel settles them there
// when it refills the slot).
func (x *XDP) slotTotals() (all pend, byJail map[uint16]pend, err error) {
	byJail = map[uint16]pend{}
	err = x.eachSlot(func(s *xdpbanHitSlot) {
		if s.Family == 0 {
			return
		}
		all = all.unsettled(s)
		byJail[s.JailId] = byJail[s.JailId].unsettled(s)
	})
	return all, byJail, err
}

// plus adds what s holds for its ban: drops not folded into the entry,
// held-back drops not handed over.
func (p pend) plus(s *xdpbanHitSlot) pend {
	return pend{p.packets + s.Packets, p.bytes + s.Bytes, p.suppressed + (s.Suppressed - s.Handed)}
}

// unsettled adds what s holds that xdpban_stats and jail_drops lack.
func (p pend) unsettled(s *xdpbanHitSlot) pend {
	return pend{p.packets + s.Packets, p.bytes + s.Bytes, p.suppressed + (s.Suppressed - s.Settled)}
}

// withPending is e's counters with the slots' share added.
func withPending(v xdpbanBanEntry, p pend) xdpbanBanEntry {
	v.Packets = atLeastZero(v.Packets + p.packets)
	v.Bytes = atLeastZero(v.Bytes + p.bytes)
	v.EventsSuppressed = atLeastZero(v.EventsSuppressed + p.suppressed)
	return v
}

// atLeastZero reads a counter below zero as zero: an entry started at
// minus its slots' counts, whose slot was then taken by another key
// before the kernel folded it (the old ban's counts are then dropped,
// userspace having read the slot just before), must not show 2^64.
func atLeastZero(n uint64) uint64 {
	if int64(n) < 0 {
		return 0
	}
	return n
}

// startFrom sets a new entry's counters to minus what the slots still
// hold for its key (counts of an earlier ban the kernel has not folded
// yet), so entry + slots, what every report shows, starts at zero.
func startFrom(v *xdpbanBanEntry, p pend) {
	v.Packets = -p.packets
	v.Bytes = -p.bytes
	v.EventsSuppressed = -p.suppressed
}

// loadHitMaps opens the cache maps from pins that may predate them.
func loadHitMaps(dir string) (cache, gen *ebpf.Map, err error) {
	cache, err = loadOptionalPin(dir, xdpbanMapXdpbanHitcache)
	if err != nil {
		return nil, nil, err
	}
	gen, err = loadOptionalPin(dir, xdpbanMapXdpbanGen)
	if err != nil {
		if cache != nil {
			cache.Close()
		}
		return nil, nil, err
	}
	if (cache == nil) != (gen == nil) {
		if cache != nil {
			cache.Close()
		}
		if gen != nil {
			gen.Close()
		}
		return nil, nil, fmt.Errorf("pin path %s has only one of %s and %s (half-removed?): run `xdpban detach` and restart the daemon: %w",
			dir, xdpbanMapXdpbanHitcache, xdpbanMapXdpbanGen, ErrNotLoaded)
	}
	return cache, gen, nil
}

// loadOptionalPin opens a pinned map that older pins lack (nil, nil).
func loadOptionalPin(dir, name string) (*ebpf.Map, error) {
	path := filepath.Join(dir, name)
	m, err := ebpf.LoadPinnedMap(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load pinned map %s: %w", path, err)
	}
	return m, nil
}
