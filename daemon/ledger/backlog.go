package ledger

import (
	"net/netip"
	"time"

	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
)

// backlog holds the ledger writes the store refused (a full or failing
// state disk). The kernel map is the enforcement: a ban the backend took
// stays enforced and in the mirror while its write waits here, and
// Flush retries until the store takes it. Only the last operation per
// prefix is kept, so a retried write never brings back a ban lifted
// since, nor an older expiry.
//
// It is guarded by Core.mu; it changes under the stripes of the prefixes
// involved, and Flush runs under the exclusive gate.
type backlog struct {
	puts  map[store.Key]bans.Ban
	dels  map[store.Key]netip.Prefix
	hist  []store.Event
	since time.Time // first failure of the current outage
	err   error     // the last store error
	// lastLog rate-limits the "still failing" error line.
	lastLog time.Time
}

// maxBacklogHistory bounds the history events kept while the store
// fails; past it the oldest go (they only lengthen bantime.increment).
const maxBacklogHistory = 1 << 16

func (q *backlog) len() int { return len(q.puts) + len(q.dels) }

// put queues bans (and their history) the store did not take.
func (q *backlog) put(bs []bans.Ban, hist []store.Event, err error, now time.Time) {
	if q.puts == nil {
		q.puts = map[store.Key]bans.Ban{}
	}
	for _, b := range bs {
		k := store.KeyOf(b.Prefix)
		delete(q.dels, k)
		q.puts[k] = b
	}
	q.hist = append(q.hist, hist...)
	if n := len(q.hist) - maxBacklogHistory; n > 0 {
		q.hist = append(q.hist[:0], q.hist[n:]...)
	}
	q.failed(err, now)
}

// del queues deletions the store did not take.
func (q *backlog) del(ps []netip.Prefix, err error, now time.Time) {
	if q.dels == nil {
		q.dels = map[store.Key]netip.Prefix{}
	}
	for _, p := range ps {
		k := store.KeyOf(p)
		delete(q.puts, k)
		q.dels[k] = p
	}
	q.failed(err, now)
}

func (q *backlog) failed(err error, now time.Time) {
	if q.since.IsZero() {
		q.since = now
	}
	q.err = err
}

// written drops what the store has just taken for these prefixes: a
// queued older write must not overwrite it.
func (q *backlog) written(ps []netip.Prefix) {
	if q.len() == 0 {
		return
	}
	for _, p := range ps {
		k := store.KeyOf(p)
		delete(q.puts, k)
		delete(q.dels, k)
	}
}

// BacklogStatus is what status and the metrics show of the backlog.
type BacklogStatus struct {
	Pending int       // bans and unbans waiting for the store
	Since   time.Time // zero when nothing waits
	Err     string    // the last store error
}

// Backlog reports the writes waiting for the store.
func (c *Core) Backlog() BacklogStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := BacklogStatus{Pending: c.pending.len()}
	if st.Pending > 0 {
		st.Since = c.pending.since
		if c.pending.err != nil {
			st.Err = c.pending.err.Error()
		}
	}
	return st
}

// queueFailed records a refused commit, loudly.
func (c *Core) queueFailed(what string, n int, err error, queue func(now time.Time)) {
	now := c.Now()
	c.mu.Lock()
	queue(now)
	pending := c.pending.len()
	logNow := now.Sub(c.pending.lastLog) >= time.Minute
	if logNow {
		c.pending.lastLog = now
	}
	c.mu.Unlock()
	if c.Metrics != nil {
		c.Metrics.StoreWriteErrors.Inc()
		c.Metrics.StoreBacklog.Set(float64(pending))
	}
	if logNow {
		c.Log.Error("ban database write failed: enforcement is unchanged, the write is queued and retried; free space on the state disk",
			"what", what, "count", n, "pending", pending, "db", c.Store.Path(), "err", err)
	}
}

// FlushBacklog retries the queued writes; it returns how many are still
// waiting. Called every sweep tick while anything waits.
func (c *Core) FlushBacklog() int {
	c.mu.Lock()
	n := c.pending.len()
	c.mu.Unlock()
	if n == 0 {
		return 0
	}
	c.gate.Lock()
	defer c.gate.Unlock()
	c.mu.Lock()
	q := c.pending
	c.mu.Unlock()
	puts := make([]bans.Ban, 0, len(q.puts))
	for _, b := range q.puts {
		puts = append(puts, b)
	}
	dels := make([]netip.Prefix, 0, len(q.dels))
	for _, p := range q.dels {
		dels = append(dels, p)
	}
	err := c.Store.Commit(puts, q.hist)
	if err == nil {
		_, err = c.Store.DeleteBans(dels...)
	}
	now := c.Now()
	c.mu.Lock()
	if err != nil {
		c.pending.err = err
		logNow := now.Sub(c.pending.lastLog) >= time.Minute
		if logNow {
			c.pending.lastLog = now
		}
		since := c.pending.since
		c.mu.Unlock()
		if c.Metrics != nil {
			c.Metrics.StoreWriteErrors.Inc()
		}
		if logNow {
			c.Log.Error("ban database still refuses writes: bans stay enforced, but are not durable until it recovers",
				"pending", n, "failing_for", now.Sub(since).Round(time.Second), "db", c.Store.Path(), "err", err)
		}
		return n
	}
	since := c.pending.since
	c.pending = backlog{}
	c.mu.Unlock()
	if c.Metrics != nil {
		c.Metrics.StoreBacklog.Set(0)
	}
	c.Log.Warn("ban database writes recovered: queued bans and unbans are stored", "written", n, "failed_for", now.Sub(since).Round(time.Second))
	return 0
}
