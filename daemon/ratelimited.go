package daemon

import (
	"fmt"

	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/internal/config"
)

// rateLimitCounter is a backend whose SYN rate limiter counts its drops
// per jail (loader.XDP). The iptables backend does not rate-limit.
type rateLimitCounter interface {
	RateLimitedByJail() (map[string]uint64, error)
}

// rateLimitedDrops reads the kernel's per-jail rate-limit drop counts;
// ok is false when the backend has no rate limiter (or in a dry run), so
// callers show "n/a" rather than a 0 that would claim enforcement.
func (d *Daemon) rateLimitedDrops() (drops map[string]uint64, ok bool, err error) {
	if d.core == nil {
		return nil, false, nil
	}
	rc, ok := enforce.Unwrap(d.core.Backend).(rateLimitCounter)
	if !ok {
		return nil, false, nil
	}
	drops, err = rc.RateLimitedByJail()
	if err != nil {
		return nil, false, fmt.Errorf("read rate-limited drops per jail: %w", err)
	}
	return drops, true, nil
}

// jailRateLimit is the ratelimit of the named jail when it is enabled
// and has one (the only jails whose limit the kernel was given).
func jailRateLimit(cfg *config.Config, name string) (config.RateLimit, bool) {
	j, found := cfg.Jail(name)
	if !found || !j.Enabled || j.RateLimit.Rate <= 0 {
		return config.RateLimit{}, false
	}
	return j.RateLimit, true
}

// rateLimitFields are a jail's ratelimit setting and drops as the control
// API carries them: both empty without a limit, drops nil when the
// backend does not count them.
func rateLimitFields(cfg *config.Config, name string, drops map[string]uint64, counted bool) (string, *uint64) {
	rl, ok := jailRateLimit(cfg, name)
	if !ok {
		return "", nil
	}
	if !counted {
		return rl.String(), nil
	}
	n := drops[name]
	return rl.String(), &n
}

// jailDropCounter is a backend that counts its drops per jail over its
// life (loader.XDP's jail_drops), not only per ban in force.
type jailDropCounter interface {
	DroppedByJail() (packets, bytes map[string]uint64, err error)
}

// jailDrops reads the kernel's per-jail drop counts; ok is false when the
// backend does not keep them.
func (d *Daemon) jailDrops() (packets, bytes map[string]uint64, ok bool, err error) {
	if d.core == nil {
		return nil, nil, false, nil
	}
	jc, ok := enforce.Unwrap(d.core.Backend).(jailDropCounter)
	if !ok {
		return nil, nil, false, nil
	}
	packets, bytes, err = jc.DroppedByJail()
	if err != nil {
		return nil, nil, false, fmt.Errorf("read drops per jail: %w", err)
	}
	return packets, bytes, true, nil
}
