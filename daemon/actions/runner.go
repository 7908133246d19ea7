package actions

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Runner. Zero fields take the defaults.
type Options struct {
	// QueueSize bounds the events waiting per action kind (default 1024).
	// With MaxLines × MaxLineLen per event, this bounds memory too.
	QueueSize int
	// Workers per action kind (default 2).
	Workers int
	// Backoff is the wait before the first retry, doubled each time up
	// to MaxBackoff (defaults 1s and 1m), with ±20% jitter.
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
}

// Counters are one action kind's totals since the Runner was made.
type Counters struct {
	Sent    uint64 `json:"sent"`    // attempts that succeeded (one per event)
	Failed  uint64 `json:"failed"`  // events given up after the last retry
	Retried uint64 `json:"retried"` // extra attempts made
	Dropped uint64 `json:"dropped"` // events not queued: queue full or closed
	Queued  int    `json:"queued"`  // waiting now
}

type job struct {
	a  Action
	ev Event
}

// lane is one action kind's queue and counters: a dead mail relay fills
// the mail lane only, webhooks keep flowing.
type lane struct {
	kind                           string
	q                              chan job
	sent, failed, retried, dropped atomic.Uint64
	lastDropLog                    atomic.Int64 // unix nanos
}

// Runner delivers notifications asynchronously. Notify never blocks.
type Runner struct {
	opts  Options
	log   *slog.Logger
	lanes map[string]*lane

	mu     sync.RWMutex
	jails  map[string][]Action
	closed bool

	start   sync.Once
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sleepFn func(context.Context, time.Duration) error // tests shorten it
}

// NewRunner makes a Runner; call Start to deliver.
func NewRunner(o Options) *Runner {
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Runner{opts: o, log: o.Logger.With("component", "actions"),
		lanes: map[string]*lane{}, jails: map[string][]Action{}, sleepFn: sleepCtx}
	for _, k := range Kinds {
		r.lanes[k] = &lane{kind: k, q: make(chan job, o.QueueSize)}
	}
	return r
}

// SetJail sets (or, with none, removes) a jail's actions; safe at any
// time, e.g. on reload. Events already queued keep their old actions.
func (r *Runner) SetJail(jail string, acts []Action) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(acts) == 0 {
		delete(r.jails, jail)
		return
	}
	r.jails[jail] = append([]Action(nil), acts...)
}

// Start launches the workers; they stop when ctx ends or Close is called.
func (r *Runner) Start(ctx context.Context) {
	r.start.Do(func() {
		ctx, r.cancel = context.WithCancel(ctx)
		for _, l := range r.lanes {
			for range r.opts.Workers {
				r.wg.Add(1)
				go r.work(ctx, l)
			}
		}
	})
}

// Acts reports whether jail has actions: events of other jails are
// dropped by Notify, so they need not be made.
func (r *Runner) Acts(jail string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.jails[jail]) > 0
}

// Notify queues ev for every action of ev.Jail that wants its kind. It
// never blocks: when a queue is full the event is dropped for that
// action, counted and logged (at most once every 10s per kind).
func (r *Runner) Notify(ev Event) {
	// The read lock is held across the (non-blocking) sends so that Close
	// cannot close a queue under them.
	r.mu.RLock()
	defer r.mu.RUnlock()
	acts, closed := r.jails[ev.Jail], r.closed
	if len(acts) == 0 {
		return
	}
	ev = ev.sanitize()
	for _, a := range acts {
		if !a.Runs(ev.Kind) {
			continue
		}
		l := r.lanes[a.Kind()]
		if !closed {
			select {
			case l.q <- job{a, ev}:
				continue
			default:
			}
		}
		n := l.dropped.Add(1)
		now := time.Now().UnixNano()
		if last := l.lastDropLog.Load(); now-last >= int64(10*time.Second) && l.lastDropLog.CompareAndSwap(last, now) {
			r.log.Warn("notification dropped: queue full", "action", l.kind, "jail", ev.Jail,
				"addr", ev.AddrString(), "event", ev.Kind.String(), "dropped_total", n, "queue_size", cap(l.q))
		}
	}
}

// Stats returns the counters per action kind.
func (r *Runner) Stats() map[string]Counters {
	m := make(map[string]Counters, len(r.lanes))
	for k, l := range r.lanes {
		m[k] = Counters{Sent: l.sent.Load(), Failed: l.failed.Load(), Retried: l.retried.Load(),
			Dropped: l.dropped.Load(), Queued: len(l.q)}
	}
	return m
}

// Close stops accepting events and lets the workers drain the queues
// until ctx ends; then in-flight attempts are cancelled and what is left
// is counted as dropped. It returns ctx's error when the drain was cut.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	r.mu.Unlock()
	if already {
		return nil
	}
	r.Start(context.Background()) // a never-started Runner drains too
	for _, l := range r.lanes {
		close(l.q)
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.cancel()
	<-done
	// Workers that stopped early (Start's ctx ended) left events behind.
	for _, l := range r.lanes {
		for range l.q {
			l.dropped.Add(1)
		}
	}
	return err
}

func (r *Runner) work(ctx context.Context, l *lane) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			// Count what will never be sent.
			for {
				select {
				case _, ok := <-l.q:
					if !ok {
						return
					}
					l.dropped.Add(1)
				default:
					return
				}
			}
		case j, ok := <-l.q:
			if !ok {
				return
			}
			r.deliver(ctx, l, j)
		}
	}
}

// deliver runs one job with its timeout and retries.
func (r *Runner) deliver(ctx context.Context, l *lane, j job) {
	p := j.a.limits()
	wait := r.opts.Backoff
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		err := j.a.Run(actx, j.ev)
		cancel()
		if err == nil {
			l.sent.Add(1)
			r.log.Debug("notification sent", "action", l.kind, "jail", j.ev.Jail,
				"addr", j.ev.AddrString(), "event", j.ev.Kind.String(), "attempts", attempt+1)
			return
		}
		last := attempt >= p.retries || errors.Is(err, ErrPermanent) || ctx.Err() != nil
		if last {
			l.failed.Add(1)
			r.log.Warn("notification failed", "action", l.kind, "jail", j.ev.Jail,
				"addr", j.ev.AddrString(), "event", j.ev.Kind.String(), "attempts", attempt+1, "err", err)
			return
		}
		r.log.Info("notification attempt failed, retrying", "action", l.kind, "jail", j.ev.Jail,
			"addr", j.ev.AddrString(), "attempt", attempt+1, "retry_in", wait, "err", err)
		jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(wait))
		if r.sleepFn(ctx, wait+jitter) != nil {
			l.failed.Add(1)
			return
		}
		l.retried.Add(1)
		wait = min(wait*2, r.opts.MaxBackoff)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
