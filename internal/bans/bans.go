// Package bans holds what every part of xdpban agrees on: the ban record,
// the backend interface that XDP (loader/) and netfilter (fallback/) both
// implement, and the parsing of the addresses an operator or a log names.
//
// Keeping these in one place is what lets the daemon, the CLI, the log
// watcher and the store exchange bans without knowing which backend
// enforces them.
package bans

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Ban is one banned address or prefix.
type Ban struct {
	// Prefix is canonical: masked, IPv4 never written as IPv4-mapped IPv6.
	// A single address is a /32 or /128 (after Normalize's IPv6 widening).
	Prefix netip.Prefix `json:"addr"`
	Jail   string       `json:"jail"`
	// Expires is the wall-clock instant the ban ends; the zero time means
	// permanent.
	Expires time.Time `json:"expires"`
	// Scope is the traffic the ban drops; the zero Scope is all of it
	// (CLI bans, banscope = all). Backends enforce exactly this.
	Scope Scope `json:"scope"`
	// Origin names where the decision came from: "" or the local node
	// for this host's jails and CLI, another node's name for a ban
	// received from the fleet (never republished).
	Origin string `json:"origin,omitempty"`
	// Packets and Bytes are what the backend dropped for this entry. They
	// are filled by List and ignored by Add.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Permanent reports whether the ban never expires.
func (b Ban) Permanent() bool { return b.Expires.IsZero() }

// Expired reports whether the ban has ended at now.
func (b Ban) Expired(now time.Time) bool {
	return !b.Expires.IsZero() && !now.Before(b.Expires)
}

// Remaining is the time left at now; 0 for permanent or expired bans.
func (b Ban) Remaining(now time.Time) time.Duration {
	if b.Expires.IsZero() || !now.Before(b.Expires) {
		return 0
	}
	return b.Expires.Sub(now)
}

// Sentinel errors callers branch on.
var (
	// ErrNotBanned: an unban named something no backend entry matches.
	ErrNotBanned = errors.New("not banned")
	// ErrUnsupported: the backend cannot do this on this host (probe
	// failures wrap it so "auto" knows to fall back).
	ErrUnsupported = errors.New("not supported on this host")
	// ErrFull: a map or set has no room left.
	ErrFull = errors.New("ban table full")
)

// Backend is an enforcement point. Implementations: loader.XDP and
// fallback.IPTables. All methods are safe for concurrent use.
type Backend interface {
	// Kind names the backend: "xdp" or "iptables".
	Kind() string
	// Add inserts or replaces bans (the same prefix twice keeps the last).
	Add(ctx context.Context, bs ...Ban) error
	// Delete removes the exact prefixes given. It returns how many were
	// removed; naming nothing that is banned is not an error (n == 0).
	Delete(ctx context.Context, ps ...netip.Prefix) (n int, err error)
	// Flush removes every ban.
	Flush(ctx context.Context) (n int, err error)
	// List returns all entries, expired ones included, with counters.
	List(ctx context.Context) ([]Ban, error)
	// Expire removes the entries that have ended at now and returns them.
	Expire(ctx context.Context, now time.Time) ([]Ban, error)
	// Status describes interfaces, table fill and global counters.
	Status(ctx context.Context) (Status, error)
	// Close releases handles and leaves enforcement in place, so a
	// restarted daemon (or the kernel, for XDP) keeps dropping.
	Close() error
	// Detach removes everything the backend attached, pinned or added.
	Detach() error
}

// NewAdder is a Backend that adds faster when the caller knows none of
// the bans is in force (the daemon knows from its mirror): it skips
// reading entries back for their counters. An entry there after all
// (expired, not yet swept) is replaced with its counters reset.
type NewAdder interface {
	AddNew(ctx context.Context, bs ...Ban) error
}

// TableFiller is a Backend whose ban tables a caller that mirrors every
// active ban (the daemon) can count itself: counting them in the kernel
// means walking a million entries, half a second for one status.
type TableFiller interface {
	// StatusUncounted is Status with the Entries of the tables TableOf
	// names left at -1 for the caller to fill; other tables are counted.
	StatusUncounted(ctx context.Context) (Status, error)
	// TableOf names the table ban prefix p is kept in.
	TableOf(p netip.Prefix) string
}

// Limiter is a TableFiller whose tables take a bounded number of bans
// and that says how many: a caller that mirrors every ban (the daemon)
// refuses what does not fit, rather than letting the kernel make room by
// evicting bans (XDP's LRU maps do, silently).
type Limiter interface {
	TableFiller
	// Limits are, per table TableOf names, how many bans it takes.
	Limits() map[string]TableLimit
}

// TableLimit is how many bans one table takes.
type TableLimit struct {
	// Limit is the most bans accepted: below the table's capacity when
	// the kernel needs room of its own to never evict.
	Limit int
	// Setting is the configuration key that sizes the table
	// (map_size_v4), for the error that says what to raise.
	Setting string
}

// Holder is a Backend that says, with one lookup, whether it holds a ban
// on exactly p: the daemon checks the kernel before trusting its mirror.
type Holder interface {
	Holds(p netip.Prefix) (bool, error)
}

// Walker is a Backend that hands its entries over one at a time: the
// daemon compares a million kernel bans with its store at start without
// a million-entry list (and its garbage) in memory.
type Walker interface {
	// Walk calls fn with every entry List would return, expired ones
	// included, and stops at fn's first error.
	Walk(ctx context.Context, fn func(Ban) error) error
}

// As finds the optional capability T (NewAdder, Walker, ...) on b or,
// when b is a wrapper that offers Unwrap, on the backend it wraps: a
// wrapper that adds a method must not hide the others.
func As[T any](b Backend) (T, bool) {
	if t, ok := b.(T); ok {
		return t, true
	}
	if u, ok := b.(interface{ Unwrap() Backend }); ok {
		t, ok := u.Unwrap().(T)
		return t, ok
	}
	var zero T
	return zero, false
}

// Walk walks b's entries: through its Walker (see As), else from List.
func Walk(ctx context.Context, b Backend, fn func(Ban) error) error {
	if w, ok := As[Walker](b); ok {
		return w.Walk(ctx, fn)
	}
	bs, err := b.List(ctx)
	if err != nil {
		return err
	}
	for _, x := range bs {
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// Status is what `xdpban status` prints about a backend.
type Status struct {
	Backend    string        `json:"backend"`
	Reason     string        `json:"reason,omitempty"`
	Interfaces []IfaceStatus `json:"interfaces"`
	Tables     []TableStatus `json:"tables"`
	// Counters are global: passed, dropped, expired_pass, not_ip,
	// malformed for XDP; dropped (and whatever the backend can count)
	// otherwise.
	Counters map[string]uint64 `json:"counters"`
}

// IfaceStatus is one interface the backend protects.
type IfaceStatus struct {
	Name string `json:"name"`
	// Mode is "native", "generic", "offload", "gone" (the interface was
	// deleted; XDP comes back when it does) or, for netfilter, "netfilter".
	Mode string `json:"mode"`
}

// TableStatus is the fill of one map or set.
type TableStatus struct {
	Name     string `json:"name"`
	Entries  int    `json:"entries"`
	Capacity int    `json:"capacity"`
	// Limit is the most bans the table accepts when below Capacity (the
	// room an LRU map keeps so that the kernel never evicts); 0 when
	// Capacity is the limit.
	Limit int `json:"limit,omitempty"`
}
