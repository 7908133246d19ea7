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
type Window struct {
	mu         sync.Mutex
	maxRetry   int
	findTime   time.Duration
	maxTracked int
	m          map[netip.Prefix]*wentry
	// head is the most recently failing entry, tail the least.
	head, tail   *wentry
	evicted      uint64
	lineBytes    int // sum of the kept lines' lengths
	maxLineBytes int
	// noLines: no line is kept (KeepLines).
	noLines bool
	removed int // entries removed since the map was last rebuilt
}

type wentry struct {
	key        netip.Prefix
	times      []int64 // unix nanoseconds, at most maxRetry
	lines      []string
	prev, next *wentry
}

// NewWindow returns a window. maxRetry < 1 is treated as 1; maxTracked
// <= 0 means DefaultMaxTracked.
func NewWindow(maxRetry int, findTime time.Duration, maxTracked int) *Window {
	w := &Window{m: make(map[netip.Prefix]*wentry), maxLineBytes: maxLineBytes}
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
	for e := w.head; e != nil; e = e.next {
		e.lines = nil
		if keep {
			e.lines = make([]string, len(e.times))
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
	e := w.m[key]
	if e == nil {
		if len(w.m) >= w.maxTracked {
			w.evictTail()
		}
		e = &wentry{key: key}
		w.m[key] = e
		w.pushFront(e)
	} else {
		w.moveFront(e)
	}
	// Drop what has left the window; the slice is short (< maxRetry).
	k := 0
	for i, ti := range e.times {
		if ti > cut {
			e.times[k] = ti
			if !w.noLines {
				e.lines[k] = e.lines[i]
			}
			k++
		} else if !w.noLines {
			w.lineBytes -= len(e.lines[i])
		}
	}
	e.times = append(e.times[:k], t)
	if !w.noLines {
		clear(e.lines[k:])
		e.lines = append(e.lines[:k], line)
		w.lineBytes += len(line)
	}
	for w.lineBytes > w.maxLineBytes && w.tail != e {
		w.evictTail()
	}
	if len(e.times) < w.maxRetry {
		return nil
	}
	h := &Hit{Failures: len(e.times), Lines: e.lines}
	w.remove(e)
	return h
}

// Forget drops key's failures (after a manual ban or unban).
func (w *Window) Forget(key netip.Prefix) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.m[key]; e != nil {
		w.remove(e)
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
	for e := w.tail; e != nil; {
		prev := e.prev
		newest := e.times[len(e.times)-1]
		for _, t := range e.times {
			newest = max(newest, t)
		}
		if newest > cut {
			break
		}
		w.remove(e)
		n++
		e = prev
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
	if e := w.m[key]; e != nil {
		return len(e.times)
	}
	return 0
}

func (w *Window) evictTail() {
	if w.tail != nil {
		w.remove(w.tail)
		w.evicted++
	}
}

func (w *Window) pushFront(e *wentry) {
	e.prev, e.next = nil, w.head
	if w.head != nil {
		w.head.prev = e
	}
	w.head = e
	if w.tail == nil {
		w.tail = e
	}
}

func (w *Window) unlink(e *wentry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		w.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		w.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (w *Window) moveFront(e *wentry) {
	if w.head == e {
		return
	}
	w.unlink(e)
	w.pushFront(e)
}

func (w *Window) remove(e *wentry) {
	w.unlink(e)
	delete(w.m, e.key)
	// A Go map never shrinks, and one that keeps deleting and inserting
	// (a distributed attack churning through maxtracked) holds half
	// again its live size in dead slots: 262 bytes a tracked address
	// instead of 182 after a million through a 100,000 bound. Rebuilt
	// after as many removals as it holds, it costs O(1) a removal.
	if w.removed++; w.removed > max(len(w.m), 1024) {
		m := make(map[netip.Prefix]*wentry, len(w.m))
		for k, v := range w.m {
			m[k] = v
		}
		w.m, w.removed = m, 0
	}
	for _, l := range e.lines {
		w.lineBytes -= len(l)
	}
}
