package daemon

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/fleet"
	"github.com/xdpban/xdpban/internal/bans"
)

// The fleet (daemon/fleet) is one more source of decisions: what other
// hosts ban enters through the same intake as the jails' decisions, and
// what this host decides (jails, CLI) is published once it is enforced
// and stored here.

// startFleet joins the fleet the configuration describes, if any.
// Joining never holds up the start: an unreachable fleet only means the
// bans decided here wait in the outbox.
func (d *Daemon) startFleet(ctx context.Context, in chan<- bans.Decision) (stop func(), err error) {
	fc := d.cfg.Daemon.Fleet
	if !fc.Enabled || d.core == nil {
		return func() {}, nil
	}
	if fc.StoreDir == "" {
		fc.StoreDir = filepath.Join(cmp.Or(d.cfg.Daemon.StateDir, DefaultStateDir), "fleet")
	}
	f, err := fleet.New(fc, d.st, fleetSink{d, in}, d.log)
	if err != nil {
		return nil, err
	}
	if err := f.Start(); err != nil {
		return nil, err
	}
	if d.met != nil {
		d.met.Registry.MustRegister(f.Collector())
	}
	d.fleet = f
	fctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.Run(fctx)
	}()
	d.log.Info("fleet joined", "node", f.Node(), "servers", f.Status().Servers, "embedded", fc.Listen)
	return func() {
		cancel()
		wg.Wait()
		f.Close()
	}, nil
}

// local reports whether b was decided on this host.
func (d *Daemon) local(b bans.Ban) bool {
	return b.Origin == "" || (d.fleet != nil && b.Origin == d.fleet.Node())
}

// publish shares the bans this host decided among bs, which are enforced
// and stored: a failure leaves them in force here, only not shared.
func (d *Daemon) publish(bs []bans.Ban, reason string) {
	if d.fleet == nil {
		return
	}
	var mine []bans.Ban
	for _, b := range bs {
		if d.local(b) {
			mine = append(mine, b)
		}
	}
	if len(mine) == 0 {
		return
	}
	if err := d.fleet.Publish(mine, reason); err != nil {
		d.log.Error("fleet: queueing bans for the other hosts failed; they are enforced here", "bans", len(mine), "err", err)
	}
}

// publishUnban lifts ps on every host.
func (d *Daemon) publishUnban(ps []netip.Prefix) {
	if d.fleet == nil || len(ps) == 0 {
		return
	}
	if err := d.fleet.Unban(ps); err != nil {
		d.log.Error("fleet: queueing unbans for the other hosts failed; lifted here only", "unbans", len(ps), "err", err)
	}
}

// fleetSink is the daemon as the fleet's sink.
type fleetSink struct {
	d  *Daemon
	in chan<- bans.Decision
}

// refusal is why a remote ban on p is refused here, "" when it is not:
// this host's ignoreip and own addresses win over any other host's ban,
// even one that merely overlaps them, and so does the width limit.
func refusal(l *bans.IgnoreList, p netip.Prefix) (reason, detail string) {
	if err := CheckWidth(p, p.String()); err != nil {
		return "too_wide", err.Error()
	}
	if l == nil {
		return "", ""
	}
	if q, why, hit := l.Overlap(p); hit {
		reason = "ignoreself"
		if strings.Contains(why, "ignoreip") {
			reason = "ignoreip"
		}
		return reason, q.String() + " is " + why
	}
	return "", ""
}

func (s fleetSink) RemoteBans(ctx context.Context, rs []fleet.Record) []string {
	d := s.d
	why := make([]string, len(rs))
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	protected, err := Protected(cfg)
	if err != nil {
		// Without the list a remote ban could cut this host off.
		d.log.Error("fleet: refusing remote bans: cannot list the addresses bans must not cover", "bans", len(rs), "err", err)
		for i := range why {
			why[i] = "failed"
		}
		return why
	}
	now := d.opt.Now()
	var mu sync.Mutex
	var ds []bans.Decision
	results := make(chan struct{}, len(rs))
	for i, r := range rs {
		if reason, detail := refusal(protected, r.Prefix); reason != "" {
			why[i] = reason
			d.log.Warn("fleet: refusing a remote ban", "addr", r.Prefix, "origin", r.Origin, "jail", r.Jail, "reason", reason, "detail", detail)
			continue
		}
		if !r.Expires.IsZero() && !now.Before(r.Expires) {
			continue // ended on its way here
		}
		dec := bans.Decision{Jail: r.Jail, Prefix: r.Prefix, Exact: true, Expires: r.Expires, Scope: r.Scope,
			Origin: r.Origin, At: now}
		if r.Expires.IsZero() {
			dec.BanTime = -1
		}
		dec.Done = func(err error) {
			if err != nil {
				mu.Lock()
				why[i] = "failed"
				mu.Unlock()
			}
			results <- struct{}{}
		}
		ds = append(ds, dec)
	}
	// The intake batches these with the jails' decisions and keeps one
	// prefix's changes in order; each is done once enforced and stored.
	sent := 0
wait:
	for _, dec := range ds {
		select {
		case s.in <- dec:
			sent++
		case <-ctx.Done():
			break wait
		}
	}
	for n := 0; n < sent && ctx.Err() == nil; n++ {
		select {
		case <-results:
		case <-ctx.Done():
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), why...)
}

func (s fleetSink) RemoteUnban(ctx context.Context, ps []netip.Prefix) {
	d := s.d
	if _, err := d.core.UnbanFrom(ctx, ps, "", "remote"); err != nil && !errors.Is(err, bans.ErrNotBanned) {
		d.log.Error("fleet: lifting bans unbanned on another host failed", "bans", len(ps), "err", err)
		return
	}
	d.forgetFailures(ps)
}

func (s fleetSink) Reconcile(ctx context.Context, live map[netip.Prefix]fleet.Record, deleted []netip.Prefix) []bans.Ban {
	d := s.d
	gone := map[netip.Prefix]bool{}
	for _, p := range deleted {
		gone[p] = true
	}
	var lift []netip.Prefix
	var republish []bans.Ban
	now := d.opt.Now()
	for _, b := range d.core.Active("") {
		if b.Expired(now) {
			continue
		}
		r, inBucket := live[b.Prefix]
		switch {
		case gone[b.Prefix]:
			lift = append(lift, b.Prefix)
		case !d.local(b):
			// A remote ban the bucket no longer holds ended or was
			// lifted while this host was away.
			if !inBucket {
				lift = append(lift, b.Prefix)
			}
		case !inBucket || !r.Covers(fleet.RecordOf(b, d.fleet.Node(), "")):
			republish = append(republish, b)
		}
	}
	if len(lift) > 0 {
		d.log.Info("fleet: lifting bans that ended or were unbanned elsewhere while away", "bans", len(lift))
		s.RemoteUnban(ctx, lift)
	}
	return republish
}

// forgetFailures drops the jails' failure counts for unbanned prefixes,
// as an unban here does.
func (d *Daemon) forgetFailures(ps []netip.Prefix) {
	if d.engine == nil {
		return
	}
	for _, p := range ps {
		for _, j := range d.engine.Names() {
			d.engine.Forget(j, p.Addr())
		}
	}
}

// fleetStatus is the fleet's part of `xdpban status`.
func (d *Daemon) fleetStatus() *control.FleetStatus {
	if d.fleet == nil {
		return nil
	}
	st := d.fleet.Status()
	return &control.FleetStatus{Node: st.Node, Connected: st.Connected, InStep: st.InStep, Server: st.Server, Servers: st.Servers,
		Embedded: st.Embedded, Bucket: st.Bucket, Values: st.Values, Outbox: st.Outbox,
		Published: st.Published, Received: st.Received, Refused: st.Refused, Error: st.Error}
}

var _ fleet.Sink = fleetSink{}
