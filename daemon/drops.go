package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/internal/bans"
)

// startDrops reads the XDP program's drop events (sampled in the kernel
// by drop_log_rate/drop_log_global) for as long as ctx lasts: to the log
// when log_drops is set, and to `xdpban watch` streams. The ring buffer
// has a single reader, so the daemon reads it whether or not anyone
// watches. Other backends have no drop events; d.drops stays nil.
func (d *Daemon) startDrops(ctx context.Context, b bans.Backend) {
	if b == nil {
		return
	}
	src, ok := bans.As[bans.DropSource](b)
	if !ok {
		return
	}
	evs, err := src.DropEvents(ctx)
	if err != nil {
		d.log.Warn("drop events unavailable: xdpban watch and log_drops will stay silent", "err", err)
		return
	}
	d.drops = drops.NewHub()
	var log *slog.Logger
	if d.cfg.Daemon.LogDrops {
		log = d.log
	}
	go drops.Pump(ctx, drops.Convert(ctx, evs), d.drops, log)
}

// stopDrops ends open watch streams; the control socket's Shutdown would
// otherwise wait for them.
func (d *Daemon) stopDrops() {
	if d.drops != nil {
		d.drops.Close()
	}
}

// WatchDrops implements control.DropWatcher (GET /v1/drops).
func (d *Daemon) WatchDrops(ctx context.Context, filter netip.Prefix) (<-chan drops.Event, error) {
	if err := d.waitUp(ctx); err != nil {
		return nil, err
	}
	if d.drops == nil {
		kind := "dry-run"
		if d.core != nil {
			kind = d.core.Backend.Kind()
		}
		return nil, fmt.Errorf("%w: the %s backend reports no drop events: watch needs the xdp backend", bans.ErrUnsupported, kind)
	}
	d.mu.Lock()
	rate := d.cfg.Daemon.DropLogRate
	d.mu.Unlock()
	if rate == 0 {
		// The kernel sends nothing: say so rather than stream silence.
		return nil, fmt.Errorf("%w: drop events are off (drop_log_rate = 0): set drop_log_rate in xdpban.local and restart", bans.ErrUnsupported)
	}
	ch, _ := d.drops.Subscribe(ctx, filter, 256)
	return ch, nil
}

var _ control.DropWatcher = (*Daemon)(nil)
