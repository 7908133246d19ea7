package drops

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xdpban/xdpban/internal/bans"
)

// ParseFilter reads the ADDR|CIDR argument of `xdpban watch`: an address
// matches that source exactly, a CIDR every source inside it. "" matches
// everything (the zero prefix).
func ParseFilter(s string) (netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return netip.Prefix{}, nil
	}
	// No IPv6 widening: watching 2001:db8::2 shows that address only.
	p, err := bans.Widen{IPv6: 128}.Parse(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("watch filter: %w", err)
	}
	return p, nil
}

// Match reports whether ev passes filter (the zero prefix passes all).
func Match(filter netip.Prefix, ev Event) bool {
	return !filter.IsValid() || filter.Contains(ev.Src.Unmap())
}

// maxPending bounds the per-subscriber map of drops owed to sources
// whose events a slow reader missed.
const maxPending = 4096

// Hub fans drop events out to watchers. Publish never blocks: a watcher
// that does not keep up misses events, and what it missed is added to
// the suppressed count of the next event it gets from the same source,
// so for every source 1+suppressed still adds up to the drops reported.
type Hub struct {
	mu     sync.Mutex
	subs   map[*sub]struct{}
	closed bool
}

type sub struct {
	ch      chan Event
	filter  netip.Prefix
	mu      sync.Mutex
	pending map[netip.Addr]uint64
	lost    atomic.Uint64 // drops not even attributable (pending full)
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*sub]struct{}{}} }

// Subscribe returns a channel of the events matching filter, buffered by
// buf (default 256). It is closed when ctx ends. lost reports drops the
// watcher could not be told about at all (beyond the suppressed counts).
func (h *Hub) Subscribe(ctx context.Context, filter netip.Prefix, buf int) (events <-chan Event, lost func() uint64) {
	if buf <= 0 {
		buf = 256
	}
	s := &sub{ch: make(chan Event, buf), filter: filter, pending: map[netip.Addr]uint64{}}
	h.mu.Lock()
	if h.closed {
		close(s.ch)
		h.mu.Unlock()
		return s.ch, s.lost.Load
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[s]; ok { // not already closed by Close
			delete(h.subs, s)
			close(s.ch) // under h.mu: Publish sends under it too
		}
	})
	return s.ch, s.lost.Load
}

// Close ends every watcher's stream (their channels close) and refuses
// new ones: the daemon calls it before shutting the control socket down,
// so that open `xdpban watch` streams do not hold the shutdown up.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Subscribers is the number of active watchers (the daemon can skip
// reading events nobody wants when it does not log them either).
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish hands ev to every matching watcher without blocking.
func (h *Hub) Publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if Match(s.filter, ev) {
			s.offer(ev)
		}
	}
}

func (s *sub) offer(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owed, hasOwed := s.pending[ev.Src]
	out := ev
	out.Suppressed += owed
	select {
	case s.ch <- out:
		if hasOwed {
			delete(s.pending, ev.Src)
		}
		return
	default:
	}
	if hasOwed || len(s.pending) < maxPending {
		s.pending[ev.Src] = owed + 1 + ev.Suppressed
		return
	}
	s.lost.Add(1 + ev.Suppressed)
}

// Attrs are the event as slog attributes, in the line format's order and
// spelling, for the daemon log (log_drops = true):
//
//	log.LogAttrs(ctx, slog.LevelInfo, "drop", ev.Attrs()...)
func (e Event) Attrs() []slog.Attr {
	as := make([]slog.Attr, 0, 11)
	as = append(as, slog.String("iface", value(e.Iface)), slog.String("src", addrString(e.Src)),
		slog.String("dst", addrString(e.Dst)), slog.String("proto", ProtoName(e.Proto)))
	if HasPorts(e.Proto) {
		as = append(as, slog.Int("sport", int(e.SPort)), slog.Int("dport", int(e.DPort)))
	}
	as = append(as, slog.Int("len", int(e.Len)))
	if e.Proto == ProtoTCP {
		as = append(as, slog.String("flags", FlagString(e.Flags)))
	}
	as = append(as, slog.String("jail", value(e.Jail)), slog.Uint64("suppressed", e.Suppressed),
		slog.Time("dropped_at", e.Time))
	return as
}

// Pump moves events from the backend to where they are wanted until
// events is closed or ctx ends: every event goes to the watchers of hub
// and, when log is not nil (log_drops = true), to the daemon log as one
// "drop" record. It never blocks on a watcher.
func Pump(ctx context.Context, events <-chan Event, hub *Hub, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if log != nil {
				log.LogAttrs(ctx, slog.LevelInfo, "drop", ev.Attrs()...)
			}
			if hub != nil {
				hub.Publish(ev)
			}
		}
	}
}
