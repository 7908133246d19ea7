package source

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// gatedPositions is a store whose writes block until the gate opens, and
// fail while failing is set.
type gatedPositions struct {
	*MemPositions
	gate    chan struct{}
	mu      sync.Mutex
	failing bool
	writes  int
}

func (g *gatedPositions) Save(key string, p Position) error {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	if g.failing {
		return errors.New("disk full")
	}
	return g.MemPositions.Save(key, p)
}

func TestAsyncPositionsDoNotWaitForTheStore(t *testing.T) {
	g := &gatedPositions{MemPositions: NewMemPositions(), gate: make(chan struct{})}
	a := NewAsyncPositions(g, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() {
		for i := 1; i <= 100; i++ {
			a.Save("j|file:/log", Position{Offset: int64(i), Head: []byte("head")})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Save waited for a store that does not answer")
	}
	// Not written yet, but a restarted source must resume from it.
	if p, ok, _ := a.Load("j|file:/log"); !ok || p.Offset != 100 || string(p.Head) != "head" {
		t.Fatalf("Load before the write: %+v %v, want offset 100", p, ok)
	}
	if _, ok, _ := g.Load("j|file:/log"); ok {
		t.Fatal("the store has a position although its writes are blocked")
	}
	close(g.gate)
	a.Flush()
	if p, ok, _ := g.Load("j|file:/log"); !ok || p.Offset != 100 {
		t.Fatalf("after flush the store holds %+v %v, want offset 100", p, ok)
	}
	// Coalesced: far fewer writes than saves (one in flight, then the
	// newest of the rest).
	if g.writes > 3 {
		t.Errorf("%d store writes for 100 saves of one key", g.writes)
	}
}

func TestAsyncPositionsRetryAFailedWrite(t *testing.T) {
	g := &gatedPositions{MemPositions: NewMemPositions(), gate: make(chan struct{}), failing: true}
	close(g.gate)
	a := NewAsyncPositions(g, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a.Save("k", Position{Offset: 7})
	a.Flush()
	if _, ok, _ := g.Load("k"); ok {
		t.Fatal("a failing store holds a position")
	}
	if p, ok, _ := a.Load("k"); !ok || p.Offset != 7 {
		t.Fatalf("failed write forgotten: Load %+v %v", p, ok)
	}
	g.mu.Lock()
	g.failing = false
	g.mu.Unlock()
	a.Flush()
	if p, ok, _ := g.Load("k"); !ok || p.Offset != 7 {
		t.Fatalf("failed write not retried by flush: store holds %+v %v", p, ok)
	}
}
