package daemon

import (
	"context"
	"time"

	"github.com/xdpban/xdpban/daemon/banafter"
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/loader"
)

// rateLimitSource is a backend with a SYN rate limiter (loader.XDP).
type rateLimitSource interface {
	RateLimited(ctx context.Context) ([]loader.RateLimitedSource, error)
}

// runBanAfter turns sources the rate limiter keeps throttling for longer
// than their jail's ratelimit.banafter into ban decisions, polling once a
// second until ctx ends. A reload takes effect at the next poll.
func (d *Daemon) runBanAfter(ctx context.Context, b bans.Backend, out chan<- bans.Decision) {
	rl, ok := enforce.Unwrap(b).(rateLimitSource)
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
		for _, dec := range tr.Observe(d.opt.Now(), banafter.FromLoader(srcs)) {
			d.log.Info("ratelimit.banafter: banning a source over its rate limit", "jail", dec.Jail, "addr", dec.Addr, "detail", dec.Lines[0])
			select {
			case out <- dec:
			case <-ctx.Done():
				return
			}
		}
	}
}
