// Package logwatch is the fail2ban job: it follows logs (files with its
// own inotify follower, measured against github.com/nxadm/tail in
// follow_peer_test.go, or the systemd journal), matches each line
// against a jail's filter, counts failures per address in a sliding
// window, and emits ban decisions.
//
// The pieces, each in its own file:
//   - filter*.go: filter.d loading, Python-re translation, <HOST> tags,
//     failregex/ignoreregex/prefregex, compiled once per filter.
//   - date*.go: timestamp detection (syslog without year, ISO 8601,
//     Apache, epoch, datepattern).
//   - follow*.go / journal*.go: following sources, persisted positions.
//   - window.go / jail.go: per-jail counting and ban decisions.
//   - replay.go: `xdpban regex`, the fail2ban-regex of xdpban.
//
// The common line costs little and gets the same answer as the plain
// path, each shortcut checked against it in fastpath_test.go: a
// hand-written matcher for syslog dates (date_fast.go), converted to a
// time only for lines that get past one pass over the failregexes'
// required literals (pyre_literal.go), which also says which failregexes
// can match at all; ASCII spellings of the Unicode classes for ASCII
// lines; and failregexes cut at literals that occur once in the line,
// the capture-free pieces walked by a DFA (pyre_split.go, pyre_dfa.go).
// BenchmarkAuthLog (make bench-logwatch) measures it on loggen's log.
package logwatch

import (
	"net/netip"
	"time"
)

// Verdict is what a filter made of one line.
type Verdict int

const (
	Miss    Verdict = iota // no failregex matched
	Fail                   // a failregex matched: a failure for Match.Host
	Ignored                // a failregex matched but an ignoreregex too
	Skipped                // too long to match (bytes that are not UTF-8 are read as U+FFFD, not skipped)
)

// Match is one failure found in a log.
type Match struct {
	// Host is the address from <HOST>/<ADDR>/<IP4>/<IP6>, unmapped
	// (::ffff:192.0.2.1 is 192.0.2.1). Invalid when the capture was a
	// hostname or not a valid address (HostName holds it as written;
	// xdpban never resolves names nor bans such a match).
	Host     netip.Addr
	HostName string
	User     string    // <F-USER>, informative only
	Time     time.Time // from the line; zero when the line has none
	Line     string
}

// Scanner is the per-source state of a filter (multi-line buffers, year
// inference for syslog dates). A Filter is compiled once and shared; each
// followed source gets its own Scanner from Filter.NewScanner.
type Scanner interface {
	// Scan reads one line without its newline. ref is the wall-clock
	// time used to infer missing date parts (the year).
	Scan(line string, ref time.Time) (Verdict, []Match)
}
