package daemon

import (
	"context"
	"time"

	"github.com/xdpban/xdpban/daemon/banafter"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// runBanAfter turns sources the rate limiter keeps throttling for longer
// than their jail's ratelimit.banafter into ban decisions, polling once a
// second until ctx ends. A reload takes effect at the next poll.
func (d *Daemon) runBanAfter(ctx context.Context, b bans.Backend, out chan<- bans.Decision) {
	rl, ok := bans.As[bans.RateLimiter](b)
	if !ok {
		return
	}
	var (
		cfg *config.Config
		tr  *banafter.Tracker
	)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.mu.Lock()
		c := d.cfg
		d.mu.Unlock()
		if c != cfg {
			var err error
			cfg = c
			if tr, err = banafter.New(c.Jails); err != nil {
				d.log.Warn("ratelimit.banafter", "err", err)
			}
			tr.Widen = d.widen
		}
		if tr.Jails() == 0 {
			continue
		}
		srcs, err := rl.RateLimited(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("ratelimit.banafter: reading rate-limited sources failed", "err", err)
			}
			continue
		}
		for _, dec := range tr.Observe(d.opt.Now(), banafter.FromLimiter(srcs)) {
			d.log.Info("ratelimit.banafter: banning a source over its rate limit", "jail", dec.Jail, "addr", dec.Addr, "detail", dec.Lines[0])
			select {
			case out <- dec:
			case <-ctx.Done():
				return
			}
		}
	}
}
