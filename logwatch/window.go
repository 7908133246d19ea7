package logwatch

import (
	"net/netip"
	"sync"
	"time"

	"github.com/xdpban/xdpban/internal/config"
)

// DefaultMaxTracked bounds how many addresses one jail counts failures
// for (the jail's maxtracked). A distributed attack from more addresses
// than this evicts the least recently failing ones instead of growing
// memory without bound.
const DefaultMaxTracked = config.DefaultMaxTracked

// maxKeptLine caps each remembered matched line (for notifications).
const maxKeptLine = 1024

// maxLineBytes bounds the matched lines one window keeps in all: an
// attacker's lines are as long as it likes (up to maxKeptLine each, times
// maxretry), so the entry bound alone would let 100,000 of them hold
// 500 MB. Past it the least recently failing addresses are evicted too.
var maxLineBytes = 16 << 20 // a variable for the benchmark's peer

// Window counts failures per address in a sliding findtime window and
// says when one crosses maxretry. It is keyed by the banned prefix (an
// IPv6 attacker rotating inside its /64 is one key) and bounded by an LRU.
// Safe for concurrent use.
//
// Entries live in one slice, linked by index, and the map holds indices
// under a packed key: no pointer per address for the collector, and an
// address failing once (what a distributed attack is made of) costs one
// 48-byte slot and its map entry, some 90 bytes; as pointers to a struct
// of slices it was 200.
type Window struct {
	mu         sync.Mutex
	maxRetry   int
	findTime   time.Duration
	maxTracked int
	m          map[wkey]int32
	ents       []wentry
	// head is the most recently failing entry, tail the least; free
	// chains unused slots through next. -1 ends each.
	head, tail, free int32
	evicted          uint64
	lineBytes        int // sum of the kept lines' lengths
	maxLineBytes     int
	// noLines: no line is kept (KeepLines).
	noLines bool
	removed int // entries removed since the map was last rebuilt
}

// wkey is a prefix packed: its address as 16 bytes, then its length
// (IPv4 lengths marked with the top bit, as 192.0.2.1/32 and
// ::ffff:192.0.2.1/128 differ).
type wkey [17]byte

func keyOf(p netip.Prefix) wkey {
	var k wkey
	a := p.Addr().As16()
	copy(k[:16], a[:])
	k[16] = byte(p.Bits())
	if p.Addr().Is4() {
		k[16] |= 0x80
	}
	return k
}

// wentry is one address's failures: one in t0 while it has one and no
// line is kept, else all of them, with their lines, in more.
type wentry struct {
	key        wkey
	prev, next int32
	t0         int64 // unix nanoseconds
	more       *wmore
}

type wmore struct {
	times []int64 // at most maxRetry, oldest first
	lines []string
}

// count is how many failures e holds.
func (e *wentry) count() int {
	if e.more != nil {
		return len(e.more.times)
	}
	return 1
}

// newest is e's latest failure.
func (e *wentry) newest() int64 {
	if e.more == nil {
		return e.t0
	}
	n := int64(0)
	for _, t := range e.more.times {
		n = max(n, t)
	}
	return n
}

// NewWindow returns a window. maxRetry < 1 is treated as 1; maxTracked
// <= 0 means DefaultMaxTracked.
func NewWindow(maxRetry int, findTime time.Duration, maxTracked int) *Window {
	w := &Window{m: make(map[wkey]int32), maxLineBytes: maxLineBytes, head: -1, tail: -1, free: -1}
	w.configure(maxRetry, findTime, maxTracked)
	return w
}

func (w *Window) configure(maxRetry int, findTime time.Duration, maxTracked int) {
	if maxRetry < 1 {
		maxRetry = 1
	}
	if maxTracked <= 0 {
		maxTracked = DefaultMaxTracked
	}
	w.maxRetry, w.findTime, w.maxTracked = maxRetry, findTime, maxTracked
}

// Reconfigure changes the thresholds and keeps the counted failures, so
// a reload that only touches maxretry/findtime forgets nothing. Entries
// over a smaller bound are evicted, oldest first.
func (w *Window) Reconfigure(maxRetry int, findTime time.Duration, maxTracked int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.configure(maxRetry, findTime, maxTracked)
	for len(w.m) > w.maxTracked {
		w.evictTail()
	}
}

// KeepLines says whether the matched lines are kept, for the Hit's
// notifications. A jail without actions has no use for them, and they are
// two fifths of what a tracked address costs (a line of 90 bytes and its
// slot, of some 270): 100,000 addresses below maxretry hold 15 MB instead
// of 26. Switching drops the lines kept so far.
func (w *Window) KeepLines(keep bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.noLines == !keep {
		return
	}
	w.noLines = !keep
	for i := w.head; i >= 0; i = w.ents[i].next {
		e := &w.ents[i]
		switch {
		case keep && e.more == nil:
			e.more = &wmore{times: []int64{e.t0}, lines: []string{""}}
		case keep:
			e.more.lines = make([]string, len(e.more.times))
		case e.more != nil:
			e.more.lines = nil
		}
	}
	w.lineBytes = 0
}

// Hit is what Add returns when an address crosses maxretry.
type Hit struct {
	Failures int
	Lines    []string
}

// Add records a failure of key at time at (the line's own time; zero
// means now). now is the current time: a failure older than findtime
// relative to now is not counted at all, so replaying an old log never
// bans. It returns a non-nil Hit when the failures of key within findtime
// reach maxretry; the key's window is then reset.
func (w *Window) Add(key netip.Prefix, at, now time.Time, line string) *Hit {
	if at.IsZero() || at.After(now) {
		// A clock ahead of ours must not keep an address in the window
		// longer than findtime.
		at = now
	}
	if len(line) > maxKeptLine {
		line = line[:maxKeptLine]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cut := now.Add(-w.findTime).UnixNano()
	t := at.UnixNano()
	if t <= cut {
		return nil
	}
	k := keyOf(key)
	i, ok := w.m[k]
	if !ok {
		if len(w.m) >= w.maxTracked {
			w.evictTail()
		}
		i = w.alloc()
		w.ents[i] = wentry{key: k, t0: t}
		if !w.noLines {
			w.ents[i].more = &wmore{times: []int64{t}, lines: []string{line}}
			w.lineBytes += len(line)
		}
		w.m[k] = i
		w.pushFront(i)
	} else {
		w.moveFront(i)
		w.record(&w.ents[i], t, cut, line)
	}
	for w.lineBytes > w.maxLineBytes && w.tail != i {
		w.evictTail()
	}
	e := &w.ents[i]
	if e.count() < w.maxRetry {
		return nil
	}
	h := &Hit{Failures: e.count()}
	if e.more != nil {
		h.Lines = e.more.lines
	}
	w.remove(i)
	return h
}

// record adds failure t (with line) to e, an entry already there, after
// dropping what has left the window (at or before cut).
func (w *Window) record(e *wentry, t, cut int64, line string) {
	if e.more == nil { // one failure, no lines
		if e.t0 <= cut {
			e.t0 = t
			return
		}
		e.more = &wmore{times: make([]int64, 1, min(w.maxRetry, 8))}
		e.more.times[0] = e.t0
	}
	m := e.more
	// The slice is short (< maxRetry).
	k := 0
	for i, ti := range m.times {
		if ti > cut {
			m.times[k] = ti
			if !w.noLines {
				m.lines[k] = m.lines[i]
			}
			k++
		} else if !w.noLines {
			w.lineBytes -= len(m.lines[i])
		}
	}
	m.times = append(m.times[:k], t)
	if !w.noLines {
		clear(m.lines[k:])
		m.lines = append(m.lines[:k], line)
		w.lineBytes += len(line)
	}
}

// Forget drops key's failures (after a manual ban or unban).
func (w *Window) Forget(key netip.Prefix) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i, ok := w.m[keyOf(key)]; ok {
		w.remove(i)
	}
}

// Sweep drops entries whose newest failure left the window at now. It
// walks from the least recently failing end and stops at the first fresh
// entry, so it costs what it removes.
func (w *Window) Sweep(now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	cut := now.Add(-w.findTime).UnixNano()
	n := 0
	for i := w.tail; i >= 0; {
		prev := w.ents[i].prev
		if w.ents[i].newest() > cut {
			break
		}
		w.remove(i)
		n++
		i = prev
	}
	return n
}

// Len is the number of addresses with failures being counted.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// Evicted is how many addresses were dropped because of the bound.
func (w *Window) Evicted() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.evicted
}

// Failures returns key's failures currently in the window.
func (w *Window) Failures(key netip.Prefix) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i, ok := w.m[keyOf(key)]; ok {
		return w.ents[i].count()
	}
	return 0
}

func (w *Window) evictTail() {
	if w.tail >= 0 {
		w.remove(w.tail)
		w.evicted++
	}
}

// alloc is a free slot's index.
func (w *Window) alloc() int32 {
	if i := w.free; i >= 0 {
		w.free = w.ents[i].next
		return i
	}
	w.ents = append(w.ents, wentry{})
	return int32(len(w.ents) - 1)
}

func (w *Window) pushFront(i int32) {
	e := &w.ents[i]
	e.prev, e.next = -1, w.head
	if w.head >= 0 {
		w.ents[w.head].prev = i
	}
	w.head = i
	if w.tail < 0 {
		w.tail = i
	}
}

func (w *Window) unlink(i int32) {
	e := &w.ents[i]
	if e.prev >= 0 {
		w.ents[e.prev].next = e.next
	} else {
		w.head = e.next
	}
	if e.next >= 0 {
		w.ents[e.next].prev = e.prev
	} else {
		w.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (w *Window) moveFront(i int32) {
	if w.head == i {
		return
	}
	w.unlink(i)
	w.pushFront(i)
}

func (w *Window) remove(i int32) {
	w.unlink(i)
	e := &w.ents[i]
	delete(w.m, e.key)
	if e.more != nil {
		for _, l := range e.more.lines {
			w.lineBytes -= len(l)
		}
	}
	*e = wentry{next: w.free}
	w.free = i
	// A Go map never shrinks, and one that keeps deleting and inserting
	// (a distributed attack churning through maxtracked) holds half
	// again its live size in dead slots. Rebuilt after as many removals
	// as it holds, it costs O(1) a removal.
	if w.removed++; w.removed > max(len(w.m), 1024) {
		m := make(map[wkey]int32, len(w.m))
		for k, v := range w.m {
			m[k] = v
		}
		w.m, w.removed = m, 0
	}
}
