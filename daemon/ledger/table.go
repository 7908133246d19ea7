package ledger

import (
	"bytes"
	"encoding/binary"
	"slices"

	"golang.org/x/sys/unix"
)

// table holds the mirror's entries in two parts: a sorted slab of packed
// records (the bulk, at 31 bytes an entry with no per-entry overhead) and
// a small map of keys added since the slab was last rebuilt. Values of
// keys already in the slab are changed in place and deletions only mark
// the record, so the map only ever holds new keys; it is merged into the
// slab when it reaches an eighth of it. A Go map of a million entries
// costs two to three times the slab, depending on where its tables are
// in their growth.
//
// The slab is mapped outside the Go heap: as heap it would count towards
// the collector's goal, which then lets the process hold twice the slab;
// mapped, a rebuild returns the old slab to the kernel at once.
type table struct {
	slab   []byte // sorted records: key, value, live flag
	mapped bool   // slab is an mmap of its own
	dead   int    // records in slab marked deleted
	delta  map[mkey]mval
}

const (
	keyLen = len(mkey{})
	valLen = len(mval{})
	recLen = keyLen + valLen + 1
	// minDelta keeps small tables (tests, a quiet bastion) in the map
	// alone.
	minDelta = 4096
)

func newTable() *table { return &table{delta: map[mkey]mval{}} }

func (t *table) slabLen() int { return len(t.slab) / recLen }

func (t *table) rec(i int) []byte { return t.slab[i*recLen : (i+1)*recLen] }

// find is the slab index of k, or -1. (A restart looks up each of the
// kernel's million bans here.)
func (t *table) find(k mkey) int {
	lo, hi := 0, t.slabLen()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keyLess(t.slab[m*recLen:m*recLen+keyLen], k[:]) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < t.slabLen() && bytes.Equal(t.rec(lo)[:keyLen], k[:]) {
		return lo
	}
	return -1
}

// keyLess orders keys as bytes.Compare does, the first eight bytes
// compared as one number.
func keyLess(a, b []byte) bool {
	ha, hb := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	return ha < hb || ha == hb && bytes.Compare(a[8:keyLen], b[8:keyLen]) < 0
}

func (t *table) get(k mkey) (mval, bool) {
	if v, ok := t.delta[k]; ok {
		return v, true
	}
	if i := t.find(k); i >= 0 {
		r := t.rec(i)
		if r[recLen-1] == 1 {
			return mval(r[keyLen : keyLen+valLen]), true
		}
	}
	return mval{}, false
}

func (t *table) put(k mkey, v mval) {
	if _, ok := t.delta[k]; ok {
		t.delta[k] = v
		return
	}
	if i := t.find(k); i >= 0 {
		r := t.rec(i)
		copy(r[keyLen:], v[:])
		if r[recLen-1] == 0 {
			r[recLen-1] = 1
			t.dead--
		}
		return
	}
	t.delta[k] = v
	if len(t.delta) >= max(minDelta, t.slabLen()/8) {
		t.merge()
	}
}

func (t *table) del(k mkey) {
	if _, ok := t.delta[k]; ok {
		delete(t.delta, k)
		return
	}
	if i := t.find(k); i >= 0 {
		if r := t.rec(i); r[recLen-1] == 1 {
			r[recLen-1] = 0
			t.dead++
			// Mostly deleted (a mass expiry): give the memory back.
			if t.dead > t.slabLen()/2 {
				t.merge()
			}
		}
	}
}

func (t *table) len() int { return t.slabLen() - t.dead + len(t.delta) }

// each calls f for every entry until it returns false.
func (t *table) each(f func(k mkey, v mval) bool) {
	for i := range t.slabLen() {
		r := t.rec(i)
		if r[recLen-1] == 1 && !f(mkey(r[:keyLen]), mval(r[keyLen:keyLen+valLen])) {
			return
		}
	}
	for k, v := range t.delta {
		if !f(k, v) {
			return
		}
	}
}

// merge rebuilds the slab from its live records and the delta.
func (t *table) merge() {
	recs := make([]mrec, 0, len(t.delta))
	for k, v := range t.delta {
		recs = append(recs, mrec{k, v})
	}
	slices.SortFunc(recs, cmpRec)
	t.mergeInto(recs)
	clear(t.delta)
}

func cmpRec(a, b mrec) int { return bytes.Compare(a.k[:], b.k[:]) }

// mrec is one entry for insertNew.
type mrec struct {
	k mkey
	v mval
}

// insertNew adds recs, none of whose keys is live in the table (the
// caller knows), with one merge into the slab instead of a map insert
// each and the merges they trigger. The slab grows in place (mremap) and
// is merged from its end, so only the records above recs' first key
// move: an import's sorted parts, each above the last, cost what they
// add, not a copy of the whole slab each. Of duplicate keys in recs the
// last wins.
func (t *table) insertNew(recs []mrec) {
	if len(recs) < minDelta {
		for _, r := range recs {
			t.put(r.k, r.v)
		}
		return
	}
	if len(t.delta) > 0 {
		t.merge()
	}
	if !slices.IsSortedFunc(recs, cmpRec) {
		slices.SortStableFunc(recs, cmpRec)
	}
	// The last of each run of equal keys: compact from the end.
	w := len(recs)
	for j := len(recs) - 1; j >= 0; j-- {
		if w < len(recs) && recs[w].k == recs[j].k {
			continue
		}
		w--
		recs[w] = recs[j]
	}
	recs = recs[w:]
	n, m := t.slabLen(), len(recs)
	if !t.grow((n + m) * recLen) {
		t.mergeInto(recs)
		return
	}
	// Backwards: out position o, slab i, recs j. A dead record of a key
	// in recs is replaced, which leaves one record of room at the front
	// (shifted out below).
	o, i, j := n+m-1, n-1, m-1
	for j >= 0 {
		if i >= 0 {
			c := bytes.Compare(t.rec(i)[:keyLen], recs[j].k[:])
			if c > 0 {
				if o != i {
					copy(t.rec(o), t.rec(i))
				}
				i, o = i-1, o-1
				continue
			}
			if c == 0 { // dead, as the caller knows none is live
				i--
				t.dead--
			}
		}
		r := t.rec(o)
		copy(r, recs[j].k[:])
		copy(r[keyLen:], recs[j].v[:])
		r[recLen-1] = 1
		j, o = j-1, o-1
	}
	// Each dead record replaced left one unused between the slab's
	// records still in place (up to i) and the merged ones (from o+1):
	// the merged ones move down over them.
	if gap := o - i; gap > 0 {
		copy(t.slab[(i+1)*recLen:], t.slab[(o+1)*recLen:])
		t.shrink((n + m - gap) * recLen)
	}
}

// grow makes the slab size bytes long, keeping its records, in place
// when it is mapped (mremap moves pages, not bytes). It reports false
// when it cannot, and the slab is unchanged.
func (t *table) grow(size int) bool {
	if !t.mapped || len(t.slab) == 0 {
		return false
	}
	b, err := unix.Mremap(t.slab, size, unix.MREMAP_MAYMOVE)
	if err != nil {
		return false
	}
	t.slab = b[:size]
	return true
}

// shrink cuts the slab to size bytes (a mapped slab gives the rest back).
func (t *table) shrink(size int) {
	if t.mapped {
		if b, err := unix.Mremap(t.slab, size, unix.MREMAP_MAYMOVE); err == nil {
			t.slab = b[:size]
			return
		}
	}
	t.slab = t.slab[:size]
}

// mergeInto rebuilds the slab from its live records and recs (sorted,
// without duplicates, none live in the slab; a dead record of the same
// key is replaced).
func (t *table) mergeInto(recs []mrec) {
	size := (t.slabLen() - t.dead + len(recs)) * recLen
	out, mapped := allocSlab(size)
	out = out[:size]
	w, i, j, n := 0, 0, 0, t.slabLen()
	for i < n || j < len(recs) {
		if i < n && (j == len(recs) || bytes.Compare(t.rec(i)[:keyLen], recs[j].k[:]) < 0) {
			if r := t.rec(i); r[recLen-1] == 1 {
				w += copy(out[w:], r)
			}
			i++
			continue
		}
		if i < n && bytes.Equal(t.rec(i)[:keyLen], recs[j].k[:]) {
			i++ // a dead record of the same key: replaced
		}
		w += copy(out[w:], recs[j].k[:])
		w += copy(out[w:], recs[j].v[:])
		out[w] = 1
		w++
		j++
	}
	if w < size { // dead records replaced: a slab of the right size
		exact, m := allocSlab(w)
		copy(exact[:w], out[:w])
		if mapped {
			_ = unix.Munmap(out)
		}
		out, mapped = exact[:w], m
	}
	t.free()
	t.slab, t.mapped, t.dead = out, mapped, 0
}

// allocSlab maps n bytes of anonymous memory, or takes them from the heap
// when the kernel refuses.
func allocSlab(n int) (b []byte, mapped bool) {
	if n == 0 {
		return nil, false
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n), false
	}
	return b, true
}

// free returns the slab to the kernel; the table must not be used after
// unless it is rebuilt.
func (t *table) free() {
	if t.mapped && len(t.slab) > 0 {
		_ = unix.Munmap(t.slab)
	}
	t.slab, t.mapped = nil, false
}
