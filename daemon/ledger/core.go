// Package ledger is the ban book: every ban and unban, whatever its
// source, is applied to the backend first, the store second (a store
// error never lifts enforcement: the write waits in a backlog), then the
// in-memory mirror, the ban log and every Observer. The daemon and the
// CLI's direct mode (no daemon running) both keep their bans through it.
package ledger

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/daemon/banlog"
	"github.com/xdpban/xdpban/daemon/metrics"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
)

// DefaultJail is the jail of a ban given on the command line.
const DefaultJail = "manual"

// Notifier receives ban and unban events (actions.Runner).
type Notifier interface {
	Notify(ev actions.Event)
}

// Core keeps one backend and the store in agreement. The daemon and the
// CLI's direct mode (no daemon running) both go through it, so a ban made
// either way is enforced, stored and logged the same way.
//
// Every change is applied to the backend first and to the store second,
// under a lock on the prefixes involved: a crash between the two leaves
// an entry in the kernel the store lacks, which Restore imports, so after
// any crash the two agree again and nothing acknowledged is lost.
type Core struct {
	Backend bans.Backend
	Store   *store.Store
	// OnLoaded, when set, is called once by Restore when the store's
	// bans are in the mirror, before the kernel is compared with them.
	OnLoaded func()
	BanLog   *banlog.Log
	Metrics  *metrics.Metrics // may be nil
	// Observers hear of every ban and unban once enforced and stored.
	Observers []Observer
	Log       *slog.Logger
	Now       func() time.Time

	// gate is held shared by per-prefix operations and exclusively by
	// those that touch every ban (sweep, flush, restore).
	gate    sync.RWMutex
	stripes [256]sync.Mutex
	seed    maphash.Seed

	mu sync.Mutex
	// active mirrors the store's bans (mirror.go packs it).
	active  *table
	jails   []string
	scopes  []bans.Scope // what the bans of jails[i] drop
	origins []string     // the fleet node that decided them ("" here)
	jailIdx map[string]uint32
	// nextExpiry is the earliest expiry in active (unix ns; MaxInt64
	// when nothing expires): sweeps before it have nothing to do, so a
	// million long bans cost no CPU between their expiries.
	nextExpiry int64
	// shapes counts active by family (0 v4, 1 v6) and prefix length.
	shapes [2][129]int
	// lastFull is when Sweep last asked the backend for every expired
	// entry, the ones the mirror does not know included.
	lastFull time.Time
	totalBan map[string]int // per jail, since start
	// pending are the store writes that failed (backlog.go).
	pending backlog
	// reserved is room in each backend table held for bans being added
	// (room.go); fullWarned the tables warned about as nearly full.
	reserved   map[string]int
	fullWarned map[string]bool
}

// fullSweepEvery bounds how long an expired entry the mirror does not
// know (left in the kernel behind the daemon's back) may hold a slot.
// Such an entry drops nothing: the XDP program ignores expired entries.
const fullSweepEvery = 10 * time.Minute

// NewCore returns a Core; call Restore before using it.
func NewCore(b bans.Backend, st *store.Store, bl *banlog.Log, log *slog.Logger) *Core {
	if log == nil {
		log = slog.Default()
	}
	c := &Core{Backend: b, Store: st, BanLog: bl, Log: log, Now: time.Now,
		seed: maphash.MakeSeed(), totalBan: map[string]int{}}
	c.resetMirror()
	return c
}

// lock takes the stripes of ps in ascending order (no deadlock between
// two batches) and returns the unlock.
func (c *Core) lock(ps []netip.Prefix) func() {
	c.gate.RLock()
	var idx []int
	seen := map[int]bool{}
	for _, p := range ps {
		i := int(maphash.Comparable(c.seed, p) % uint64(len(c.stripes)))
		if !seen[i] {
			seen[i] = true
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	for _, i := range idx {
		c.stripes[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			c.stripes[i].Unlock()
		}
		c.gate.RUnlock()
	}
}

// Ban enforces and stores bans; when it returns nil they are in the
// kernel, and on disk or (the store refusing writes) queued for it
// (backlog.go): a store error never lifts enforcement. Jail decisions
// carry their address for the notification (zero for CLI bans).
func (c *Core) Ban(ctx context.Context, bs []bans.Ban) error {
	return c.enforce(ctx, bs, true, BanCause{Reason: "manual"})
}

// BanFor is Ban with what the observers are told of the batch.
func (c *Core) BanFor(ctx context.Context, bs []bans.Ban, cause BanCause) error {
	return c.enforce(ctx, bs, true, cause)
}

// Import enforces and records an imported list (a blocklist, a
// migration): the prefixes ps, sorted in key order without duplicates,
// each banned as tmpl says, in parts of part bans: while one part
// is written to the store, the next goes into the kernel. Its bans are not
// offences, so no jail's ban history counts them (and a million imported
// bans do not double the database). The whole list's room is reserved
// first; the ledger is Import's alone meanwhile (a million bans take about
// a second; other changes wait, reads do not), since the parts of a sorted
// list each span every stripe. On a backend error the parts already in
// the kernel are kept and recorded: Import returns how many bans that is.
func (c *Core) Import(ctx context.Context, tmpl bans.Ban, ps []netip.Prefix, part int) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	c.gate.Lock()
	defer c.gate.Unlock()
	release, fresh, err := c.reserve(ps, true)
	if err != nil {
		return 0, err
	}
	defer release()
	add := c.Backend.Add
	if na, ok := bans.As[bans.NewAdder](c.Backend); ok && fresh {
		add = na.AddNew
	}
	type chunk struct {
		bs    []bans.Ban
		ps    []netip.Prefix
		start time.Time
	}
	// One part ahead: the kernel takes part i+1 while part i is stored.
	// Each part's bans are made as it goes, in one of a few buffers that
	// go round: a million of them at once were 144 MB for the collector
	// to scan, over and over, and a new buffer a part half of that.
	enforced := make(chan chunk, 1)
	free := make(chan []bans.Ban, importBuffers)
	for range importBuffers {
		free <- nil
	}
	var addErr error
	go func() {
		defer close(enforced)
		for lo := 0; lo < len(ps); lo += part {
			k := chunk{ps: ps[lo:min(lo+part, len(ps))], start: time.Now()}
			if k.bs = <-free; cap(k.bs) < len(k.ps) {
				k.bs = make([]bans.Ban, len(k.ps))
			}
			k.bs = k.bs[:len(k.ps)]
			for i, p := range k.ps {
				k.bs[i] = tmpl
				k.bs[i].Prefix = p
			}
			if err := add(ctx, k.bs...); err != nil {
				addErr = fmt.Errorf("enforce %d bans: %w", len(k.bs), err)
				return
			}
			enforced <- k
		}
	}()
	// And one more behind: the mirror, the ban log and the observers
	// take part i while the store takes part i+1.
	type stored struct {
		chunk
		ok  bool
		now time.Time
	}
	written := make(chan stored, 1)
	booked := make(chan int)
	go func() {
		n := 0
		for w := range written {
			c.book(w.bs, w.ps, fresh, w.ok, BanCause{Reason: "import"}, w.now)
			n += len(w.bs)
			free <- w.bs
		}
		booked <- n
	}()
	for k := range enforced {
		ok, now := c.persist(k.bs, false, k.start)
		written <- stored{k, ok, now}
	}
	close(written)
	return <-booked, addErr
}

func prefixesOf(bs []bans.Ban) []netip.Prefix {
	ps := make([]netip.Prefix, len(bs))
	for i, b := range bs {
		ps[i] = b.Prefix
	}
	return ps
}

func (c *Core) enforce(ctx context.Context, bs []bans.Ban, history bool, cause BanCause) error {
	if len(bs) == 0 {
		return nil
	}
	start := time.Now()
	// The backend keeps the last of duplicates; so does everything else.
	ps := prefixesOf(bs)
	unlock := c.lock(ps)
	defer unlock()
	// All or nothing: a table that cannot take every new ban takes none
	// (a full LRU map would evict older bans to make room). Whether
	// every prefix is new matters to a backend that adds new bans faster
	// and to a batch large enough for the mirror's one-merge insert; the
	// room check's own lookups answer it.
	na, hasNA := bans.As[bans.NewAdder](c.Backend)
	release, fresh, err := c.reserve(ps, hasNA || len(bs) >= bulkMirror)
	if err != nil {
		return err
	}
	defer release()
	add := c.Backend.Add
	if hasNA && fresh {
		add = na.AddNew
	}
	if err := add(ctx, bs...); err != nil {
		return fmt.Errorf("enforce %d bans: %w", len(bs), err)
	}
	c.record(bs, ps, fresh, history, cause, start)
	return nil
}

// record books bans the backend now enforces: the store (or its backlog),
// then the mirror, the counters, the ban log and the observers (book).
// fresh says none of them was banned before; the caller holds their
// stripes or the gate.
func (c *Core) record(bs []bans.Ban, ps []netip.Prefix, fresh, history bool, cause BanCause, start time.Time) {
	stored, now := c.persist(bs, history, start)
	c.book(bs, ps, fresh, stored, cause, now)
}

// persist writes bans the backend enforces since start to the store, with
// their history; when it fails they are queued for it (backlog.go) and
// stored is false.
func (c *Core) persist(bs []bans.Ban, history bool, start time.Time) (stored bool, now time.Time) {
	if c.Metrics != nil {
		c.Metrics.BanLatency.Observe(time.Since(start).Seconds())
	}
	now = c.Now()
	// History is what bantime.increment counts, per jail; a ban in the
	// manual jail (the CLI's, an import) is never incremented, and a
	// million imported addresses would double the database for nothing.
	var hist []store.Event
	for _, b := range bs {
		if history && b.Jail != DefaultJail {
			hist = append(hist, store.Event{Prefix: b.Prefix, Jail: b.Jail, At: now, BanTime: banTime(b, now)})
		}
	}
	stored = true
	if err := c.Store.Commit(bs, hist); err != nil {
		// The kernel enforces them: keep them there and in the mirror
		// (taking them out lifted bans, an earlier one on the same
		// prefix included), and write them when the store recovers.
		stored = false
		c.queueFailed("ban", len(bs), err, func(now time.Time) { c.pending.put(bs, hist, err, now) })
	}
	return stored, now
}

// book puts bans now enforced and stored (or, !stored, queued for the
// store) in the mirror, the counters, the ban log and before the
// observers.
func (c *Core) book(bs []bans.Ban, ps []netip.Prefix, fresh, stored bool, cause BanCause, now time.Time) {
	c.mu.Lock()
	if stored {
		c.pending.written(ps)
	}
	// Counted per jail, not per ban: a million label lookups were a
	// tenth of an import.
	active, total := map[string]int{}, map[string]int{}
	if fresh && len(bs) >= bulkMirror {
		before := c.active.len()
		c.putNew(bs)
		for _, b := range bs {
			total[b.Jail]++
		}
		if c.active.len()-before == len(bs) {
			maps.Copy(active, total)
		} else { // a prefix given twice is one active ban, the last one's
			last := map[netip.Prefix]string{}
			for _, b := range bs {
				last[b.Prefix] = b.Jail
			}
			for _, j := range last {
				active[j]++
			}
		}
	} else {
		for _, b := range bs {
			if old, ok := c.put(b); ok {
				active[old.Jail]--
			}
			active[b.Jail]++
			total[b.Jail]++
		}
	}
	for j, n := range total {
		c.totalBan[j] += n
		if c.Metrics != nil {
			c.Metrics.BansTotal.WithLabelValues(j).Add(float64(n))
		}
	}
	if c.Metrics != nil {
		for j, n := range active {
			c.Metrics.BansActive.WithLabelValues(j).Add(float64(n))
		}
	}
	c.mu.Unlock()
	c.warnFull()
	c.BanLog.BanBatch(bs)
	c.banned(bs, cause, now)
}

// importBuffers is how many parts of an import are on their way at once:
// being made and enforced, waiting, stored, waiting, booked.
const importBuffers = 5

// restoreRun is how many stored bans go into the mirror at once at start.
const restoreRun = 1 << 16

// bulkMirror is the batch from which new bans go into the mirror with one
// merge (Core.putNew) rather than one insert each.
const bulkMirror = 4096

// allNew reports whether none of ps is banned; the caller holds their
// stripes, so the answer stays true until it lets go.
func (c *Core) allNew(ps []netip.Prefix) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		if _, ok := c.active.get(store.KeyOf(p)); ok {
			return false
		}
	}
	return true
}

func banTime(b bans.Ban, now time.Time) time.Duration {
	if b.Permanent() {
		return -1
	}
	return b.Expires.Sub(now)
}

// Unban lifts the bans on ps. With jail set, only bans of that jail are
// lifted; a prefix banned by another jail is reported, not touched. It
// returns bans.ErrNotBanned when nothing named was banned.
func (c *Core) Unban(ctx context.Context, ps []netip.Prefix, jail string) (int, error) {
	return c.UnbanFrom(ctx, ps, jail, "manual")
}

// UnbanFrom is Unban for another reason than an operator's (why: "remote"
// for another host's), which the observers are told.
func (c *Core) UnbanFrom(ctx context.Context, ps []netip.Prefix, jail, why string) (int, error) {
	unlock := c.lock(ps)
	defer unlock()
	var del []netip.Prefix
	var removed []bans.Ban
	var other []string
	c.mu.Lock()
	for _, p := range ps {
		b, ok := c.lookup(p)
		if !ok {
			// Not in the mirror: perhaps only in the kernel (a ban the
			// store never saw). Delete anyway; the backend counts.
			del = append(del, p)
			removed = append(removed, bans.Ban{Prefix: p, Jail: jail})
			continue
		}
		if jail != "" && b.Jail != jail {
			other = append(other, fmt.Sprintf("%s (jail %s)", p, b.Jail))
			continue
		}
		del = append(del, p)
		removed = append(removed, b)
	}
	c.mu.Unlock()
	n, err := c.Backend.Delete(ctx, del...)
	if err != nil {
		return 0, fmt.Errorf("lift %d bans: %w", len(del), err)
	}
	sn, err := c.Store.DeleteBans(del...)
	if err != nil {
		// Lifted in the kernel; the store forgets them when it can.
		c.queueFailed("unban", len(del), err, func(now time.Time) { c.pending.del(del, err, now) })
	} else {
		c.mu.Lock()
		c.pending.written(del)
		c.mu.Unlock()
	}
	n = max(n, sn)
	if n == 0 {
		if len(other) > 0 {
			return 0, fmt.Errorf("%s banned by another jail: unban without --jail, or name that jail: %w", joinMax(other, 5), bans.ErrNotBanned)
		}
		return 0, fmt.Errorf("%s: %w: see 'xdpban list' for the bans in force", joinMax(prefixStrings(ps), 5), bans.ErrNotBanned)
	}
	c.forget(removed, why)
	return n, nil
}

// forget drops bans from the mirror and logs/notifies their end. A ban
// the mirror did not know (only in the kernel) is logged if it was there.
func (c *Core) forget(bs []bans.Ban, why string) {
	now := c.Now()
	c.mu.Lock()
	var gone []bans.Ban
	for _, b := range bs {
		old, ok := c.lookup(b.Prefix)
		if !ok {
			continue
		}
		c.drop(store.KeyOf(b.Prefix))
		if c.Metrics != nil {
			c.Metrics.BansActive.WithLabelValues(old.Jail).Dec()
			c.Metrics.UnbansTotal.WithLabelValues(old.Jail, why).Inc()
		}
		gone = append(gone, old)
	}
	c.mu.Unlock()
	for _, b := range gone {
		c.BanLog.Unban(b.Jail, b.Prefix, why)
	}
	c.unbanned(gone, why, now)
}

// UnbanAll lifts every ban, or every ban of jail.
func (c *Core) UnbanAll(ctx context.Context, jail string) (int, error) {
	c.gate.Lock()
	defer c.gate.Unlock()
	c.mu.Lock()
	all := make([]bans.Ban, 0, c.active.len())
	c.active.each(func(k mkey, v mval) bool {
		if b := c.ban(k, v); jail == "" || b.Jail == jail {
			all = append(all, b)
		}
		return true
	})
	c.mu.Unlock()
	if jail == "" {
		n, err := c.Backend.Flush(ctx)
		if err != nil {
			return 0, fmt.Errorf("flush bans: %w", err)
		}
		if _, err := c.Store.DeleteAllBans(); err != nil {
			ps := make([]netip.Prefix, len(all))
			for i, b := range all {
				ps[i] = b.Prefix
			}
			c.queueFailed("unban", len(ps), err, func(now time.Time) { c.pending.del(ps, err, now) })
		} else {
			c.mu.Lock()
			c.pending = backlog{}
			c.mu.Unlock()
		}
		c.forget(all, "manual")
		return max(n, len(all)), nil
	}
	ps := make([]netip.Prefix, len(all))
	for i, b := range all {
		ps[i] = b.Prefix
	}
	if _, err := c.Backend.Delete(ctx, ps...); err != nil {
		return 0, fmt.Errorf("lift bans of jail %s: %w", jail, err)
	}
	if _, err := c.Store.DeleteBans(ps...); err != nil {
		c.queueFailed("unban", len(ps), err, func(now time.Time) { c.pending.del(ps, err, now) })
	} else {
		c.mu.Lock()
		c.pending.written(ps)
		c.mu.Unlock()
	}
	c.forget(all, "manual")
	return len(all), nil
}

// List returns the unexpired bans with their counters, sorted.
func (c *Core) List(ctx context.Context) ([]bans.Ban, error) {
	bs, err := c.Backend.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	now := c.Now()
	out := bs[:0]
	// The backends keep no origin: the mirror says which node decided,
	// looked up only when it holds bans from other nodes (a million
	// lookups would hold the mirror's lock meanwhile).
	c.mu.Lock()
	remote := slices.ContainsFunc(c.origins, func(o string) bool { return o != "" })
	for _, b := range bs {
		if !b.Expired(now) {
			if remote {
				if m, ok := c.lookup(b.Prefix); ok {
					b.Origin = m.Origin
				}
			}
			out = append(out, b)
		}
	}
	c.mu.Unlock()
	store.SortBans(out)
	return out, nil
}

// Sweep removes the bans that have ended from the backend and the store,
// logging each unban. It returns how many ended.
//
// It works from the mirror: nothing to do before the earliest expiry, and
// then only the ended prefixes are deleted, so its cost follows the bans
// that end, not the bans held. Every fullSweepEvery the backend is also
// asked for whatever it holds expired, for entries the mirror lacks.
func (c *Core) Sweep(ctx context.Context) (int, error) {
	c.gate.Lock()
	defer c.gate.Unlock()
	now := c.Now()
	full := now.Sub(c.lastFull) >= fullSweepEvery
	c.mu.Lock()
	due := now.UnixNano() >= c.nextExpiry
	c.mu.Unlock()
	if !due && !full {
		return 0, nil
	}
	seen := map[netip.Prefix]bool{}
	var ps []netip.Prefix
	if full {
		expired, err := c.Backend.Expire(ctx, now)
		if err != nil {
			return 0, fmt.Errorf("expire bans: %w", err)
		}
		c.lastFull = now
		for _, b := range expired {
			seen[b.Prefix] = true
			ps = append(ps, b.Prefix)
		}
	}
	// The mirror's ended bans, including those the backend no longer
	// held (evicted, or removed behind our back): they end in the store
	// at their time too.
	var ended []bans.Ban
	var del []netip.Prefix
	c.mu.Lock()
	next := int64(math.MaxInt64)
	ns := now.UnixNano()
	c.active.each(func(k mkey, v mval) bool {
		if v.expired(ns) {
			b := c.ban(k, v)
			ended = append(ended, b)
			if !seen[b.Prefix] {
				del = append(del, b.Prefix)
			}
		} else if e := v.expires(); e != 0 && e < next {
			next = e
		}
		return true
	})
	c.nextExpiry = next
	c.mu.Unlock()
	ps = append(ps, del...)
	if len(ps) == 0 {
		return 0, nil
	}
	if len(del) > 0 {
		if _, err := c.Backend.Delete(ctx, del...); err != nil {
			// Not done: the next tick tries again.
			c.mu.Lock()
			c.nextExpiry = ns
			c.mu.Unlock()
			return 0, fmt.Errorf("lift %d ended bans: %w", len(ps), err)
		}
	}
	if _, err := c.Store.DeleteBans(ps...); err != nil {
		c.queueFailed("expiry", len(ps), err, func(now time.Time) { c.pending.del(ps, err, now) })
	} else {
		c.mu.Lock()
		c.pending.written(ps)
		c.mu.Unlock()
	}
	c.forget(ended, "expired")
	return len(ps), nil
}

// RestoreReport says what Restore did.
type RestoreReport struct {
	Restored int // stored, unexpired bans put (back) into the backend
	Kept     int // already in the backend as stored
	Imported int // in the backend only, added to the store
	Dropped  int // stored but expired while the daemon was down
}

// Restore makes the backend and the store agree at start, before any log
// is read: every unexpired stored ban goes into the backend with its
// remaining time; bans only the backend holds (added by a CLI with no
// daemon, or left by a crash, or surviving a lost database) are imported
// into the store; stored bans that ended while nothing ran are dropped.
func (c *Core) Restore(ctx context.Context) (RestoreReport, error) {
	c.gate.Lock()
	defer c.gate.Unlock()
	var r RestoreReport
	now := c.Now()
	lim := c.limiter()
	perTable := map[string]int{}
	perJail := map[string]int{}
	count := func(b bans.Ban) {
		if lim != nil {
			perTable[lim.TableOf(b.Prefix)]++
		}
		perJail[b.Jail]++
	}
	// A million bans are streamed, never listed: the store straight into
	// the mirror (31 bytes a ban), the kernel compared entry by entry
	// against it. Lists of a million bans.Ban, with the maps to match
	// them, took the daemon to 1.5 GB at start.
	c.mu.Lock()
	c.resetMirror()
	c.mu.Unlock()
	var drop []netip.Prefix
	active := 0
	// The store gives its bans in key order, each once: they go into
	// the mirror in sorted runs appended to the slab (putNew), not one
	// map insert each and the slab rebuilt at every eighth more.
	run := make([]bans.Ban, 0, restoreRun)
	flush := func() {
		c.mu.Lock()
		c.putNew(run)
		c.mu.Unlock()
		run = run[:0]
	}
	err := c.Store.EachBan(func(b bans.Ban) error {
		if b.Expired(now) {
			drop = append(drop, b.Prefix)
			return nil
		}
		active++
		count(b)
		if run = append(run, b); len(run) == restoreRun {
			flush()
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	flush()
	run = nil
	if c.OnLoaded != nil {
		// The mirror holds every stored ban: reads may be answered
		// while the kernel is compared with it (changes wait for the
		// gate this holds).
		c.OnLoaded()
	}
	ended := make(map[netip.Prefix]bool, len(drop))
	for _, p := range drop {
		ended[p] = true
	}
	h := c.holder()
	var inKernel map[netip.Prefix]bool // only for a backend that cannot answer Holds
	if h == nil {
		inKernel = map[netip.Prefix]bool{}
	}
	var changed, imp []bans.Ban
	seen := 0
	err = bans.Walk(ctx, c.Backend, func(k bans.Ban) error {
		if inKernel != nil {
			inKernel[k.Prefix] = true
		}
		c.mu.Lock()
		cur, ok := c.lookup(k.Prefix)
		c.mu.Unlock()
		if ok {
			seen++
			if k.Jail == cur.Jail && sameExpiry(k.Expires, cur.Expires) {
				r.Kept++
			} else {
				changed = append(changed, cur) // the store's copy wins
			}
			return nil
		}
		if k.Expired(now) || ended[k.Prefix] {
			// Ended, or the store says it ended: a stale copy.
			return nil
		}
		k.Packets, k.Bytes = 0, 0
		imp = append(imp, k)
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("read bans the backend holds: %w", err)
	}
	for _, k := range imp {
		count(k)
	}
	if err := c.fitsAtStart(perTable); err != nil {
		return r, err
	}
	if len(changed) > 0 {
		if err := c.Backend.Add(ctx, changed...); err != nil {
			return r, fmt.Errorf("restore %d stored bans: %w", len(changed), err)
		}
		r.Restored += len(changed)
	}
	if seen < active {
		// Stored bans the kernel lacks (all of them after a reboot or a
		// detach): a second pass over the store adds them in chunks.
		n, err := c.restoreMissing(ctx, now, seen == 0, h, inKernel)
		r.Restored += n
		if err != nil {
			return r, err
		}
	}
	if len(drop) > 0 {
		// Expired stored bans may still sit in the kernel: lift them.
		if _, err := c.Backend.Delete(ctx, drop...); err != nil {
			return r, fmt.Errorf("lift %d bans that ended while stopped: %w", len(drop), err)
		}
		if _, err := c.Store.DeleteBans(drop...); err != nil {
			c.queueFailed("drop expired", len(drop), err, func(now time.Time) { c.pending.del(drop, err, now) })
		}
		r.Dropped = len(drop)
	}
	if len(imp) > 0 {
		if err := c.Store.PutBans(imp...); err != nil {
			// A full state disk must not keep the daemon from starting:
			// the kernel enforces these, and the store gets them later.
			c.queueFailed("import", len(imp), err, func(now time.Time) { c.pending.put(imp, nil, err, now) })
		}
		r.Imported = len(imp)
	}
	c.mu.Lock()
	for _, b := range imp {
		c.put(b)
	}
	if c.Metrics != nil {
		c.Metrics.BansActive.Reset()
		for j, n := range perJail {
			c.Metrics.BansActive.WithLabelValues(j).Add(float64(n))
		}
	}
	c.mu.Unlock()
	c.Log.Info("bans restored", "restored", r.Restored, "kept", r.Kept, "imported", r.Imported, "dropped_expired", r.Dropped)
	c.ReleaseStoreCache()
	return r, nil
}

// ReleaseStoreCache drops the pages a bulk pass over the store touched
// from the daemon's RSS (Store.ReleaseCache); failing only costs memory.
func (c *Core) ReleaseStoreCache() {
	if err := c.Store.ReleaseCache(); err != nil {
		c.Log.Debug("release the ban database's pages", "err", err)
	}
}

// restoreChunk is how many missing bans a restore adds at once.
const restoreChunk = 1 << 16

// restoreMissing adds the unexpired stored bans the backend does not
// hold: all of them when all is set, else those h (or inKernel, for a
// backend without Holds) says are missing.
func (c *Core) restoreMissing(ctx context.Context, now time.Time, all bool, h bans.Holder, inKernel map[netip.Prefix]bool) (int, error) {
	var chunk []bans.Ban
	n := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		add := c.Backend.Add
		if na, ok := bans.As[bans.NewAdder](c.Backend); ok && all {
			add = na.AddNew
		}
		if err := add(ctx, chunk...); err != nil {
			return fmt.Errorf("restore %d stored bans: %w", len(chunk), err)
		}
		n += len(chunk)
		chunk = chunk[:0]
		return nil
	}
	err := c.Store.EachBan(func(b bans.Ban) error {
		if b.Expired(now) {
			return nil
		}
		if !all {
			switch {
			case inKernel != nil:
				if inKernel[b.Prefix] {
					return nil
				}
			default:
				held, err := h.Holds(b.Prefix)
				if err != nil {
					return fmt.Errorf("check the kernel for %s: %w", b.Prefix, err)
				}
				if held {
					return nil
				}
			}
		}
		chunk = append(chunk, b)
		if len(chunk) == restoreChunk {
			return flush()
		}
		return ctx.Err()
	})
	if err != nil {
		return n, err
	}
	return n, flush()
}

// sameExpiry compares expiry times at the backend's resolution: the XDP
// maps keep boot-clock nanoseconds converted back and forth, so allow a
// little drift.
func sameExpiry(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return d < time.Second && d > -time.Second
}

// Active returns the bans the daemon believes active (the store's view),
// per jail when jail is set.
func (c *Core) Active(jail string) []bans.Ban {
	c.mu.Lock()
	var out []bans.Ban
	c.active.each(func(k mkey, v mval) bool {
		if jail == "" || c.jails[v.jail()] == jail {
			out = append(out, c.ban(k, v))
		}
		return true
	})
	c.mu.Unlock()
	store.SortBans(out)
	return out
}

// Counts is the number of active bans per jail, without listing them
// (status asks for it; the list can be a million long).
func (c *Core) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	per := make([]int, len(c.jails))
	c.active.each(func(_ mkey, v mval) bool {
		per[v.jail()]++
		return true
	})
	out := map[string]int{}
	for i, n := range per {
		if n > 0 {
			out[c.jails[i]] += n
		}
	}
	return out
}

// TableFills is the number of active bans per backend table, tableOf
// naming the table of a prefix (bans.TableFiller). It costs at most one
// tableOf call per family and prefix length in use, whatever the number
// of bans.
func (c *Core) TableFills(tableOf func(netip.Prefix) string) map[string]int {
	c.mu.Lock()
	shapes := c.shapes
	c.mu.Unlock()
	out := map[string]int{}
	for f, byBits := range shapes {
		a := netip.IPv4Unspecified()
		if f == 1 {
			a = netip.IPv6Unspecified()
		}
		for bits, n := range byBits {
			if n == 0 {
				continue
			}
			if name := tableOf(netip.PrefixFrom(a, bits)); name != "" {
				out[name] += n
			}
		}
	}
	return out
}

// Lookup returns the active ban on exactly p.
func (c *Core) Lookup(p netip.Prefix) (bans.Ban, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookup(p)
}

// TotalBanned is the number of bans jail made since the daemon started.
func (c *Core) TotalBanned(jail string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.totalBan[jail]
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func joinMax(ss []string, n int) string {
	if len(ss) <= n {
		return fmt.Sprint(join(ss))
	}
	return fmt.Sprintf("%s and %d more", join(ss[:n]), len(ss)-n)
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// Exclusive runs fn with every per-prefix operation and sweep held off
// (a detach: nothing may ban or sweep while the backend goes).
func (c *Core) Exclusive(fn func() error) error {
	c.gate.Lock()
	defer c.gate.Unlock()
	return fn()
}
