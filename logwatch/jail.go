package logwatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/filter"
	"github.com/xdpban/xdpban/logwatch/pyre"
	"github.com/xdpban/xdpban/logwatch/source"
)

// History tells how often a prefix was banned before, for
// bantime.increment. The daemon implements it on its store (number of
// recorded bans of the prefix in this jail); MemHistory is the in-memory
// implementation. The engine only reads it: recording a ban is the
// daemon's job once the ban is applied.
type History interface {
	BanCount(jail string, p netip.Prefix) (int, error)
}

// MemHistory is an in-memory History.
type MemHistory struct {
	mu sync.Mutex
	m  map[string]int
}

// NewMemHistory returns an empty MemHistory.
func NewMemHistory() *MemHistory { return &MemHistory{m: map[string]int{}} }

// Record counts one more ban of p in jail.
func (h *MemHistory) Record(jail string, p netip.Prefix) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[jail+"|"+p.String()]++
}

// BanCount implements History.
func (h *MemHistory) BanCount(jail string, p netip.Prefix) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[jail+"|"+p.String()], nil
}

// maxShift is fail2ban's cap on the exponent (1<<20).
const maxShift = 20

// IncrementBanTime applies fail2ban's bantime.increment with its default
// bantime.formula:
//
//	max(bantime, bantime × 2^min(prev, 20) × factor), capped by maxtime,
//	then + rnd×rndtime (rnd uniform in [0,1))
//
// where prev is the number of earlier bans of the address (so the n-th
// ban lasts bantime × factor × 2^(n−1)). As in fail2ban the cap is applied
// before the random part, a factor below 1 never shortens the configured
// bantime, and permanent bans (bantime < 0) are left alone. rnd nil uses
// math/rand.
func IncrementBanTime(base time.Duration, inc config.Increment, prev int, rnd func() float64) time.Duration {
	if !inc.Enabled || base <= 0 {
		return base
	}
	factor := inc.Factor
	if factor <= 0 {
		factor = 1
	}
	shift := min(max(prev, 0), maxShift)
	f := float64(base) * float64(uint64(1)<<shift) * factor
	if f > math.MaxInt64/2 {
		f = math.MaxInt64 / 2
	}
	t := max(base, time.Duration(f))
	if inc.MaxTime > 0 && t > inc.MaxTime {
		t = inc.MaxTime
	}
	if inc.RndTime > 0 {
		if rnd == nil {
			rnd = rand.Float64
		}
		t += time.Duration(rnd() * float64(inc.RndTime))
	}
	return t
}

// JailSpec is what the engine needs to run one jail.
type JailSpec struct {
	Jail config.Jail
	// NewScanner returns a fresh Scanner for one source; normally the
	// compiled filter's NewScanner method.
	NewScanner func() filter.Scanner
	// FilterKey identifies the compiled filter (e.g. its spec and file
	// hash). A reload with the same key keeps the counted failures.
	FilterKey string
	// MaxTracked bounds the addresses counted (0: DefaultMaxTracked).
	MaxTracked int
	// Widen is the daemon's ipv6_prefix policy: failures of addresses
	// inside one banned prefix are counted together.
	Widen bans.Widen
}

// Position and Positions are the follower's: the daemon stores them under
// these names.
type (
	Position  = source.Position
	Positions = source.Positions
)

// EngineOptions are shared by all jails of an engine.
type EngineOptions struct {
	// Out receives ban decisions. Sending blocks (back-pressure on the
	// followers) until the daemon takes them or the jail stops. A dry
	// run is the daemon not applying them: the engine has no side effect.
	Out chan<- bans.Decision
	// Positions persists offsets and cursors (nil: in-memory, so a
	// reload still resumes where it stopped).
	Positions source.Positions
	// History feeds bantime.increment (nil: every ban is a first ban).
	History History
	Logger  *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// Journalctl is the journalctl binary (default "journalctl" on PATH).
	Journalctl string
	// Rescan overrides the glob re-evaluation period (tests).
	Rescan time.Duration
}

// Engine runs jails: one follower (files and/or journal) per jail, one
// Window per jail. Start, Stop and Stats may be called concurrently.
type Engine struct {
	opt EngineOptions
	// saver is opt.Positions when it is the caller's (durable) store:
	// writes happen off the reading path, flushed when a jail stops.
	saver *source.AsyncPositions
	// gate holds positions back until the decisions from the lines
	// before them are committed (commitgate.go).
	gate  *commitGate
	mu    sync.Mutex
	jails map[string]*jailRun
}

// ErrNoJail is returned for a jail name the engine does not run.
var ErrNoJail = errors.New("no such jail")

// NewEngine returns an engine with no jails.
func NewEngine(opt EngineOptions) *Engine {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	var saver *source.AsyncPositions
	if opt.Positions == nil {
		opt.Positions = source.NewMemPositions()
	} else {
		saver = source.NewAsyncPositions(opt.Positions, opt.Logger)
		opt.Positions = saver
	}
	gate := newCommitGate(opt.Positions)
	opt.Positions = gate
	opt.Journalctl = cmp.Or(opt.Journalctl, "journalctl")
	return &Engine{opt: opt, saver: saver, gate: gate, jails: map[string]*jailRun{}}
}

// Run starts the jails and blocks until ctx is done, then stops them.
func Run(ctx context.Context, jails []JailSpec, opt EngineOptions) error {
	e := NewEngine(opt)
	for _, j := range jails {
		if err := e.Start(ctx, j); err != nil {
			e.StopAll()
			return err
		}
	}
	<-ctx.Done()
	e.StopAll()
	return nil
}

type jailRun struct {
	spec   JailSpec
	win    *Window
	ignore *bans.IgnoreList
	cancel context.CancelFunc
	done   chan struct{}

	files   *source.Follower
	journal *source.Journal

	totalFailed atomic.Uint64
	decisions   atomic.Uint64
	ignored     atomic.Uint64
	narrowed    atomic.Uint64
	timeouts    atomic.Uint64

	tmu        sync.Mutex // guards the timeout log's rate limit
	unlogged   uint64
	lastLogged time.Time
}

// Start starts a jail or, when it already runs, reloads it: its sources
// restart from their saved positions, and its counted failures are kept
// when the filter is unchanged (FilterKey), with maxretry/findtime and the
// bound updated in place. ctx bounds the jail's life.
func (e *Engine) Start(ctx context.Context, spec JailSpec) error {
	j := spec.Jail
	if spec.NewScanner == nil {
		return fmt.Errorf("jail %s: no filter: set the jail's filter", j.Name)
	}
	if j.MaxRetry < 1 {
		return fmt.Errorf("jail %s: maxretry %d: must be at least 1", j.Name, j.MaxRetry)
	}
	if j.FindTime <= 0 {
		return fmt.Errorf("jail %s: findtime %s: must be positive", j.Name, j.FindTime)
	}
	useJournal, err := journalBackend(j)
	if err != nil {
		return err
	}
	ign, err := bans.NewIgnoreList(j.IgnoreIP, j.IgnoreSelf)
	if err != nil {
		return fmt.Errorf("jail %s: %w", j.Name, err)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	var win *Window
	var keep *jailRun
	if old := e.jails[j.Name]; old != nil {
		old.cancel()
		<-old.done
		if old.spec.FilterKey == spec.FilterKey && spec.FilterKey != "" {
			win = old.win
			win.Reconfigure(j.MaxRetry, j.FindTime, spec.MaxTracked)
			keep = old
		}
		delete(e.jails, j.Name)
	}
	if win == nil {
		win = NewWindow(j.MaxRetry, j.FindTime, spec.MaxTracked)
	}
	// Matched lines are for the jail's actions' notifications only.
	win.KeepLines(len(j.Actions) > 0)
	jctx, cancel := context.WithCancel(ctx)
	r := &jailRun{spec: spec, win: win, ignore: ign, cancel: cancel, done: make(chan struct{})}
	if keep != nil {
		r.totalFailed.Store(keep.totalFailed.Load())
		r.decisions.Store(keep.decisions.Load())
		r.ignored.Store(keep.ignored.Load())
		r.narrowed.Store(keep.narrowed.Load())
		r.timeouts.Store(keep.timeouts.Load())
	}
	log := e.opt.Logger.With("jail", j.Name)

	var wg sync.WaitGroup
	if useJournal {
		r.journal = source.NewJournal(source.JournalOptions{
			Bin:       e.opt.Journalctl,
			Matches:   j.JournalMatch,
			Positions: e.opt.Positions,
			Key:       j.Name + "|journal",
			Since:     e.opt.Now().Add(-j.FindTime),
			Logger:    log,
		}, r.lineHandler(e, jctx, func(string) string { return j.Name + "|journal" }))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.journal.Run(jctx)
		}()
	} else {
		r.files = source.NewFollower(source.FollowOptions{
			Globs:     j.LogPaths,
			Positions: e.opt.Positions,
			Key:       func(p string) string { return j.Name + "|file:" + p },
			Rescan:    e.opt.Rescan,
			Logger:    log,
		}, r.fileLineHandler(e, jctx))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.files.Run(jctx); err != nil {
				log.Error("jail stopped: cannot follow its logs", "err", err)
			}
		}()
	}
	// Sweep stale addresses so "currently failed" means it.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(j.FindTime/4, time.Second))
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				win.Sweep(e.opt.Now())
			}
		}
	}()
	go func() {
		wg.Wait()
		close(r.done)
	}()
	e.jails[j.Name] = r
	return nil
}

// journalBackend decides between files and the journal for a jail.
func journalBackend(j config.Jail) (bool, error) {
	switch strings.ToLower(j.Backend) {
	case "journal", "systemd":
		if len(j.JournalMatch) == 0 {
			return false, fmt.Errorf("jail %s: backend journal needs journalmatch (e.g. _SYSTEMD_UNIT=sshd.service)", j.Name)
		}
		return true, nil
	case "file", "polling", "pyinotify", "inotify":
		if len(j.LogPaths) == 0 {
			return false, fmt.Errorf("jail %s: backend file needs logpath", j.Name)
		}
		return false, nil
	case "", "auto":
		if len(j.LogPaths) > 0 {
			return false, nil
		}
		if len(j.JournalMatch) > 0 {
			return true, nil
		}
		return false, fmt.Errorf("jail %s: no logpath and no journalmatch: set one of them", j.Name)
	default:
		return false, fmt.Errorf("jail %s: unknown backend %q: use auto, file or journal", j.Name, j.Backend)
	}
}

// fileLineHandler is lineHandler for the file follower. It is built once
// per jail run, so each file's Scanner (its maxlines buffer, <F-MLFID>
// merging, last date) lives as long as the file is followed: built per
// line, a two-line failure never matched in the daemon although `xdpban
// regex` found it.
func (r *jailRun) fileLineHandler(e *Engine, ctx context.Context) source.LineFunc {
	name := r.spec.Jail.Name
	h := r.lineHandler(e, ctx, func(src string) string { return name + "|file:" + src })
	return func(src, line string) { h(src, line, time.Time{}) }
}

// lineHandler returns the per-source line callback. Each source calls it
// from one goroutine; scanners are per source name. posKey is the source's
// Positions key: its decisions hold its saved position back until done.
func (r *jailRun) lineHandler(e *Engine, ctx context.Context, posKey func(src string) string) func(src, line string, at time.Time) {
	type source struct {
		sc       filter.Scanner
		tc       timeoutCounter // nil when the Scanner counts none
		timeouts uint64
	}
	scanners := map[string]*source{}
	return func(src, line string, at time.Time) {
		s := scanners[src]
		if s == nil {
			s = &source{sc: r.spec.NewScanner()}
			s.tc, _ = s.sc.(timeoutCounter)
			scanners[src] = s
		}
		now := e.opt.Now()
		v, ms := s.sc.Scan(line, now)
		if s.tc != nil {
			if n := s.tc.Timeouts(); n != s.timeouts {
				r.timedOut(e, src, line, n-s.timeouts)
				s.timeouts = n
			}
		}
		if v != filter.Fail {
			return
		}
		for _, m := range ms {
			if !m.Host.IsValid() {
				continue // a hostname: xdpban never resolves names
			}
			if !at.IsZero() {
				// The journal's own timestamp is exact (the year too).
				m.Time = at
			}
			r.failure(e, ctx, m, now, posKey(src))
		}
	}
}

// timeoutCounter is implemented by Scanners that give up on lines
// (compiled filters: the backtracking engine's per-line budget).
type timeoutCounter interface{ Timeouts() uint64 }

// timeoutLogEvery rate-limits the timeout warning per jail: a flood of
// hostile lines must not flood the daemon's log too.
const timeoutLogEvery = time.Minute

// timedOut counts lines a filter gave up on and logs them, the first at
// once and then at most once per timeoutLogEvery with the count since.
func (r *jailRun) timedOut(e *Engine, src, line string, n uint64) {
	r.timeouts.Add(n)
	r.tmu.Lock()
	r.unlogged += n
	now := time.Now()
	if !r.lastLogged.IsZero() && now.Sub(r.lastLogged) < timeoutLogEvery {
		r.tmu.Unlock()
		return
	}
	count := r.unlogged
	r.unlogged, r.lastLogged = 0, now
	r.tmu.Unlock()
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	e.opt.Logger.Warn(fmt.Sprintf("filter gave up on %d line(s) after %s of backtracking each (counted as misses; a hostile or pathological line: see xdpban_regex_timeouts_total, next warning in %s at most)", count, pyre.DefaultMatchTimeout, timeoutLogEvery),
		"jail", r.spec.Jail.Name, "filter", r.spec.Jail.Filter, "source", src, "line", line)
}

func (r *jailRun) failure(e *Engine, ctx context.Context, m filter.Match, now time.Time, posKey string) {
	addr := m.Host.Unmap()
	if r.ignore.Ignored(addr) {
		r.ignored.Add(1)
		return
	}
	r.totalFailed.Add(1)
	key, blocker := r.key(addr)
	hit := r.win.Add(key, m.Time, now, m.Line)
	if hit == nil {
		return
	}
	j := r.spec.Jail
	if blocker.IsValid() {
		r.narrowed.Add(1)
		e.opt.Logger.Warn("ban narrowed: the widened prefix would cover an ignored address (ignoreip/ignoreself)",
			"jail", j.Name, "addr", addr, "banned", key, "instead_of", r.spec.Widen.Addr(addr), "ignored", blocker)
	}
	bt := j.BanTime
	if j.Increment.Enabled && e.opt.History != nil && bt > 0 {
		n, err := e.opt.History.BanCount(j.Name, key)
		if err != nil {
			e.opt.Logger.Warn("ban history unavailable; using the base bantime", "jail", j.Name, "addr", addr, "err", err)
		}
		bt = IncrementBanTime(bt, j.Increment, n, nil)
	}
	at := m.Time
	if at.IsZero() {
		at = now
	}
	// Prefix is the window's key: the widening (and narrowing) is
	// worked out here once, the daemon's intake bans it as given.
	d := bans.Decision{Jail: j.Name, Addr: addr, Prefix: key, Exact: true, Scope: j.Scope, Failures: hit.Failures, BanTime: bt, At: at, Lines: hit.Lines,
		Done: e.gate.issue(posKey)}
	r.decisions.Add(1)
	select {
	case e.opt.Out <- d:
	case <-ctx.Done():
	}
}

// Stop stops a jail and forgets its counters.
func (e *Engine) Stop(name string) error {
	e.mu.Lock()
	r := e.jails[name]
	delete(e.jails, name)
	e.mu.Unlock()
	if r == nil {
		return fmt.Errorf("stop jail %q: %w", name, ErrNoJail)
	}
	r.cancel()
	<-r.done
	if e.saver != nil {
		// A stopped jail's positions are written when Stop returns:
		// the daemon closes the store next.
		e.saver.Flush()
	}
	return nil
}

// StopAll stops every jail.
func (e *Engine) StopAll() {
	for _, n := range e.Names() {
		e.Stop(n)
	}
	if e.saver != nil {
		// Decisions committed after their jail stopped released
		// positions too: the daemon calls this again once its intake
		// has drained, before it closes the store.
		e.saver.Flush()
	}
}

// Names lists the running jails, sorted.
func (e *Engine) Names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.jails))
}

// Forget drops an address's counted failures in a jail (after a manual
// ban or an unban).
func (e *Engine) Forget(jail string, a netip.Addr) {
	e.mu.Lock()
	r := e.jails[jail]
	e.mu.Unlock()
	if r != nil {
		k, _ := r.key(a.Unmap())
		r.win.Forget(k)
	}
}

// key is what the failures of a are counted under and what their ban
// covers: a's prefix as widened by ipv6_prefix, narrowed where that
// would cover an ignored address (blocker, when valid).
func (r *jailRun) key(a netip.Addr) (key, blocker netip.Prefix) {
	return r.ignore.Narrow(r.spec.Widen.Addr(a), a)
}

// JailStats is what `xdpban status JAIL` and the metrics show.
type JailStats struct {
	Name string `json:"name"`
	// Filter is the jail's filter setting.
	Filter string `json:"filter,omitempty"`
	// CurrentlyFailed is the addresses with failures inside findtime.
	CurrentlyFailed int    `json:"currently_failed"`
	TotalFailed     uint64 `json:"total_failed"`
	// Ignored counts failures of ignoreip/ignoreself addresses.
	Ignored uint64 `json:"ignored"`
	// Narrowed counts bans narrowed so that their widened prefix would
	// not cover an ignored address.
	Narrowed  uint64 `json:"narrowed"`
	Decisions uint64 `json:"decisions"`
	// Evicted counts addresses dropped by the MaxTracked bound.
	Evicted uint64 `json:"evicted"`
	// Timeouts counts lines the filter gave up on (their backtracking
	// searches spent DefaultMatchTimeout); they count as misses.
	Timeouts uint64         `json:"regex_timeouts"`
	Sources  []source.Stats `json:"sources"`
}

// Stats returns a jail's counters.
func (e *Engine) Stats(name string) (JailStats, error) {
	e.mu.Lock()
	r := e.jails[name]
	e.mu.Unlock()
	if r == nil {
		return JailStats{}, fmt.Errorf("jail %q: %w", name, ErrNoJail)
	}
	s := JailStats{
		Name:            name,
		Filter:          r.spec.Jail.Filter,
		CurrentlyFailed: r.win.Len(),
		TotalFailed:     r.totalFailed.Load(),
		Ignored:         r.ignored.Load(),
		Narrowed:        r.narrowed.Load(),
		Decisions:       r.decisions.Load(),
		Evicted:         r.win.Evicted(),
		Timeouts:        r.timeouts.Load(),
	}
	if r.files != nil {
		s.Sources = r.files.Stats()
	}
	if r.journal != nil {
		s.Sources = append(s.Sources, r.journal.Stats())
	}
	return s, nil
}
