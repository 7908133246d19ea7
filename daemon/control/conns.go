package control

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound what the control socket's clients may hold. The zero
// value of each field takes its default.
type Limits struct {
	// MaxConns is the most connections served at once (DefaultMaxConns).
	// One more closes the longest-idle connection, then the oldest
	// `watch` stream; when every connection is in a request it is
	// answered busy (ErrBusy). Connections holding a file descriptor each
	// could otherwise take all of the daemon's, and the CLI waited
	// behind them (22,000 held connections made it unusable).
	MaxConns int
	// ReadHeaderTimeout bounds the wait for a request's headers, the
	// first request's included: a connection that sends nothing is
	// closed after it.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no next request.
	IdleTimeout time.Duration
}

// Defaults of Limits. A CLI command uses one connection (an import four)
// for well under a second; 128 leaves room for scripts and monitoring
// polling at once.
const (
	DefaultMaxConns          = 128
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
)

// maxBusy is how many connections past MaxConns may wait for their busy
// answer; more are closed unanswered, so a flood of connects cannot grow
// the daemon's open files past MaxConns+maxBusy.
const maxBusy = 16

func (l Limits) withDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = DefaultReadTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	return l
}

// ConnStats are the control socket's connection counts since start.
type ConnStats struct {
	Open int // connections open now
	// Evicted were closed to make room for a new connection (idle ones,
	// then watch streams); Busy were answered busy (every connection in
	// a request); Refused were closed unanswered past that.
	Evicted, Busy, Refused uint64
}

// conn is one accepted connection as the tracker sees it.
type conn struct {
	c     net.Conn
	state http.ConnState
	since time.Time // when it entered state
	// stream: a watch stream, long-lived but evictable.
	stream bool
	// busy: accepted past MaxConns, to be answered ErrBusy and closed.
	busy bool
}

// idle is a connection with no request in progress: accepted but silent
// (StateNew) or kept alive after one (StateIdle).
func (e *conn) idle() bool { return e.state == http.StateNew || e.state == http.StateIdle }

// tracker keeps the open connections and makes room for a new one. The
// socket is root-only, so whoever holds connections could also stop the
// daemon: the aim is that a leaking script or a stuck client never locks
// the operator out, not to outwit root. A new connection wins over the
// longest-idle one, which serves a fresh CLI request whatever number of
// silent connections is held.
type tracker struct {
	max int
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	open    map[net.Conn]*conn
	busy    int // open connections with busy set
	stats   ConnStats
	logged  time.Time // last eviction warning
	pending int       // evictions since then, not yet logged
}

func newTracker(max int, log *slog.Logger) *tracker {
	return &tracker{max: max, log: log, now: time.Now, open: map[net.Conn]*conn{}}
}

// evictLogEvery rate-limits the eviction warning: a flood of connects
// would otherwise write a line per connection.
const evictLogEvery = time.Minute

// admit registers a newly accepted connection, closing another to make
// room when MaxConns are open. It reports false when c must be closed
// unanswered.
func (t *tracker) admit(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := &conn{c: c, state: http.StateNew, since: now}
	if len(t.open)-t.busy >= t.max {
		if v := t.victim(); v != nil {
			v.c.Close()
			delete(t.open, v.c)
			t.stats.Evicted++
			t.pending++
			if now.Sub(t.logged) >= evictLogEvery {
				t.log.Warn("control socket: closed connections to make room for new ones; a client holds connections open",
					"closed", t.pending, "limit", t.max, "closed_total", t.stats.Evicted)
				t.logged, t.pending = now, 0
			}
		} else if t.busy < maxBusy {
			e.busy = true
			t.busy++
			t.stats.Busy++
		} else {
			t.stats.Refused++
			return false
		}
	}
	t.open[c] = e
	return true
}

// victim is the connection a new one replaces: the longest idle, else
// the oldest watch stream, else none (every connection is in a request,
// which is never cut: its client could not tell whether it took effect).
func (t *tracker) victim() *conn {
	var idle, stream *conn
	for _, e := range t.open {
		switch {
		case e.busy:
		case e.idle():
			if idle == nil || e.since.Before(idle.since) {
				idle = e
			}
		case e.stream:
			if stream == nil || e.since.Before(stream.since) {
				stream = e
			}
		}
	}
	if idle != nil {
		return idle
	}
	return stream
}

// connState is the http.Server's ConnState hook.
func (t *tracker) connState(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.open[c]
	if !ok {
		return // evicted
	}
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(t.open, c)
		if e.busy {
			t.busy--
		}
	default:
		e.state, e.since, e.stream = s, t.now(), false
	}
}

// streaming marks the connection of a request as a watch stream.
func (t *tracker) streaming(r *http.Request) {
	e, _ := r.Context().Value(connKey{}).(*conn)
	if e == nil {
		return
	}
	t.mu.Lock()
	e.stream = true
	t.mu.Unlock()
}

func (t *tracker) conn(c net.Conn) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open[c]
}

func (t *tracker) snapshot() ConnStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	st.Open = len(t.open)
	return st
}

type connKey struct{}

// isBusy reports whether r came on a connection accepted past MaxConns.
func isBusy(r *http.Request) bool {
	e, _ := r.Context().Value(connKey{}).(*conn)
	return e != nil && e.busy
}

// limitListener admits each accepted connection through the tracker.
type limitListener struct {
	net.Listener
	t *tracker
}

func (l limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.t.admit(c) {
			return c, nil
		}
		c.Close()
	}
}

func withConn(ctx context.Context, e *conn) context.Context {
	if e == nil {
		return ctx
	}
	return context.WithValue(ctx, connKey{}, e)
}
