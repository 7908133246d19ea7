// Package daemon is xdpban's long-running process: it restores the stored
// bans into the backend before reading any log, takes the decisions of
// every source (jails, the CLI, imports, the fleet) into one intake,
// sweeps expired bans, and serves the control socket; the ban book itself
// is daemon/ledger.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/daemon/banlog"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/daemon/fleet"
	"github.com/xdpban/xdpban/daemon/ledger"
	"github.com/xdpban/xdpban/daemon/metrics"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/version"
	"github.com/xdpban/xdpban/logwatch"
)

// Built-in defaults for what the configuration leaves empty.
const (
	DefaultStateDir   = "/var/lib/xdpban"
	DefaultPinPath    = "/sys/fs/bpf/xdpban"
	DefaultDBPurgeAge = 24 * time.Hour
	DBFile            = "xdpban.db"
)

// BackendOpener opens the enforcement backend and says why it chose it
// (enforce.Open).
type BackendOpener func(ctx context.Context, d config.Daemon) (b bans.Backend, reason string, err error)

// Options configure a daemon.
type Options struct {
	// Config is the resolved configuration; its Daemon section holds the
	// paths (the CLI's flags already applied).
	Config *config.Config
	// LoadConfig re-reads the configuration on reload (SIGHUP, `xdpban
	// reload`); nil makes reload re-apply Config.
	LoadConfig func() (*config.Config, error)
	// Jails compiles the enabled jails of a configuration into engine
	// specs (filters loaded); nil runs no jails.
	Jails func(cfg *config.Config, w bans.Widen) ([]logwatch.JailSpec, error)
	// OpenBackend opens the backend; required unless DryRun.
	OpenBackend BackendOpener
	// DryRun watches logs and reports decisions without enforcing or
	// storing anything.
	DryRun bool
	// DetachOnExit removes enforcement when the daemon stops; by default
	// it stays (the kernel keeps dropping while the daemon restarts).
	DetachOnExit bool
	Logger       *slog.Logger
	// SweepEvery is the expiry sweep period (default 1s).
	SweepEvery time.Duration
	// Ready is called once bans are restored and the socket answers
	// (sd_notify READY=1).
	Ready func()
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Daemon is a running xdpban. It implements control.Handler.
type Daemon struct {
	opt     Options
	log     *slog.Logger
	widen   bans.Widen
	started time.Time
	// up is closed once the start is complete: a request that changes
	// bans or jails waits for it (waitUp), one that reads does not.
	up chan struct{}

	core    *ledger.Core
	st      *store.Store
	bl      *banlog.Log
	met     *metrics.Metrics
	runner  *actions.Runner
	drops   *drops.Hub // drops.go; nil without XDP drop events
	engine  *logwatch.Engine
	fleet   *fleet.Fleet // nil unless [fleet] is enabled (fleetsink.go)
	reason  string
	metrics net.Listener

	mu  sync.Mutex
	cfg *config.Config
	// runCtx bounds the jails; stop ends Run (detach, fatal errors).
	runCtx context.Context
	stop   context.CancelCauseFunc
	// detached: enforcement was removed; do not Close over it.
	detached bool
	// gone are the protected interfaces found deleted (ifaces.go).
	gone map[string]bool
}

// New checks the options; Run does the work.
func New(opt Options) (*Daemon, error) {
	if opt.Config == nil {
		return nil, errors.New("daemon: no configuration")
	}
	if opt.OpenBackend == nil && !opt.DryRun {
		return nil, errors.New("daemon: no backend opener")
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.SweepEvery <= 0 {
		opt.SweepEvery = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	d := &Daemon{opt: opt, log: opt.Logger, cfg: opt.Config, up: make(chan struct{})}
	if v6 := opt.Config.Daemon.IPv6Prefix; v6 != 0 {
		if err := bans.ValidateIPv6Prefix(v6); err != nil {
			return nil, err
		}
		d.widen = bans.Widen{IPv6: v6}
	}
	// A broken filter or action is the operator's to fix before anything
	// is attached: compiling at Run would come after the backend and the
	// restore, leaving a half-started daemon to report it.
	if _, err := d.prepare(opt.Config); err != nil {
		return nil, err
	}
	return d, nil
}

// waitUp holds a request that changes bans or jails until the start is
// complete (the socket is served while the kernel is still being
// compared with the store).
func (d *Daemon) waitUp(ctx context.Context) error {
	select {
	case <-d.up:
		return nil
	case <-d.runCtx.Done():
		return fmt.Errorf("daemon stopping: %w", context.Cause(d.runCtx))
	case <-ctx.Done():
		return fmt.Errorf("daemon still starting: %w", ctx.Err())
	}
}

// Widen is the daemon's address widening policy.
func (d *Daemon) Widen() bans.Widen { return d.widen }

// Run restores bans, serves the control socket, runs the jails and sweeps
// expired bans until ctx ends (or a detach). Enforcement stays in place
// when it returns unless DetachOnExit.
func (d *Daemon) Run(ctx context.Context) (err error) {
	d.started = d.opt.Now()
	dc := d.cfg.Daemon
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	d.runCtx, d.stop = runCtx, stop

	if !d.opt.DryRun {
		stateDir := cmp.Or(dc.StateDir, DefaultStateDir)
		d.st, err = store.Open(filepath.Join(stateDir, DBFile), d.log)
		if err != nil {
			return fmt.Errorf("open ban database: %w", err)
		}
		defer d.st.Close()
	}
	blPath := dc.BanLog
	if blPath == "none" {
		blPath = ""
	}
	d.bl, err = banlog.Open(blPath, d.log)
	if err != nil {
		return err
	}
	defer d.bl.Close()

	// Everything that can refuse the start is checked before the
	// backend is opened: a failed start must leave nothing attached or
	// pinned (and on a host where enforcement already runs, must not
	// touch it). The socket is bound now and served once bans are
	// restored; a client that connects meanwhile waits.
	sock := cmp.Or(dc.Socket, control.DefaultSocket)
	srv, err := control.Listen(sock, d, d.log, control.Limits{MaxConns: dc.SocketMaxConns})
	if err != nil {
		return err
	}
	serving := false
	defer func() {
		if !serving {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}
	}()
	var metricsLn net.Listener
	if dc.MetricsListen != "" {
		if metricsLn, err = metrics.Listen(dc.MetricsListen); err != nil {
			return err
		}
		defer func() {
			if d.met == nil { // not served yet: Serve closes it on runCtx
				metricsLn.Close()
			}
		}()
	}
	p, err := d.prepare(d.cfg)
	if err != nil {
		return err
	}

	var backend bans.Backend
	running := false // set once the start is complete
	if !d.opt.DryRun {
		backend, d.reason, err = d.opt.OpenBackend(ctx, dc)
		if err != nil {
			return fmt.Errorf("open backend: %w", err)
		}
		d.log.Info("backend ready", "backend", backend.Kind(), "reason", d.reason)
		defer func() {
			if d.detached {
				return
			}
			if err != nil && !running && fresh(backend) {
				// The start failed after attaching where nothing was
				// before: leave the host as it was found.
				if derr := backend.Detach(); derr != nil {
					err = errors.Join(err, fmt.Errorf("detach after the failed start: %w", derr))
				}
				return
			}
			if d.opt.DetachOnExit {
				if derr := backend.Detach(); derr != nil {
					err = errors.Join(err, fmt.Errorf("detach on exit: %w", derr))
				}
				return
			}
			backend.Close()
		}()
		d.core = ledger.NewCore(backend, d.st, d.bl, d.log)
		d.core.Now = d.opt.Now
		defer func() {
			// Last try; what stays unwritten is still in the kernel,
			// which the next start imports into the store (Restore).
			if n := d.core.FlushBacklog(); n > 0 {
				d.log.Error("stopping with ban database writes not done: the kernel keeps enforcing those bans and the next start imports them; unbans not written come back", "pending", n)
			}
		}()
	}

	d.runner = actions.NewRunner(actions.Options{Logger: d.log})
	// Workers outlive runCtx so Close can drain pending notifications
	// (bounded) at shutdown.
	d.runner.Start(context.Background())
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.runner.Close(cctx)
	}()
	if d.core != nil {
		// One path for every change: the notification actions and the
		// fleet (a no-op until it runs) hear of bans and unbans alike.
		d.core.Observers = append(d.core.Observers, ledger.NotifyObserver(d.runner), fleetObserver{d})
	}

	if metricsLn != nil {
		d.met = metrics.New(d.backendStatus, d.jailCounters)
		d.met.Registry.MustRegister(actions.Collector(d.runner), srv.Collector())
		if d.core != nil {
			d.core.Metrics = d.met
		}
		go func() {
			if err := d.met.Serve(runCtx, metricsLn, d.log); err != nil {
				d.log.Error("metrics stopped", "err", err)
			}
		}()
	}

	// The engine exists before the socket is served (handlers read it);
	// its jails start after the restore.
	decisions := make(chan bans.Decision, 256)
	var positions logwatch.Positions
	var history logwatch.History
	if d.st != nil {
		positions = positionStore{d.st}
		history = d.st
	}
	d.engine = logwatch.NewEngine(logwatch.EngineOptions{
		Out: decisions, Positions: positions, History: history, Logger: d.log, Now: d.opt.Now,
	})
	defer d.engine.StopAll()

	// The socket is served as soon as the store's bans are in the mirror:
	// list, status and ping answer while the kernel is compared with them
	// (a second or two at a million bans); a change waits for the start
	// to complete (waitStarted).
	defer func() {
		if serving {
			// Requests still waiting for the start get their answer.
			stop(errors.New("daemon stopping"))
			d.stopDrops() // drops.go
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}
	}()
	serve := sync.OnceFunc(func() {
		serving = true
		go func() {
			if err := srv.Serve(); err != nil {
				stop(err)
			}
		}()
	})

	// Bans first: nothing read from a log may be decided before what was
	// already banned is back in force.
	if d.core != nil {
		if moved := d.st.Recovered(); moved != "" {
			d.log.Warn("ban database was unreadable: importing the bans the kernel still enforces", "moved_to", moved)
		}
		d.core.OnLoaded = serve
		if _, err := d.core.Restore(ctx); err != nil {
			return fmt.Errorf("restore bans: %w", err)
		}
		d.purge()
	}
	d.startDrops(runCtx, backend) // drops.go
	serve()

	if err := d.startJails(runCtx, d.cfg, p, ""); err != nil {
		return err
	}
	go d.runBanAfter(runCtx, backend, decisions) // banafter.go
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.consume(runCtx, decisions)
	}()
	defer wg.Wait()
	// After the intake runs (remote bans enter through it) and after the
	// restore (what this host holds is known before it is compared with
	// the bucket).
	stopFleet, err := d.startFleet(runCtx, decisions)
	if err != nil {
		return err
	}
	defer stopFleet()

	d.log.Info("xdpban running", "version", version.String(), "socket", sock, "dry_run", d.opt.DryRun, "jails", d.engine.Names())
	running = true
	close(d.up)
	if d.opt.Ready != nil {
		d.opt.Ready()
	}

	tick := time.NewTicker(d.opt.SweepEvery)
	defer tick.Stop()
	ticks := 0
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	for {
		select {
		case <-runCtx.Done():
			cause := context.Cause(runCtx)
			d.engine.StopAll()
			if errors.Is(cause, errDetached) || ctx.Err() != nil {
				d.log.Info("xdpban stopping", "reason", cause)
				return nil
			}
			return cause
		case <-tick.C:
			if d.core == nil {
				continue
			}
			if ticks++; ticks%ifaceCheckEvery == 0 {
				d.checkInterfaces(backend)
			}
			if _, err := d.core.Sweep(runCtx); err != nil && runCtx.Err() == nil {
				d.log.Error("expiry sweep failed", "err", err)
			}
			d.core.FlushBacklog()
			if ticks%reconcileTicks == 0 {
				if _, err := d.core.Reconcile(runCtx, false); err != nil && runCtx.Err() == nil {
					d.log.Error("checking the kernel maps against the store failed", "err", err)
				}
			}
		case <-purge.C:
			d.purge()
		}
	}
}

var errDetached = errors.New("enforcement detached on request")

// fresh reports whether b made its enforcement at this start (the XDP
// backend found nothing pinned).
func fresh(b bans.Backend) bool {
	if u, ok := b.(interface{ Unwrap() bans.Backend }); ok {
		b = u.Unwrap()
	}
	f, ok := b.(interface{ Fresh() bool })
	return ok && f.Fresh()
}

// reconcileTicks is how many sweep ticks apart the kernel maps are
// checked against the mirror for lost bans (Core.Reconcile): a count,
// then a list only if a count differs, each a walk of every ban (half a
// second at a million), so every 10 minutes; a reload lists at once.
const reconcileTicks = 600

func (d *Daemon) purge() {
	if d.st == nil {
		return
	}
	age := d.cfg.Daemon.DBPurgeAge
	if age <= 0 {
		age = DefaultDBPurgeAge
	}
	n, err := d.st.Purge(d.opt.Now().Add(-age))
	if err != nil {
		d.log.Error("purge ban history failed", "err", err)
		return
	}
	if n > 0 {
		d.log.Info("ban history purged", "events", n, "older_than", age)
	}
}

// prepared is a configuration's jails compiled and checked, not yet
// applied.
type prepared struct {
	actions map[string][]actions.Action
	specs   []logwatch.JailSpec
}

// prepare compiles every jail's actions and filters. Reload applies
// nothing unless all of it compiles, so a bad file never leaves some
// jails on the new configuration and others on the old.
func (d *Daemon) prepare(cfg *config.Config) (prepared, error) {
	p := prepared{actions: map[string][]actions.Action{}}
	for _, j := range cfg.Jails {
		acts, err := actions.Build(j.Actions)
		if err != nil {
			return p, fmt.Errorf("jail %s (%s): %w", j.Name, j.Source, err)
		}
		p.actions[j.Name] = acts
	}
	if d.opt.Jails == nil {
		return p, nil
	}
	var err error
	p.specs, err = d.opt.Jails(cfg, d.widen)
	return p, err
}

// startJails starts (or reloads) the enabled jails of cfg, only the one
// named when jail is set, and stops the ones no longer enabled.
func (d *Daemon) startJails(ctx context.Context, cfg *config.Config, p prepared, jail string) error {
	for _, j := range cfg.Jails {
		if jail == "" || jail == j.Name {
			d.runner.SetJail(j.Name, p.actions[j.Name])
		}
	}
	if d.opt.Jails == nil {
		return nil
	}
	specs := p.specs
	want := map[string]bool{}
	for _, s := range specs {
		if jail != "" && s.Jail.Name != jail {
			continue
		}
		want[s.Jail.Name] = true
		if err := d.engine.Start(ctx, s); err != nil {
			return fmt.Errorf("start jail %s: %w", s.Jail.Name, err)
		}
	}
	if jail != "" {
		if !want[jail] {
			return fmt.Errorf("%w %q: not an enabled jail in the configuration: set enabled = true in its section, or see 'xdpban status' for the jails", control.ErrUnknownJail, jail)
		}
		return nil
	}
	for _, n := range d.engine.Names() {
		if !want[n] {
			d.engine.Stop(n)
		}
	}
	return nil
}

// consume applies the jails' decisions, in batches: under an attack from
// many addresses one store commit covers all decisions waiting. Batches
// are applied concurrently (pipeline.go) so none waits for another's
// commit before it is enforced.
func (d *Daemon) consume(ctx context.Context, in <-chan bans.Decision) {
	const maxBatch = 1024
	pl := newApplyPipeline(maxInflight, func(dec bans.Decision) netip.Prefix { return dec.Target(d.widen) },
		func(b []bans.Decision) { d.apply(ctx, b) })
	defer pl.wait()
	for {
		var batch []bans.Decision
		select {
		case <-ctx.Done():
			return
		case dec := <-in:
			batch = append(batch, dec)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case dec := <-in:
				batch = append(batch, dec)
			default:
				break drain
			}
		}
		pl.submit(batch)
	}
}

func (d *Daemon) apply(ctx context.Context, ds []bans.Decision) {
	now := d.opt.Now()
	if d.core == nil {
		for _, dec := range ds {
			d.log.Info("dry run: would ban", "jail", dec.Jail, "addr", dec.Addr, "failures", dec.Failures, "bantime", dec.BanTime)
		}
		done(ds, nil)
		return
	}
	// Every decision is done once the batch is: a jail saves its log
	// position past the lines that asked for these bans only then.
	var err error
	defer func() { done(ds, err) }()
	var bs []bans.Ban
	var evs []actions.Event
	seen := map[netip.Prefix]int{}
	for _, dec := range ds {
		b := dec.Ban(d.widen, now)
		p := b.Prefix
		// Never shorten a ban already in force (a permanent manual ban
		// must not become a 10-minute jail ban), nor narrow it (a ban
		// of all traffic must not become one of tcp/22).
		cur, ok := d.core.Lookup(p)
		longer := ok && (cur.Permanent() || (!b.Permanent() && !cur.Expires.Before(b.Expires)))
		if ok && longer && cur.Scope.Covers(b.Scope) {
			d.log.Debug("already banned for longer", "jail", dec.Jail, "addr", p, "by", cur.Jail)
			// The mirror says so; the kernel decides. A ban evicted
			// from a full map comes back here, at its own expiry.
			if _, err := d.core.Ensure(ctx, cur); err != nil {
				d.log.Error("checking the kernel for a ban in force failed", "addr", p, "err", err)
			}
			continue
		}
		if ok && !cur.Expired(now) {
			b.Scope = bans.Union(cur.Scope, b.Scope)
			if longer {
				b.Expires = cur.Expires
			}
		}
		ev := actions.Event{Kind: actions.Ban, Jail: dec.Jail, Addr: dec.Addr, Prefix: p,
			Failures: dec.Failures, BanTime: dec.BanTime, Time: dec.At, Lines: dec.Lines}
		if !dec.Expires.IsZero() { // CLI and fleet decisions carry an end, not a length
			ev.BanTime = max(dec.Expires.Sub(now).Round(time.Second), 0)
		}
		if i, ok := seen[p]; ok {
			bs[i], evs[i] = b, ev
			continue
		}
		seen[p] = len(bs)
		bs = append(bs, b)
		evs = append(evs, ev)
	}
	if err = d.core.BanFor(ctx, bs, ledger.BanCause{Reason: "jail", Events: evs}); err != nil {
		d.log.Error("ban failed", "bans", len(bs), "err", err)
	}
}

// done reports the outcome of applying ds to their sources.
func done(ds []bans.Decision, err error) {
	for _, dec := range ds {
		if dec.Done != nil {
			dec.Done(err)
		}
	}
}

// positionStore is logwatch.Positions on the store.
type positionStore struct{ st *store.Store }

func (p positionStore) Load(key string) (logwatch.Position, bool, error) {
	var pos logwatch.Position
	ok, err := p.st.LoadPosition(key, &pos)
	return pos, ok, err
}

func (p positionStore) Save(key string, pos logwatch.Position) error {
	return p.st.SavePosition(key, pos)
}

var (
	_ control.Handler    = (*Daemon)(nil)
	_ control.Checker    = (*Daemon)(nil)
	_ logwatch.History   = (*store.Store)(nil)
	_ logwatch.Positions = positionStore{}
)
