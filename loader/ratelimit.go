package loader

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// RateLimitRule limits new TCP connections (SYN without ACK) to one port,
// per source: Rate SYNs per Per on average, Burst at once. A source is an
// IPv4 address or an IPv6 prefix of the ban width (ipv6_prefix), so
// rotating addresses inside a /64 does not reset the bucket.
type RateLimitRule struct {
	Port  uint16
	Jail  string
	Rate  int
	Per   time.Duration
	Burst int // 0: Rate
}

// RateLimitedSource is a throttled source (bans.RateLimitedSource).
type RateLimitedSource = bans.RateLimitedSource

// SetRateLimits replaces the rate-limit rules. Buckets of sources already
// seen are kept, so a configuration reload does not hand every source a
// fresh burst.
func (x *XDP) SetRateLimits(rules []RateLimitRule) error {
	type compiled struct {
		port uint32
		rule xdpbanRlRule
		jail string
	}
	byPort := map[uint16]RateLimitRule{}
	var cs []compiled
	for _, r := range rules {
		if r.Port == 0 {
			return fmt.Errorf("jail %q: rate limit on port 0: give the TCP port to protect", r.Jail)
		}
		if prev, dup := byPort[r.Port]; dup {
			return fmt.Errorf("port %d rate-limited by jails %q and %q: keep one ratelimit per port", r.Port, prev.Jail, r.Jail)
		}
		byPort[r.Port] = r
		if r.Rate < 1 || r.Per <= 0 {
			return fmt.Errorf("jail %q: ratelimit %d/%v: want a positive count per a positive period, e.g. 10/1m", r.Jail, r.Rate, r.Per)
		}
		burst := r.Burst
		if burst == 0 {
			burst = r.Rate
		}
		if burst < 1 {
			return fmt.Errorf("jail %q: ratelimit burst %d: want at least 1", r.Jail, r.Burst)
		}
		interval := r.Per / time.Duration(r.Rate)
		if interval < time.Microsecond {
			return fmt.Errorf("jail %q: ratelimit %d/%v is over a million SYNs per second: that is no limit, lower it", r.Jail, r.Rate, r.Per)
		}
		cs = append(cs, compiled{
			port: uint32(r.Port),
			rule: xdpbanRlRule{IntervalNs: uint64(interval), TauNs: uint64(burst-1) * uint64(interval)},
			jail: r.Jail,
		})
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return err
	}
	for i := range cs {
		id, err := x.jailID(cs[i].jail)
		if err != nil {
			return fmt.Errorf("rate limit on port %d: %w", cs[i].port, err)
		}
		cs[i].rule.JailId = id
	}
	// Clear ports no longer listed, then write the new set.
	var stale []uint32
	err := walkBatch(x.rlRules, func(port uint32, r xdpbanRlRule) error {
		if _, keep := byPort[uint16(port)]; r.IntervalNs != 0 && !keep {
			stale = append(stale, port)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read rl_rules: %w", err)
	}
	for _, port := range stale {
		if err := x.rlRules.Put(port, &xdpbanRlRule{}); err != nil {
			return fmt.Errorf("remove rate limit on port %d: %w", port, err)
		}
	}
	for _, c := range cs {
		if err := x.rlRules.Put(c.port, &c.rule); err != nil {
			return fmt.Errorf("set rate limit on port %d: %w", c.port, err)
		}
	}
	return x.updateMeta(func(m *xdpbanMeta) { m.RatelimitRules = uint32(len(cs)) })
}

// RateLimited lists the sources that had SYNs dropped, most dropped first.
func (x *XDP) RateLimited(ctx context.Context) ([]RateLimitedSource, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return nil, err
	}
	var out []RateLimitedSource
	err := walkBatch(x.rlBuckets, func(k xdpbanRlKey, b xdpbanRlBucket) error {
		if b.Dropped == 0 {
			return ctx.Err()
		}
		a := netip.AddrFrom16(k.Addr)
		var p netip.Prefix
		if a.Is4In6() {
			p = netip.PrefixFrom(a.Unmap(), 32)
		} else {
			p = netip.PrefixFrom(a, x.v6Prefix)
		}
		var port [2]byte
		nativeEndian.PutUint16(port[:], k.Port)
		s := RateLimitedSource{
			Prefix: p, Port: binary.BigEndian.Uint16(port[:]), Jail: x.jailName(b.JailId),
			Dropped: b.Dropped, LastOver: toWall(b.LastOverNs),
		}
		if b.OverSinceNs != 0 {
			s.OverSince = toWall(b.OverSinceNs)
		}
		out = append(out, s)
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read rl_buckets: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dropped > out[j].Dropped })
	return out, nil
}

// RateLimitedByJail returns, per jail, the SYNs dropped for exceeding a
// rate limit, summed over CPUs.
func (x *XDP) RateLimitedByJail() (map[string]uint64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	var id uint32
	var per []uint64
	it := x.rlJailStats.Iterate()
	for it.Next(&id, &per) {
		var sum uint64
		for _, v := range per {
			sum += v
		}
		if sum > 0 {
			out[x.jailName(id)] += sum
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read rl_jail_stats: %w", err)
	}
	return out, nil
}
