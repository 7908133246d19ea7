package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/daemon/ledger"
	"github.com/xdpban/xdpban/daemon/metrics"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// --- control.Handler ---

// Ban implements control.Handler: the whole request is checked before
// anything is banned, so a bad line bans nothing.
func (d *Daemon) Ban(ctx context.Context, items []control.BanItem) ([]bans.Ban, error) {
	bs, err := d.manualBans(ctx, items)
	if err != nil {
		return nil, err
	}
	if err := d.core.Ban(ctx, bs); err != nil {
		return nil, err
	}
	return bs, nil
}

// CheckBan implements control.Checker: whether items fit, banning
// nothing.
func (d *Daemon) CheckBan(ctx context.Context, items []control.BanItem, pending map[string]int) (map[string]int, error) {
	bs, err := d.manualBans(ctx, items)
	if err != nil {
		return nil, err
	}
	return d.core.CheckRoom(bs, pending)
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
		// The fleet hears of it from Core, as of every unban.
		return d.core.UnbanAll(ctx, req.Jail)
	}
	ps := make([]netip.Prefix, 0, len(req.Addrs))
	for _, a := range req.Addrs {
		p, err := d.widen.Parse(a)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
		}
		ps = append(ps, p)
	}
	// An operator's unban lifts the ban on every host: Core tells the
	// fleet what it lifted here (not a prefix --jail left to another).
	n, err := d.core.Unban(ctx, ps, req.Jail)
	if err == nil {
		d.forgetFailures(ps)
	}
	return n, err
}

// KnownJails are the jails an unban may name, sorted: those running,
// those holding bans (a manual ban's --jail names one) and the default
// jail of manual bans.
func KnownJails(c *ledger.Core, running []string) []string {
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
		for _, n := range slices.Sorted(maps.Keys(extra)) {
			st.Jails = append(st.Jails, control.JailSummary{Name: n, Banned: extra[n]})
		}
	}
	return st, nil
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
	err := d.core.Exclusive(func() error {
		d.detached = true
		return d.core.Backend.Detach()
	})
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
