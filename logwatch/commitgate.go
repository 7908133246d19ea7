package logwatch

import (
	"bytes"
	"container/heap"
	"sync"

	"github.com/xdpban/xdpban/logwatch/source"
)

// commitGate holds a source's saved position back until the decisions
// made from the lines before it are committed (bans.Decision.Done). The
// follower saved a position as soon as it had read the lines, while their
// decisions were still queued for the daemon: a kill -9 then lost the bans
// (20,000 attackers at 8,000 lines/s: 2,463-4,176 bans lost), since the
// restarted daemon resumed after the lines that asked for them.
//
// Each decision gets the next sequence number of its source; a position
// handed to Save is written once every decision numbered before it is
// done. Load returns the newest position handed over (a reloaded jail
// resumes where reading stopped, not where saving did: the window it
// keeps already counted those lines).
type commitGate struct {
	under source.Positions

	mu   sync.Mutex
	srcs map[string]*gatedSource
}

type gatedSource struct {
	next    uint64 // sequence number of the next decision
	pending seqHeap
	done    map[uint64]bool // acknowledged but still in pending
	// waiting are positions in the order handed over, each released
	// when every decision before upTo is done.
	waiting []gatedPosition
	latest  source.Position
	has     bool
}

type gatedPosition struct {
	pos  source.Position
	upTo uint64
}

func newCommitGate(under source.Positions) *commitGate {
	return &commitGate{under: under, srcs: map[string]*gatedSource{}}
}

func (g *commitGate) src(key string) *gatedSource {
	s := g.srcs[key]
	if s == nil {
		s = &gatedSource{done: map[uint64]bool{}}
		g.srcs[key] = s
	}
	return s
}

// Load implements Positions.
func (g *commitGate) Load(key string) (source.Position, bool, error) {
	g.mu.Lock()
	s := g.srcs[key]
	if s != nil && s.has {
		p := s.latest
		p.Head = bytes.Clone(p.Head)
		g.mu.Unlock()
		return p, true, nil
	}
	g.mu.Unlock()
	return g.under.Load(key)
}

// Save implements Positions: p is written now when no decision made
// before it is outstanding, else once they are all done.
func (g *commitGate) Save(key string, p source.Position) error {
	p.Head = bytes.Clone(p.Head)
	g.mu.Lock()
	s := g.src(key)
	s.latest, s.has = p, true
	defer g.mu.Unlock()
	if s.min() >= s.next {
		s.waiting = s.waiting[:0]
		// Under g.mu, so positions reach the store in order (under is
		// the asynchronous saver or memory: it does not block).
		return g.under.Save(key, p)
	}
	if n := len(s.waiting); n > 0 && s.waiting[n-1].upTo == s.next {
		// No decision since the last one waiting: the newer wins.
		s.waiting[n-1].pos = p
	} else {
		s.waiting = append(s.waiting, gatedPosition{pos: p, upTo: s.next})
	}
	if len(s.waiting) > maxWaiting {
		// Bounded behind a decision that is never done: the oldest
		// gives way to the next, which is released no sooner.
		s.waiting = s.waiting[1:]
	}
	return nil
}

// maxWaiting bounds the positions held back per source.
const maxWaiting = 256

// issue numbers a decision of source key and returns its Done.
func (g *commitGate) issue(key string) func(error) {
	g.mu.Lock()
	s := g.src(key)
	seq := s.next
	s.next++
	heap.Push(&s.pending, seq)
	g.mu.Unlock()
	var once sync.Once
	return func(err error) { once.Do(func() { g.finish(key, seq, err) }) }
}

func (g *commitGate) finish(key string, seq uint64, err error) {
	if err != nil {
		// Not committed: it stays outstanding, so positions past its
		// line are not saved and a restart reads it and asks again.
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.src(key)
	s.done[seq] = true
	low := s.min()
	var release *source.Position
	for len(s.waiting) > 0 && s.waiting[0].upTo <= low {
		release = &s.waiting[0].pos
		s.waiting = s.waiting[1:]
	}
	if release != nil {
		g.under.Save(key, *release)
	}
}

// min is the lowest outstanding (or failed) sequence number, s.next when
// none; g.mu held.
func (s *gatedSource) min() uint64 {
	for len(s.pending) > 0 && s.done[s.pending[0]] {
		delete(s.done, s.pending[0])
		heap.Pop(&s.pending)
	}
	if len(s.pending) == 0 {
		return s.next
	}
	return s.pending[0]
}

// seqHeap is a min-heap of sequence numbers.
type seqHeap []uint64

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *seqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
