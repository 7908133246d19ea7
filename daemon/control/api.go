// Package control is the daemon's control socket: HTTP with JSON bodies
// over a unix socket, so every CLI command reaches the one process that
// owns the maps and the database. The server checks each peer's
// credentials (SO_PEERCRED) and refuses bad input without disturbing the
// daemon. The JSON shapes here are the stable `--json` output of the CLI.
package control

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// DefaultSocket is the control socket's path unless configured.
const DefaultSocket = "/run/xdpban/xdpban.sock"

// MaxBody is the largest request body accepted (a batch of bans from a
// file is sent in chunks below it).
const MaxBody = 1 << 20

// Sentinels the handler returns and the client hands back to the CLI.
var (
	// ErrBadRequest: the request named something invalid (address, jail,
	// duration). The CLI exits 2.
	ErrBadRequest = errors.New("bad request")
	// ErrNoDaemon: nothing listens on the socket.
	ErrNoDaemon = errors.New("daemon not running")
	// ErrForbidden: the peer is not allowed to use the socket.
	ErrForbidden = errors.New("permission denied")
	// ErrUnknownJail: a jail name that is not configured.
	ErrUnknownJail = errors.New("unknown jail")
	// ErrBusy: the socket's every connection is in a request
	// (Limits.MaxConns); retrying shortly works.
	ErrBusy = errors.New("control socket busy")
)

// BanItem is one ban as the CLI asks for it. Addr is what the operator
// typed; the daemon parses it with its configured IPv6 widening.
type BanItem struct {
	Addr string `json:"addr"`
	Jail string `json:"jail"`
	// For is the ban duration as a Go duration ("1h", "90s"); "0" means
	// permanent.
	For string `json:"for"`
	// Force bans an address that is protected (ignoreip, the host's
	// own, loopback) or a prefix covering one; refused otherwise.
	Force bool `json:"force,omitempty"`
}

// BanRequest is POST /v1/ban.
type BanRequest struct {
	Bans []BanItem `json:"bans"`
	// Check bans nothing: it asks whether Bans, with Pending more new
	// bans per table (the earlier parts of an import), fit in the
	// backend's tables. An import sent in parts checks every part first,
	// so it is refused whole or not at all.
	Check   bool           `json:"check,omitempty"`
	Pending map[string]int `json:"pending,omitempty"`
}

// BanResponse reports what was banned (canonical prefixes), or for a
// Check, how many of the bans are new per table.
type BanResponse struct {
	Banned []string       `json:"banned"`
	New    map[string]int `json:"new,omitempty"`
}

// Checker is a Handler that answers BanRequest.Check.
type Checker interface {
	CheckBan(ctx context.Context, items []BanItem, pending map[string]int) (map[string]int, error)
}

// UnbanRequest is POST /v1/unban: the listed addresses, or every ban
// (All), optionally only those of one jail.
type UnbanRequest struct {
	Addrs []string `json:"addrs,omitempty"`
	Jail  string   `json:"jail,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// UnbanResponse reports how many bans were lifted.
type UnbanResponse struct {
	Removed int `json:"removed"`
}

// Entry is one line of `xdpban list --json`.
type Entry struct {
	Addr    string  `json:"addr"`
	Jail    string  `json:"jail"`
	Expires *string `json:"expires"` // RFC 3339, null when permanent
	// Scope is what the ban drops: "all", or "tcp/22" and the like for a
	// banscope = port jail's ban. Absent from older daemons: all.
	Scope   string `json:"scope"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Origin is the fleet node that decided a ban received from the
	// fleet; absent for this host's own bans.
	Origin string `json:"origin,omitempty"`
}

// EntryOf converts a ban to its list entry.
func EntryOf(b bans.Ban) Entry {
	e := Entry{Addr: b.Prefix.String(), Jail: b.Jail, Scope: b.Scope.String(), Packets: b.Packets, Bytes: b.Bytes, Origin: b.Origin}
	if !b.Expires.IsZero() {
		s := b.Expires.UTC().Format(time.RFC3339)
		e.Expires = &s
	}
	return e
}

// Ban converts a list entry back (used by the CLI to print time left).
func (e Entry) Ban() (bans.Ban, error) {
	p, err := netip.ParsePrefix(e.Addr)
	if err != nil {
		return bans.Ban{}, err
	}
	b := bans.Ban{Prefix: p, Jail: e.Jail, Packets: e.Packets, Bytes: e.Bytes, Origin: e.Origin}
	if b.Scope, err = bans.ParseScopeString(e.Scope); err != nil {
		return bans.Ban{}, err
	}
	if e.Expires != nil {
		t, err := time.Parse(time.RFC3339, *e.Expires)
		if err != nil {
			return bans.Ban{}, err
		}
		b.Expires = t
	}
	return b, nil
}

// Status is `xdpban status --json`.
type Status struct {
	bans.Status
	// Mode is "daemon" when a daemon answered, "direct" when the CLI read
	// the pinned maps itself.
	Mode   string        `json:"mode"`
	Bans   int           `json:"bans"`
	Jails  []JailSummary `json:"jails"`
	DB     string        `json:"db,omitempty"`
	Uptime string        `json:"uptime,omitempty"`
	// Starting is set while the daemon serves but has not finished its
	// start: the kernel is being compared with the store, the jails are
	// not yet reading; bans and other changes wait for it.
	Starting bool `json:"starting,omitempty"`
	// StoreBacklog is the bans and unbans in force but not yet in the
	// ban database, which refused the write (full disk); StoreError is
	// its last error. Both empty while the database takes every write.
	StoreBacklog int    `json:"store_backlog,omitempty"`
	StoreError   string `json:"store_error,omitempty"`
	// Fleet is the host's membership of the fleet; nil (left out) when
	// [fleet] is off.
	Fleet *FleetStatus `json:"fleet,omitempty"`
}

// FleetStatus is the fleet part of the status: the NATS connection,
// the bucket, and what this host published, received and refused.
type FleetStatus struct {
	Node      string `json:"node"`
	Connected bool   `json:"connected"`
	// InStep: connected, and the bucket's snapshot is read and applied
	// (after a (re)connect it is false until the host has caught up).
	InStep    bool     `json:"in_step"`
	Server    string   `json:"server,omitempty"` // the one connected to
	Servers   []string `json:"servers"`
	Embedded  string   `json:"embedded,omitempty"` // the embedded node's listen address
	Bucket    string   `json:"bucket"`
	Values    uint64   `json:"values"` // bans (and markers) in the bucket
	Outbox    int      `json:"outbox"` // changes waiting to be published
	Published uint64   `json:"published"`
	Received  uint64   `json:"received"`
	// Refused counts remote bans refused here, by reason (ignoreip,
	// ignoreself, too_wide, bad_record, bad_key, failed).
	Refused map[string]uint64 `json:"refused,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// JailSummary is a jail in the daemon status (fail2ban-client status).
type JailSummary struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Banned  int    `json:"banned"`
	// RateLimit is the jail's ratelimit setting ("10/1m,burst=20"),
	// empty (and left out) when it has none.
	RateLimit string `json:"ratelimit,omitempty"`
	// RateLimited is the SYNs the kernel dropped for exceeding the jail's
	// ratelimit. nil (left out) when the jail has no ratelimit or the
	// backend does not rate-limit (iptables): a 0 there would claim a
	// limit that is not enforced.
	RateLimited *uint64 `json:"ratelimited,omitempty"`
}

// JailStatus is `xdpban status JAIL --json`, fail2ban-client's fields.
type JailStatus struct {
	Name            string   `json:"name"`
	CurrentlyFailed int      `json:"currently_failed"`
	TotalFailed     int      `json:"total_failed"`
	CurrentlyBanned int      `json:"currently_banned"`
	TotalBanned     int      `json:"total_banned"`
	BannedAddrs     []string `json:"banned"`
	Files           []string `json:"files"`
	Journal         []string `json:"journal,omitempty"`
	// RateLimit and RateLimited as in JailSummary.
	RateLimit   string  `json:"ratelimit,omitempty"`
	RateLimited *uint64 `json:"ratelimited,omitempty"`
	// Timings are the jail's configured thresholds (nil when the jail
	// is not in the running configuration, e.g. "manual").
	Timings *JailTimings `json:"timings,omitempty"`
}

// JailTimings are what decides a jail's bans, as configured.
// Durations are Go duration strings ("10m0s"); BanTime "permanent" for
// bantime -1.
type JailTimings struct {
	MaxRetry  int     `json:"maxretry"`
	FindTime  string  `json:"findtime"`
	BanTime   string  `json:"bantime"`
	Increment bool    `json:"bantime_increment"`
	Factor    float64 `json:"bantime_factor,omitempty"`
	MaxTime   string  `json:"bantime_maxtime,omitempty"`
}

// ReloadRequest is POST /v1/reload; an empty Jail reloads everything.
type ReloadRequest struct {
	Jail string `json:"jail,omitempty"`
}

// ReloadResponse is POST /v1/reload's answer. Warnings are what the new
// configuration asks that is not applied (unknown or fail2ban-only
// settings, jails that cannot be translated, changes that need a
// restart): the reload happened, but an operator who only looks at the
// CLI must see them too. Never null.
type ReloadResponse struct {
	Warnings []string `json:"warnings"`
}

// ImportMaxBody bounds POST /v1/import: ten million lines of 50 bytes.
const ImportMaxBody = 512 << 20

// ImportRequest is POST /v1/import?jail=J&for=D&force=1. The body is the
// file itself (text, one address or CIDR a line, '#' comments), banned
// whole or not at all under Jail for For.
type ImportRequest struct {
	Jail, For string
	Force     bool
	// Size is the body's length when known (the request's
	// Content-Length), so that it is read in one allocation; 0: unknown.
	Size int64
}

// ImportResponse is POST /v1/import's answer.
type ImportResponse struct {
	Banned int `json:"banned"`
}

// Importer is a Handler that takes a file of bans in one request: parsed
// and checked whole, enforced in one batch, stored in bulk.
type Importer interface {
	Import(ctx context.Context, req ImportRequest, body io.Reader) (ImportResponse, error)
}

// Service is what the CLI asks of xdpban's state, one way whatever runs:
// Client, over a running daemon's socket; with no daemon, the CLI's own
// implementation on the pinned maps and the store. A command never asks
// which.
type Service interface {
	// Ban bans items and returns the prefixes banned, in order.
	Ban(ctx context.Context, items []BanItem) ([]string, error)
	// Import bans a file of addresses whole (ImportRequest).
	Import(ctx context.Context, req ImportRequest, body io.Reader) (int, error)
	Unban(ctx context.Context, req UnbanRequest) (int, error)
	List(ctx context.Context) ([]Entry, error)
	Status(ctx context.Context) (Status, error)
	JailStatus(ctx context.Context, jail string) (JailStatus, error)
	Close()
}

var _ Service = (*Client)(nil)

// Handler is what the daemon implements behind the socket.
type Handler interface {
	Ban(ctx context.Context, items []BanItem) ([]bans.Ban, error)
	Unban(ctx context.Context, req UnbanRequest) (int, error)
	List(ctx context.Context) ([]bans.Ban, error)
	Status(ctx context.Context) (Status, error)
	JailStatus(ctx context.Context, jail string) (JailStatus, error)
	Reload(ctx context.Context, jail string) (warnings []string, err error)
	Detach(ctx context.Context) error
}

// errorBody is every non-2xx response.
type errorBody struct {
	Error string `json:"error"`
	// Kind is the sentinel the error wraps, for the client to rebuild it:
	// bad_request, not_banned, unknown_jail, forbidden, unsupported, full.
	Kind string `json:"kind,omitempty"`
	// Lines and Total are a refused ban file's bad lines (BadLinesError).
	Lines []string `json:"lines,omitempty"`
	Total int      `json:"total,omitempty"`
}
