package logwatch

// The failure window as it was before its entries moved into one slice
// (v0.4.0), kept as the model TestWindowMatchesModel checks the window
// against.

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type refWindow struct {
	mu         sync.Mutex
	maxRetry   int
	findTime   time.Duration
	maxTracked int
	m          map[netip.Prefix]*refEntry
	// head is the most recently failing entry, tail the least.
	head, tail   *refEntry
	evicted      uint64
	lineBytes    int // sum of the kept lines' lengths
	maxLineBytes int
	// noLines: no line is kept (KeepLines).
	noLines bool
	removed int // entries removed since the map was last rebuilt
}

type refEntry struct {
	key        netip.Prefix
	times      []int64 // unix nanoseconds, at most maxRetry
	lines      []string
	prev, next *refEntry
}

// newRefWindow returns a window. maxRetry < 1 is treated as 1; maxTracked
// <= 0 means DefaultMaxTracked.
func newRefWindow(maxRetry int, findTime time.Duration, maxTracked int) *refWindow {
	w := &refWindow{m: make(map[netip.Prefix]*refEntry), maxLineBytes: maxLineBytes}
	w.configure(maxRetry, findTime, maxTracked)
	return w
}

func (w *refWindow) configure(maxRetry int, findTime time.Duration, maxTracked int) {
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
func (w *refWindow) Reconfigure(maxRetry int, findTime time.Duration, maxTracked int) {
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
func (w *refWindow) KeepLines(keep bool) {
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

// Add records a failure of key at time at (the line's own time; zero
// means now). now is the current time: a failure older than findtime
// relative to now is not counted at all, so replaying an old log never
// bans. It returns a non-nil Hit when the failures of key within findtime
// reach maxretry; the key's window is then reset.
func (w *refWindow) Add(key netip.Prefix, at, now time.Time, line string) *Hit {
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
		e = &refEntry{key: key}
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
func (w *refWindow) Forget(key netip.Prefix) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.m[key]; e != nil {
		w.remove(e)
	}
}

// Sweep drops entries whose newest failure left the window at now. It
// walks from the least recently failing end and stops at the first fresh
// entry, so it costs what it removes.
func (w *refWindow) Sweep(now time.Time) int {
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
func (w *refWindow) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// Evicted is how many addresses were dropped because of the bound.
func (w *refWindow) Evicted() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.evicted
}

// Failures returns key's failures currently in the window.
func (w *refWindow) Failures(key netip.Prefix) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.m[key]; e != nil {
		return len(e.times)
	}
	return 0
}

func (w *refWindow) evictTail() {
	if w.tail != nil {
		w.remove(w.tail)
		w.evicted++
	}
}

func (w *refWindow) pushFront(e *refEntry) {
	e.prev, e.next = nil, w.head
	if w.head != nil {
		w.head.prev = e
	}
	w.head = e
	if w.tail == nil {
		w.tail = e
	}
}

func (w *refWindow) unlink(e *refEntry) {
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

func (w *refWindow) moveFront(e *refEntry) {
	if w.head == e {
		return
	}
	w.unlink(e)
	w.pushFront(e)
}

func (w *refWindow) remove(e *refEntry) {
	w.unlink(e)
	delete(w.m, e.key)
	// A Go map never shrinks, and one that keeps deleting and inserting
	// (a distributed attack churning through maxtracked) holds half
	// again its live size in dead slots: 262 bytes a tracked address
	// instead of 182 after a million through a 100,000 bound. Rebuilt
	// after as many removals as it holds, it costs O(1) a removal.
	if w.removed++; w.removed > max(len(w.m), 1024) {
		m := make(map[netip.Prefix]*refEntry, len(w.m))
		for k, v := range w.m {
			m[k] = v
		}
		w.m, w.removed = m, 0
	}
	for _, l := range e.lines {
		w.lineBytes -= len(l)
	}
}

// TestWindowMatchesModel: random failures, forgets, sweeps, line
// switches and reconfigurations give the same hits, counts and evictions
// as the model, with the bound small enough to evict all the time and
// lines long enough to hit the line budget.
func TestWindowMatchesModel(t *testing.T) {
	for seed := range uint64(60) {
		r := rand.New(rand.NewPCG(seed, 7))
		maxRetry, maxTracked := 1+r.IntN(6), 1+r.IntN(40)
		findTime := time.Duration(1+r.IntN(60)) * time.Second
		w, m := NewWindow(maxRetry, findTime, maxTracked), newRefWindow(maxRetry, findTime, maxTracked)
		w.maxLineBytes, m.maxLineBytes = 4000, 4000
		now := time.Unix(1_800_000_000, 0)
		keys := make([]netip.Prefix, 3+r.IntN(60))
		for i := range keys {
			if i%2 == 0 {
				keys[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32)
			} else {
				keys[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i)}), 64)
			}
		}
		for step := range 5000 {
			k := keys[r.IntN(len(keys))]
			switch op := r.IntN(100); {
			case op < 80:
				now = now.Add(time.Duration(r.IntN(int(findTime/time.Millisecond)/4+1)) * time.Millisecond)
				at := now.Add(-time.Duration(r.IntN(int(findTime/time.Millisecond)+2000)) * time.Millisecond)
				line := strings.Repeat("x", r.IntN(300))
				hw, hm := w.Add(k, at, now, line), m.Add(k, at, now, line)
				if (hw == nil) != (hm == nil) || hw != nil && (hw.Failures != hm.Failures || !slices.Equal(hw.Lines, hm.Lines)) {
					t.Fatalf("seed %d step %d: Add(%s) = %+v, model %+v", seed, step, k, hw, hm)
				}
			case op < 85:
				w.Forget(k)
				m.Forget(k)
			case op < 92:
				if a, b := w.Sweep(now), m.Sweep(now); a != b {
					t.Fatalf("seed %d step %d: Sweep = %d, model %d", seed, step, a, b)
				}
			case op < 96:
				keep := r.IntN(2) == 0
				w.KeepLines(keep)
				m.KeepLines(keep)
			default:
				maxRetry, maxTracked = 1+r.IntN(6), 1+r.IntN(40)
				w.Reconfigure(maxRetry, findTime, maxTracked)
				m.Reconfigure(maxRetry, findTime, maxTracked)
			}
			if w.Len() != m.Len() || w.Evicted() != m.Evicted() || w.Failures(k) != m.Failures(k) || w.lineBytes != m.lineBytes {
				t.Fatalf("seed %d step %d: len %d/%d evicted %d/%d failures(%s) %d/%d line bytes %d/%d", seed, step,
					w.Len(), m.Len(), w.Evicted(), m.Evicted(), k, w.Failures(k), m.Failures(k), w.lineBytes, m.lineBytes)
			}
		}
	}
}
