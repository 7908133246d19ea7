// Package config loads xdpban's configuration, written in fail2ban's
// dialect (xdpban.conf / jail.conf, jail.d/*.conf, *.local overrides,
// [INCLUDES], %(name)s interpolation) so an operator's jail.local can be
// copied over, and fail2ban's own /etc/fail2ban tree can be read as is.
//
// It is the one loader: the daemon, `xdpban regex --jail`, `xdpban check`
// and the fail2ban compatibility mode all go through it.
package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// DefaultMaxTracked is a jail's maxtracked when unset: the addresses
// whose failures below maxretry it counts at once. A million distinct /64s
// counted without a bound took the daemon to 532 MB; 100,000 stay near
// 40 MiB (BenchmarkWindowMillionAddresses).
const DefaultMaxTracked = 100_000

// Config is a fully resolved configuration.
type Config struct {
	Daemon Daemon
	// Jails holds every jail section, enabled or not, in file order.
	Jails []Jail
	// FilterDirs are searched in order for filter.d/NAME.conf / .local.
	// The embedded shipped filters are searched last.
	FilterDirs []string
	// Files lists every file read, for error messages and `status`.
	Files []string
	// Broken lists the jails LoadFail2ban could not translate (fail2ban
	// skips such a jail and starts the others; so does xdpban). They are
	// not in Jails. Load never fills it: any bad jail fails the load.
	Broken []BrokenJail

	// jailChains are netfilter chains fail2ban jails named (chain =
	// DOCKER-USER): kept across SetDaemon.
	jailChains []string
}

// BrokenJail is a jail refused by LoadFail2ban, and why.
type BrokenJail struct {
	Name    string
	Enabled bool
	Source  string // "file:line" of the section header
	Err     error  // "file:line: reason"
}

// Daemon holds the [xdpban] section (daemon-wide settings).
type Daemon struct {
	Backend    string   // auto | xdp | iptables
	Interfaces []string // empty: the default-route interfaces
	PinPath    string   // default /sys/fs/bpf/xdpban
	Socket     string   // default /run/xdpban/xdpban.sock
	// SocketMaxConns bounds the control socket's open connections.
	SocketMaxConns int
	StateDir       string // default /var/lib/xdpban
	// BanLog is the fail2ban-format ban log (key `banlog`), default
	// /var/log/xdpban/xdpban.log; "" or "none" writes none. Load turns an empty
	// or "none" setting into "none" (callers fill "" with the default).
	BanLog     string
	MapSizes   MapSizes
	IPv6Prefix int // 48..128, default 64
	// MetricsListen is empty when metrics are off (the default).
	MetricsListen string
	LogFormat     string // text | json
	LogLevel      string // debug | info | warn | error
	DBPurgeAge    time.Duration
	DropLogRate   int  // drop events per second per banned address
	DropLogGlobal int  // drop events per second in all
	LogDrops      bool // write drop events to the daemon log
	// Chains are the netfilter chains jumping to the xdpban chain
	// (iptables backend): INPUT by default, FORWARD / DOCKER-USER opt-in.
	Chains    []string
	BlockType string // DROP | REJECT
	// Fleet is the [fleet] section (fleet.go).
	Fleet Fleet
}

// MapSizes are the XDP map capacities, set at load time.
type MapSizes struct {
	V4, V6, V4Net, V6Net int
}

// Jail is one resolved jail section.
type Jail struct {
	Name    string
	Enabled bool
	// Filter is the filter spec as written: "sshd", "sshd[mode=aggressive]".
	Filter string
	// FilterName and FilterArgs are Filter split: "sshd" and
	// {"mode": "aggressive"}. The args override the filter's [Init] and
	// [Definition] values of the same name, as in fail2ban.
	FilterName string
	FilterArgs map[string]string
	// FilterOptions are filter settings given in the jail section itself
	// (failregex, ignoreregex, prefregex, datepattern, maxlines): they win
	// over the filter file's, as in fail2ban. Absent keys are not set.
	FilterOptions map[string]string
	// LogPaths are as configured (globs allowed; expanded by logwatch, so
	// a file appearing later is picked up).
	LogPaths     []string
	Backend      string // auto | file | journal
	JournalMatch []string
	MaxRetry     int
	FindTime     time.Duration
	// MaxTracked bounds the addresses whose failures the jail counts
	// (maxtracked): past it the least recently failing is forgotten.
	MaxTracked int
	// BanTime < 0 means permanent (fail2ban's -1).
	BanTime   time.Duration
	Increment Increment
	IgnoreIP  []netip.Prefix
	// IgnoreSelf adds the host's own addresses (127.0.0.0/8 and ::1 are
	// always ignored whatever this says).
	IgnoreSelf bool
	// Port is the jail's port scope as written ("ssh", "http,https",
	// "1000:2000"); empty means all ports.
	Port     string
	Protocol string // tcp | udp | all
	// BanScope is banscope: "all" drops every packet of a banned address,
	// "port" only its Port/Protocol, as fail2ban's multiport actions do.
	// xdpban's own configuration defaults to all; a fail2ban tree's jail
	// is all when its banaction is an *-allports action, port otherwise.
	BanScope string
	// Scope is what the jail's bans drop: BanScope resolved with Port and
	// Protocol (the zero Scope, all traffic, for banscope = all).
	Scope bans.Scope
	// Replaced lists banaction/action lines read from a fail2ban config
	// (or non-xdpban actions in a copied jail.local): reported as replaced
	// by xdpban's enforcement, never executed. Their port scope is folded
	// into Port (an *-allports action makes it all ports).
	Replaced []string
	// Notes are the settings that were read but not translated, one line
	// each ("file:line: bantime.formula: not supported, factor used"), for
	// `xdpban check` and the daemon's startup log.
	Notes []string
	// Actions are xdpban's own notification actions (mail, webhook,
	// command) run on ban and unban.
	Actions []Action
	// RateLimit is the per-source SYN token bucket; zero Rate is off.
	RateLimit RateLimit
	// Source is "file:line" of the section header, for error messages.
	Source string
	// FilterWhere cites the line that last set the filter or a filter
	// setting of the jail ("jail.local:5: [sshd] mode = \"bogus\", used
	// in filter = \"sshd[mode=bogus]\""), for errors compiling the
	// filter (FilterError): the section header is often the shipped
	// jail.conf's, not the operator's file.
	FilterWhere string
}

// FilterError is err, from compiling the jail's filter, cited at
// FilterWhere.
func (j Jail) FilterError(err error) error {
	if j.FilterWhere == "" {
		return fmt.Errorf("jail %s (%s): filter %q: %w", j.Name, j.Source, j.Filter, err)
	}
	return fmt.Errorf("%s: %w", j.FilterWhere, err)
}

// Increment is fail2ban's bantime.increment family.
type Increment struct {
	Enabled bool
	Factor  float64       // bantime.factor, default 1
	MaxTime time.Duration // bantime.maxtime, 0: no cap
	RndTime time.Duration // bantime.rndtime, 0: none
}

// Action is one notification action of a jail.
type Action struct {
	Kind string // mail | webhook | command
	// Options are the action's key=value settings (to, relay, url,
	// template, path, timeout, …) as written.
	Options map[string]string
}

// RateLimit is `ratelimit = N/period[,burst=B]` plus ratelimit.banafter.
type RateLimit struct {
	Rate     int           // N
	Per      time.Duration // period
	Burst    int           // B, default N
	BanAfter time.Duration // 0: never turned into a ban
}
