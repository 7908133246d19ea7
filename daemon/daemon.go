package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/daemon/banlog"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/daemon/fleet"
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

	core    *Core
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
		stateDir := or(dc.StateDir, DefaultStateDir)
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
	sock := or(dc.Socket, control.DefaultSocket)
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
		d.core = NewCore(backend, d.st, d.bl, d.log)
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
		d.core.Notify = d.runner
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

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

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
	if err = d.core.Ban(ctx, bs); err != nil {
		d.log.Error("ban failed", "bans", len(bs), "err", err)
		return
	}
	d.publish(bs, "jail")
	for _, ev := range evs {
		d.core.NotifyBan(ev)
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

// --- control.Handler ---

// Ban implements control.Handler: the whole request is checked before
// anything is banned, so a bad line bans nothing.
func (d *Daemon) Ban(ctx context.Context, items []control.BanItem) ([]bans.Ban, error) {
	if err := d.waitUp(ctx); err != nil {
		return nil, err
	}
	if d.core == nil {
		return nil, ErrDryRun
	}
	bs, err := d.parseItems(items)
	if err != nil {
		return nil, err
	}
	if err := d.core.Ban(ctx, bs); err != nil {
		return nil, err
	}
	d.publish(bs, "manual")
	now := d.opt.Now()
	for _, b := range bs {
		d.core.NotifyBan(actions.FromBan(actions.Ban, b, now))
	}
	return bs, nil
}

// CheckBan implements control.Checker: whether items fit, banning
// nothing.
func (d *Daemon) CheckBan(ctx context.Context, items []control.BanItem, pending map[string]int) (map[string]int, error) {
	if err := d.waitUp(ctx); err != nil {
		return nil, err
	}
	if d.core == nil {
		return nil, ErrDryRun
	}
	bs, err := d.parseItems(items)
	if err != nil {
		return nil, err
	}
	return d.core.CheckRoom(bs, pending)
}

// jailScope is the scope of a configured jail's bans; a name no jail has
// (manual) bans all traffic.
func (d *Daemon) jailScope(jail string) bans.Scope {
	return JailScope(d.cfg, jail)
}

// JailScope is the scope a ban given to jail by name drops in cfg: the
// jail's own (banscope), or all traffic for a name no jail has.
func JailScope(cfg *config.Config, jail string) bans.Scope {
	if cfg == nil {
		return bans.Scope{}
	}
	if j, ok := cfg.Jail(jail); ok {
		return j.Scope
	}
	return bans.Scope{}
}

// parseItems is ParseItems against the running configuration's
// protected addresses.
func (d *Daemon) parseItems(items []control.BanItem) ([]bans.Ban, error) {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	protected, err := Protected(cfg)
	if err != nil {
		// Without the list a ban could lock the host out: refuse.
		return nil, fmt.Errorf("list the addresses bans must not cover: %w", err)
	}
	bs, err := ParseItems(items, d.widen, d.opt.Now(), ItemRules{Scope: d.jailScope, Protected: protected})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	}
	for i, b := range bs {
		if wide, _ := d.widen.Parse(items[i].Addr); wide != b.Prefix {
			d.log.Warn("manual ban narrowed: the widened prefix would cover a protected address (ignoreip, the host's own)",
				"addr", items[i].Addr, "banned", b.Prefix, "instead_of", wide)
		}
	}
	return bs, nil
}

// ItemRules are what the configuration adds to ParseItems. Scope, when
// set, gives a jail's ban scope (a ban given --jail sshd drops what sshd's
// bans drop); without it, and for a name no jail has, a ban drops all
// traffic. Protected (Protected) is what an item without Force may not
// name or cover; a single address's widened prefix is narrowed around it.
type ItemRules struct {
	Scope     func(jail string) bans.Scope
	Protected *bans.IgnoreList
}

// ParseItems turns CLI ban items into bans: jail defaults to manual, for
// to 1h, "0" is permanent. The first bad item, or one rules refuse, fails
// the lot.
func ParseItems(items []control.BanItem, w bans.Widen, now time.Time, rules ItemRules) ([]bans.Ban, error) {
	out := make([]bans.Ban, 0, len(items))
	for i, it := range items {
		b, err := ParseItem(it, w, now, rules)
		if err != nil {
			if len(items) > 1 {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ParseItem is ParseItems for one item.
func ParseItem(it control.BanItem, w bans.Widen, now time.Time, rules ItemRules) (bans.Ban, error) {
	p, err := w.Parse(it.Addr)
	if err == nil {
		err = CheckWidth(p, it.Addr)
	}
	if err == nil && !it.Force {
		p, err = guard(rules.Protected, it.Addr, p)
	}
	if err != nil {
		return bans.Ban{}, err
	}
	jail := it.Jail
	if jail == "" {
		jail = DefaultJail
	}
	if err := checkJailName(jail); err != nil {
		return bans.Ban{}, err
	}
	d, err := ParseBanTime(it.For)
	if err != nil {
		return bans.Ban{}, err
	}
	b := bans.Ban{Prefix: p, Jail: jail}
	if rules.Scope != nil {
		b.Scope = rules.Scope(jail)
	}
	if d > 0 {
		b.Expires = now.Add(d)
	}
	return b, nil
}

// Widest prefixes a ban may name. 0.0.0.0/0 (or /1 …) drops a large part
// of the internet, the operator's own session included: a typo for /32
// far more often than a wish, and one that locks the operator out.
const (
	minBanBits4 = 8
	minBanBits6 = 16
)

// CheckWidth refuses a prefix wider than a ban may be; typed is what the
// operator wrote, named too when it differs from p.
func CheckWidth(p netip.Prefix, typed string) error {
	min, fam := minBanBits4, "IPv4"
	if p.Addr().Is6() {
		min, fam = minBanBits6, "IPv6"
	}
	if p.Bits() < min {
		return fmt.Errorf("%s is too wide a ban: it would drop a large share of all %s traffic, your own session likely included; ban a /%d or narrower", named(p, typed), fam, min)
	}
	return nil
}

// DefaultBanTime is a CLI ban's duration unless --for says otherwise.
const DefaultBanTime = time.Hour

// ParseBanTime reads --for in fail2ban's duration forms ("600", "90s",
// "10m", "1h30m", "1d", "1w"), with 0, -1 or "permanent" for a permanent
// ban. Empty is DefaultBanTime. It returns 0 for permanent.
func ParseBanTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return DefaultBanTime, nil
	case "0", "-1", "permanent":
		return 0, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid ban duration %q: use a duration such as 90s, 10m, 1h, 1d, or 0 for permanent", s)
	}
	if d < time.Second {
		return 0, fmt.Errorf("invalid ban duration %q: shorter than a second; use at least 1s, or 0 for permanent", s)
	}
	return d, nil
}

func checkJailName(j string) error {
	if len(j) > 64 || strings.ContainsAny(j, "[]/\n\r\t ") {
		return fmt.Errorf("invalid jail name %q: use up to 64 characters without spaces, brackets or slashes", j)
	}
	return nil
}

// Unban implements control.Handler.
func (d *Daemon) Unban(ctx context.Context, req control.UnbanRequest) (int, error) {
	if err := d.waitUp(ctx); err != nil {
		return 0, err
	}
	if d.core == nil {
		return 0, ErrDryRun
	}
	if req.All && req.Jail != "" {
		// An address unban with a wrong jail already fails, naming the
		// jail that holds the ban.
		var running []string
		if d.engine != nil {
			running = d.engine.Names()
		}
		if err := CheckJailKnown(req.Jail, KnownJails(d.core, running)); err != nil {
			return 0, err
		}
	}
	if req.All {
		if len(req.Addrs) > 0 {
			return 0, fmt.Errorf("%w: give addresses or all, not both", control.ErrBadRequest)
		}
		var all []netip.Prefix
		if d.fleet != nil {
			for _, b := range d.core.Active(req.Jail) {
				all = append(all, b.Prefix)
			}
		}
		n, err := d.core.UnbanAll(ctx, req.Jail)
		if err == nil {
			d.publishUnban(all)
		}
		return n, err
	}
	ps := make([]netip.Prefix, 0, len(req.Addrs))
	for _, a := range req.Addrs {
		p, err := d.widen.Parse(a)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
		}
		ps = append(ps, p)
	}
	n, err := d.core.Unban(ctx, ps, req.Jail)
	if err == nil {
		// An operator's unban lifts the ban on every host: what it
		// lifted here (not a prefix --jail left to another jail).
		var lifted []netip.Prefix
		for _, p := range ps {
			if _, held := d.core.Lookup(p); !held {
				lifted = append(lifted, p)
			}
		}
		d.publishUnban(lifted)
		d.forgetFailures(ps)
	}
	return n, err
}

// KnownJails are the jails an unban may name, sorted: those running,
// those holding bans (a manual ban's --jail names one) and the default
// jail of manual bans.
func KnownJails(c *Core, running []string) []string {
	known := map[string]bool{DefaultJail: true}
	for _, j := range running {
		known[j] = true
	}
	for j := range c.Counts() {
		known[j] = true
	}
	return slices.Sorted(maps.Keys(known))
}

// CheckJailKnown refuses a jail name not in known, listing them: "unban
// --all --jail nosuch" lifting nothing with success hid the typo.
func CheckJailKnown(jail string, known []string) error {
	if slices.Contains(known, jail) {
		return nil
	}
	return fmt.Errorf("%w %q: no such jail runs or holds bans; the jails are %s", control.ErrUnknownJail, jail, strings.Join(known, ", "))
}

// List implements control.Handler.
func (d *Daemon) List(ctx context.Context) ([]bans.Ban, error) {
	if d.core == nil {
		return nil, nil
	}
	return d.core.List(ctx)
}

func (d *Daemon) backendStatus(ctx context.Context) (bans.Status, error) {
	if d.core == nil {
		return bans.Status{Backend: "none", Reason: "dry run"}, nil
	}
	// The mirror knows what the tables hold: walking them in the kernel
	// took 0.5-0.8 s per status (and per metrics scrape) at 1M bans.
	// Unwrapped: enforce's wrapper only adds the reason, set below.
	tf, fill := enforce.Unwrap(d.core.Backend).(bans.TableFiller)
	var st bans.Status
	var err error
	if fill {
		st, err = tf.StatusUncounted(ctx)
	} else {
		st, err = d.core.Backend.Status(ctx)
	}
	if err != nil {
		return st, err
	}
	if fill {
		n := d.core.TableFills(tf.TableOf)
		for i := range st.Tables {
			if st.Tables[i].Entries < 0 {
				st.Tables[i].Entries = n[st.Tables[i].Name]
			}
		}
	}
	if st.Reason == "" {
		st.Reason = d.reason
	}
	return st, nil
}

// Status implements control.Handler.
func (d *Daemon) Status(ctx context.Context) (control.Status, error) {
	bst, err := d.backendStatus(ctx)
	if err != nil {
		return control.Status{}, fmt.Errorf("backend status: %w", err)
	}
	st := control.Status{Status: bst, Mode: "daemon", Uptime: d.opt.Now().Sub(d.started).Round(time.Second).String()}
	select {
	case <-d.up:
	default:
		st.Starting = true
	}
	if d.st != nil {
		st.DB = d.st.Path()
	}
	var counts map[string]int
	if d.core != nil {
		bl := d.core.Backlog()
		st.StoreBacklog, st.StoreError = bl.Pending, bl.Err
		st.Fleet = d.fleetStatus()
		counts = d.core.Counts()
		for _, n := range counts {
			st.Bans += n
		}
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	running := map[string]bool{}
	if d.engine != nil {
		for _, n := range d.engine.Names() {
			running[n] = true
		}
	}
	// Like fail2ban-client status: the jails that run, then (below) the
	// ones that only hold bans; the many disabled jails stay out.
	for _, j := range cfg.Jails {
		banned := counts[j.Name]
		if !running[j.Name] && banned == 0 {
			continue
		}
		st.Jails = append(st.Jails, control.JailSummary{Name: j.Name, Enabled: running[j.Name], Banned: banned})
	}
	drops, counted, err := d.rateLimitedDrops()
	if err != nil {
		return control.Status{}, err
	}
	for i := range st.Jails {
		st.Jails[i].RateLimit, st.Jails[i].RateLimited = rateLimitFields(cfg, st.Jails[i].Name, drops, counted)
	}
	// Jails that only exist through bans (manual) are shown too.
	if d.core != nil {
		known := map[string]bool{}
		for _, j := range st.Jails {
			known[j.Name] = true
		}
		extra := map[string]int{}
		for jail, n := range counts {
			if !known[jail] {
				extra[jail] = n
			}
		}
		for _, n := range slices.Sorted(mapKeys(extra)) {
			st.Jails = append(st.Jails, control.JailSummary{Name: n, Banned: extra[n]})
		}
	}
	return st, nil
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// JailStatus implements control.Handler.
func (d *Daemon) JailStatus(ctx context.Context, jail string) (control.JailStatus, error) {
	if err := d.waitUp(ctx); err != nil {
		return control.JailStatus{}, err
	}
	js := control.JailStatus{Name: jail, BannedAddrs: []string{}, Files: []string{}}
	known := false
	if d.engine != nil {
		if s, err := d.engine.Stats(jail); err == nil {
			known = true
			js.CurrentlyFailed = s.CurrentlyFailed
			js.TotalFailed = int(s.TotalFailed)
			for _, src := range s.Sources {
				if src.Kind == "journal" {
					js.Journal = append(js.Journal, src.Name)
				} else {
					js.Files = append(js.Files, src.Name)
				}
			}
		}
	}
	if d.core != nil {
		active := d.core.Active(jail)
		if len(active) > 0 || jail == DefaultJail {
			known = true
		}
		js.CurrentlyBanned = len(active)
		for _, b := range active {
			js.BannedAddrs = append(js.BannedAddrs, b.Prefix.String())
		}
		js.TotalBanned = d.core.TotalBanned(jail)
	}
	if !known {
		return js, fmt.Errorf("%w %q: it is not running; see 'xdpban status' for the jails", control.ErrUnknownJail, jail)
	}
	drops, counted, err := d.rateLimitedDrops()
	if err != nil {
		return js, err
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	js.RateLimit, js.RateLimited = rateLimitFields(cfg, jail, drops, counted)
	js.Timings = jailTimings(cfg, jail)
	return js, nil
}

// jailTimings reads a jail's thresholds from the running configuration.
func jailTimings(cfg *config.Config, name string) *control.JailTimings {
	if cfg == nil {
		return nil
	}
	for _, j := range cfg.Jails {
		if j.Name != name || !j.Enabled {
			continue
		}
		t := &control.JailTimings{MaxRetry: j.MaxRetry, FindTime: j.FindTime.String(), BanTime: j.BanTime.String(), Increment: j.Increment.Enabled}
		if j.BanTime < 0 {
			t.BanTime = "permanent"
		}
		if j.Increment.Enabled {
			t.Factor = j.Increment.Factor
			if j.Increment.MaxTime > 0 {
				t.MaxTime = j.Increment.MaxTime.String()
			}
		}
		return t
	}
	return nil
}

// Reload implements control.Handler: re-reads the configuration and
// restarts the jails (only the one named when jail is set). Bans stay.
// The warnings (also in the log) go back to whoever asked for the
// reload, who otherwise sees only that it worked.
func (d *Daemon) Reload(ctx context.Context, jail string) ([]string, error) {
	if err := d.waitUp(ctx); err != nil {
		return nil, err
	}
	cfg := d.cfg
	if d.opt.LoadConfig != nil {
		var err error
		cfg, err = d.opt.LoadConfig()
		if err != nil {
			// The operator's file to fix; the old configuration stays.
			return nil, fmt.Errorf("%w: configuration not reloaded, the running one stays: %w", control.ErrBadRequest, err)
		}
	}
	warns := reloadWarnings(cfg, jail)
	old := d.cfg.Daemon
	if cfg.Daemon.Backend != old.Backend || !slices.Equal(cfg.Daemon.Interfaces, old.Interfaces) || cfg.Daemon.IPv6Prefix != old.IPv6Prefix {
		const w = "backend, interfaces or ipv6_prefix changed: restart the daemon to apply them"
		d.log.Warn(w)
		warns = append(warns, w)
	}
	if !reflect.DeepEqual(cfg.Daemon.Fleet, old.Fleet) {
		// The membership (node, servers, the embedded node) is made once.
		const w = "[fleet] changed: restart the daemon to apply it"
		d.log.Warn(w)
		warns = append(warns, w)
	}
	if err := d.bl.Reopen(); err != nil {
		d.log.Error("reopen ban log failed", "err", err)
		warns = append(warns, fmt.Sprintf("reopen ban log: %v: bans and unbans are not logged there", err))
	}
	if d.runCtx == nil || d.engine == nil {
		return nil, errors.New("daemon not running")
	}
	p, err := d.prepare(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: configuration not reloaded, the running one stays: %w", control.ErrBadRequest, err)
	}
	if err := d.startJails(d.runCtx, cfg, p, jail); err != nil {
		return nil, err
	}
	if d.core != nil {
		if n, err := d.core.Reconcile(ctx, true); err != nil {
			warns = append(warns, fmt.Sprintf("checking the kernel maps against the store: %v", err))
		} else if n > 0 {
			warns = append(warns, fmt.Sprintf("%d bans were missing from the kernel (evicted or removed behind the daemon's back) and were put back", n))
		}
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.log.Info("configuration reloaded", "jail", jail, "warnings", len(warns))
	return warns, nil
}

// reloadWarnings lists what cfg sets for the reloaded jails (all when
// jail is empty) that is not applied: settings not used (Notes) and
// fail2ban jails that could not be translated.
func reloadWarnings(cfg *config.Config, jail string) []string {
	var out []string
	for _, j := range cfg.Jails {
		if !j.Enabled || (jail != "" && j.Name != jail) {
			continue
		}
		for _, n := range j.Notes {
			out = append(out, fmt.Sprintf("jail %s: setting not used: %s", j.Name, n))
		}
	}
	for _, b := range cfg.Broken {
		if jail == "" || b.Name == jail {
			out = append(out, fmt.Sprintf("fail2ban jail %s (%s) skipped: cannot be translated: %v", b.Name, b.Source, b.Err))
		}
	}
	return out
}

// Detach implements control.Handler: removes all enforcement and stops
// the daemon. The stored bans stay, so the next start puts them back.
func (d *Daemon) Detach(ctx context.Context) error {
	if err := d.waitUp(ctx); err != nil {
		return err
	}
	if d.core == nil {
		d.stop(errDetached)
		return nil
	}
	// Stop sweeping and banning first.
	d.core.gate.Lock()
	err := d.core.Backend.Detach()
	d.detached = true
	d.core.gate.Unlock()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	d.log.Info("enforcement detached on request; stored bans are kept for the next start")
	d.stop(errDetached)
	return nil
}

func (d *Daemon) jailCounters() []metrics.JailCounters {
	if d.engine == nil {
		return nil
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	// Read at scrape time, like the backend's dropped packets; a failed
	// read leaves the figure out (xdpban_backend_up tells the backend's
	// health) rather than failing the whole scrape.
	drops, counted, err := d.rateLimitedDrops()
	if err != nil {
		d.log.Warn("metrics: rate-limited drops not read", "err", err)
	}
	jp, jb, jcounted, err := d.jailDrops()
	if err != nil {
		d.log.Warn("metrics: drops per jail not read", "err", err)
	}
	var out []metrics.JailCounters
	for _, n := range d.engine.Names() {
		s, err := d.engine.Stats(n)
		if err != nil {
			continue
		}
		jc := metrics.JailCounters{Jail: n, Failures: s.TotalFailed, CurrentlyFailed: s.CurrentlyFailed,
			Filter: s.Filter, RegexTimeouts: s.Timeouts, Evicted: s.Evicted, Ignored: s.Ignored, Narrowed: s.Narrowed}
		_, jc.RateLimited = rateLimitFields(cfg, n, drops, counted)
		if jcounted {
			p, b := jp[n], jb[n]
			jc.DroppedPackets, jc.DroppedBytes = &p, &b
		}
		for _, src := range s.Sources {
			jc.Sources = append(jc.Sources, metrics.SourceCounters{Log: src.Name, Read: src.LinesRead, Skipped: src.LinesSkipped, BytesLost: src.BytesLost})
		}
		out = append(out, jc)
	}
	return out
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
