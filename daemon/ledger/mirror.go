package ledger

import (
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
)

// The mirror of active bans is the daemon's largest structure (a bulk
// import puts a million bans in it), so it is kept flat: keys and values
// are byte arrays without pointers, which the garbage collector never
// scans, packed into a table (table.go) at about 31 bytes a ban. A map of
// netip.Prefix to bans.Ban costs five to eight times that, and its
// pointers are scanned on every collection.

// mkey is a prefix in the store's key layout (store.Key).
type mkey = store.Key

// mval is a ban's expiry (unix ns, 0 when permanent) and its jail's,
// scope's and origin's index in Core.jails, Core.scopes, Core.origins.
type mval [12]byte

func (v mval) expires() int64 { return int64(binary.LittleEndian.Uint64(v[:8])) }
func (v mval) jail() uint32   { return binary.LittleEndian.Uint32(v[8:]) }

// expired is bans.Ban.Expired on the packed form.
func (v mval) expired(now int64) bool {
	e := v.expires()
	return e != 0 && now >= e
}

// val packs b; the caller holds c.mu.
func (c *Core) val(b bans.Ban) mval {
	var v mval
	if !b.Expires.IsZero() {
		binary.LittleEndian.PutUint64(v[:8], uint64(b.Expires.UnixNano()))
	}
	// The index names a jail and a scope: a jail's bans share one scope,
	// so the pairs are few, and the mirror says what a ban drops without
	// growing by a byte.
	// So are the fleet nodes a host hears from.
	label := b.Jail
	if !b.Scope.All() {
		label += "\x00" + b.Scope.String()
	}
	if b.Origin != "" {
		label += "\x01" + b.Origin
	}
	id, ok := c.jailIdx[label]
	if !ok {
		id = uint32(len(c.jails))
		c.jails = append(c.jails, b.Jail)
		c.scopes = append(c.scopes, b.Scope)
		c.origins = append(c.origins, b.Origin)
		c.jailIdx[label] = id
	}
	binary.LittleEndian.PutUint32(v[8:], id)
	return v
}

// ban unpacks an entry; the caller holds c.mu.
func (c *Core) ban(k mkey, v mval) bans.Ban {
	b := bans.Ban{Prefix: k.Prefix(), Jail: c.jails[v.jail()], Scope: c.scopes[v.jail()], Origin: c.origins[v.jail()]}
	if e := v.expires(); e != 0 {
		b.Expires = time.Unix(0, e)
	}
	return b
}

// put records b in the mirror and returns the ban it replaced; the
// caller holds c.mu.
func (c *Core) put(b bans.Ban) (old bans.Ban, replaced bool) {
	k := store.KeyOf(b.Prefix)
	if ov, ok := c.active.get(k); ok {
		old, replaced = c.ban(k, ov), true
	}
	v := c.val(b)
	c.active.put(k, v)
	if !replaced {
		c.shape(k, 1)
	}
	if e := v.expires(); e != 0 && e < c.nextExpiry {
		c.nextExpiry = e
	}
	return old, replaced
}

// putNew records bs, none of which is in the mirror (the caller checked
// under their stripes), in one merge (table.insertNew); the caller holds
// c.mu.
func (c *Core) putNew(bs []bans.Ban) {
	recs := make([]mrec, len(bs))
	for i, b := range bs {
		recs[i] = mrec{store.KeyOf(b.Prefix), c.val(b)}
	}
	if !slices.IsSortedFunc(recs, cmpRec) { // the store's and an import's are
		slices.SortStableFunc(recs, cmpRec)
	}
	for i, r := range recs {
		if i+1 < len(recs) && recs[i+1].k == r.k {
			continue // the last of duplicates is the one kept
		}
		c.shape(r.k, 1)
		if e := r.v.expires(); e != 0 && e < c.nextExpiry {
			c.nextExpiry = e
		}
	}
	c.active.insertNew(recs)
}

// drop removes k from the mirror; the caller holds c.mu.
func (c *Core) drop(k mkey) {
	if _, ok := c.active.get(k); ok {
		c.active.del(k)
		c.shape(k, -1)
	}
}

// shape counts the mirror's bans by family and prefix length, which is
// all a backend needs to say which table holds them (TableFills): status
// then reads table fill without walking a million entries, in the
// mirror or in the kernel. The caller holds c.mu.
func (c *Core) shape(k mkey, d int) {
	f := 0
	if k[0] == 6 {
		f = 1
	}
	c.shapes[f][min(int(k[len(k)-1]), 128)] += d
}

// lookup is the mirror's ban on exactly p; the caller holds c.mu.
func (c *Core) lookup(p netip.Prefix) (bans.Ban, bool) {
	k := store.KeyOf(p)
	v, ok := c.active.get(k)
	if !ok {
		return bans.Ban{}, false
	}
	return c.ban(k, v), true
}

// resetMirror empties the mirror; the caller holds c.mu.
func (c *Core) resetMirror() {
	if c.active != nil {
		c.active.free()
	}
	c.active = newTable()
	c.shapes = [2][129]int{}
	c.jails = c.jails[:0]
	c.scopes = c.scopes[:0]
	c.origins = c.origins[:0]
	c.jailIdx = map[string]uint32{}
	c.nextExpiry = math.MaxInt64
}
