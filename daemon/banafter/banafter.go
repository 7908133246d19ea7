// Package banafter implements ratelimit.banafter: a source the XDP rate
// limiter keeps throttling for longer than a jail's banafter becomes an
// ordinary ban (a bans.Decision handed to the daemon like any other),
// so a persistent SYN flooder ends up in the ban maps instead of being
// shaped forever.
//
// The kernel only says who was throttled and when; the Tracker turns
// those observations into "over the limit continuously since T". A gap
// longer than Grace (the source fell back under its limit) restarts the
// clock, so bursty but legitimate clients that briefly exceed the limit
// are never banned.
package banafter

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// DefaultGrace is how long a source may go unthrottled and still count
// as continuously over the limit: a little over the daemon's poll period
// so that one poll falling between two throttled packets breaks nothing.
const DefaultGrace = 3 * time.Second

// MaxTracked bounds the sources followed at once; a flood from many
// sources must not grow the daemon without limit. When full, new sources
// are ignored until old ones calm down (the kernel keeps throttling them
// regardless).
const MaxTracked = 65536

// Sample is one throttled source as the rate limiter reports it.
type Sample struct {
	Jail string
	Addr netip.Addr
	// Last is when the source was last throttled (a packet dropped over
	// the limit).
	Last time.Time
	// Since, when set, is when the kernel saw the source start exceeding
	// without pause (rl_bucket.over_since_ns); it then overrides the
	// tracker's own continuity estimate.
	Since time.Time
	// Dropped is the number of packets dropped over the limit so far, for
	// the ban notice (informative).
	Dropped uint64
}

type rule struct {
	after   time.Duration
	banTime time.Duration
	limit   string
	scope   bans.Scope
	// ignore is the jail's ignoreip/ignoreself: a flood from an
	// ignored address is throttled by the kernel, never banned.
	ignore *bans.IgnoreList
}

type state struct {
	since, last time.Time
	dropped     uint64
}

type key struct {
	jail string
	addr netip.Addr
}

// Tracker follows throttled sources. It is not safe for concurrent use:
// the daemon's poll loop owns it.
type Tracker struct {
	Grace time.Duration
	// Widen is the daemon's ipv6_prefix policy, applied to a throttled
	// source as to a jail's failures.
	Widen bans.Widen
	rules map[string]rule
	live  map[key]*state
}

// New returns a tracker for the jails that set both ratelimit and
// ratelimit.banafter; the others are ignored. A jail whose ignore list
// cannot be built (ignoreself with no interface list) is left out and
// named in the error: without its ignore list it could ban the host.
func New(jails []config.Jail) (*Tracker, error) {
	t := &Tracker{Grace: DefaultGrace, rules: map[string]rule{}, live: map[key]*state{}}
	var errs []error
	for _, j := range jails {
		rl := j.RateLimit
		if !j.Enabled || rl.Rate <= 0 || rl.BanAfter <= 0 {
			continue
		}
		ign, err := bans.NewIgnoreList(j.IgnoreIP, j.IgnoreSelf)
		if err != nil {
			errs = append(errs, fmt.Errorf("jail %s: ratelimit.banafter off: %w", j.Name, err))
			continue
		}
		t.rules[j.Name] = rule{after: rl.BanAfter, banTime: j.BanTime,
			limit: fmt.Sprintf("%d/%s", rl.Rate, rl.Per), scope: j.Scope, ignore: ign}
	}
	return t, errors.Join(errs...)
}

// Jails reports whether any jail uses banafter (the daemon need not poll
// otherwise).
func (t *Tracker) Jails() int { return len(t.rules) }

// Tracked is the number of sources followed now.
func (t *Tracker) Tracked() int { return len(t.live) }

// Observe takes one poll's throttled sources at now and returns the bans
// due: sources throttled with no gap over Grace for at least their jail's
// banafter. A source is reported once; it is forgotten afterwards (the
// ban stops its traffic, and if it comes back it starts from zero).
func (t *Tracker) Observe(now time.Time, samples []Sample) []bans.Decision {
	var out []bans.Decision
	for _, s := range samples {
		r, ok := t.rules[s.Jail]
		if !ok || !s.Addr.IsValid() || r.ignore.Ignored(s.Addr) {
			continue
		}
		k := key{s.Jail, s.Addr.Unmap()}
		st := t.live[k]
		switch {
		case st == nil:
			if len(t.live) >= MaxTracked {
				continue
			}
			st = &state{since: s.Last, last: s.Last}
			t.live[k] = st
		case s.Last.Sub(st.last) > t.Grace:
			st.since = s.Last // it calmed down in between: start over
		}
		if s.Last.After(st.last) {
			st.last = s.Last
		}
		if !s.Since.IsZero() && !s.Since.After(st.last) {
			st.since = s.Since
		}
		st.dropped = max(st.dropped, s.Dropped)
		if over := st.last.Sub(st.since); over >= r.after {
			// Banned as the jails ban: widened, narrowed around
			// ignored neighbours.
			p, _ := r.ignore.Narrow(t.Widen.Addr(k.addr), k.addr)
			out = append(out, bans.Decision{
				Jail: s.Jail, Addr: k.addr, Prefix: p, Exact: true, Scope: r.scope, BanTime: r.banTime, At: st.last,
				Lines: []string{fmt.Sprintf("rate limit %s exceeded for %s (ratelimit.banafter %s), %d packets dropped over the limit",
					r.limit, over.Round(time.Second), r.after, st.dropped)},
			})
			delete(t.live, k)
		}
	}
	// Forget sources that have calmed down.
	for k, st := range t.live {
		if now.Sub(st.last) > t.Grace {
			delete(t.live, k)
		}
	}
	return out
}

// FromLimiter turns a backend rate limiter's report into samples: sources
// exceeding their limit now (OverSince set), one per source and port.
func FromLimiter(srcs []bans.RateLimitedSource) []Sample {
	out := make([]Sample, 0, len(srcs))
	for _, s := range srcs {
		if s.OverSince.IsZero() || !s.Prefix.IsValid() {
			continue
		}
		out = append(out, Sample{Jail: s.Jail, Addr: s.Prefix.Addr(), Last: s.LastOver,
			Since: s.OverSince, Dropped: s.Dropped})
	}
	return out
}
