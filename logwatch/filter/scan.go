// Package filter is fail2ban's filter.d for xdpban: it loads a filter
// (the shipped filter.d, embedded, or an operator's directories), expands
// its <HOST> tags, compiles prefregex, failregex and ignoreregex once
// (through logwatch/pyre), finds each line's date, and gives each source
// a Scanner that turns lines into failures. It never imports logwatch,
// the engine that runs it.
package filter

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
