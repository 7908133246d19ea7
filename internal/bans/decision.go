package bans

import (
	"net/netip"
	"time"
)

// Decision is a request to ban, the one record every source hands to the
// daemon's intake: a jail crossing maxretry (logwatch), the rate limiter's
// banafter, the CLI, another node of the fleet. The intake turns it into a
// Ban with Ban, so the widening and the expiry are worked out in one place
// whatever the source.
type Decision struct {
	Jail string
	// Addr is the offending address as the source saw it (a jail's
	// <HOST>). The banned prefix is Addr widened, unless Prefix is set.
	Addr netip.Addr
	// Prefix, when valid, is banned instead (the CLI's CIDR, a fleet
	// peer's ban), canonicalised by Widen.Prefix; Addr may then be invalid.
	Prefix netip.Prefix
	// Exact bans Prefix as given, not canonicalised by the widening: a
	// jail's prefix is already widened, and where that would have covered
	// an ignored address, narrowed (IgnoreList.Narrow), which widening it
	// again would undo.
	Exact bool
	// Expires, when set, is the instant the ban ends (CLI, fleet). When
	// zero, BanTime decides.
	Expires time.Time
	// BanTime is the ban's length from the moment it is applied, the
	// jails' form (bantime.increment already applied). < 0 is permanent,
	// and so is the only way to ask for a permanent ban: a zero Expires
	// with a zero BanTime is a ban that has already ended.
	BanTime time.Duration
	// Scope is Ban.Scope: the jail's port/protocol for a banscope = port
	// jail, the zero Scope (all traffic) for CLI bans and banscope = all.
	Scope Scope
	// Origin is Ban.Origin: "" or the local node for this host's own
	// decisions, another node's name for a ban received from the fleet.
	Origin string
	// Failures is how many failures in the window crossed maxretry
	// (jails only; for notifications).
	Failures int
	// At is when the decision was made: the time of the failure that
	// crossed the line, for notifications.
	At time.Time
	// Lines are the matched log lines, for notifications.
	Lines []string
	// Done, when set, is called once by the intake with the outcome:
	// nil when the ban is enforced and written to the store (or a ban at
	// least as long already was), the error otherwise. A jail saves a
	// log position only past lines whose decisions are done with nil, so
	// a kill -9 never loses a ban its log lines asked for.
	Done func(error)
}

// Target is the prefix the decision bans: Prefix when the source named
// one, else Addr, widened by w either way.
func (d Decision) Target(w Widen) netip.Prefix {
	if d.Prefix.IsValid() {
		if d.Exact {
			return d.Prefix.Masked()
		}
		return w.Prefix(d.Prefix)
	}
	return w.Addr(d.Addr)
}

// Ban is the ban d asks for when applied at now.
func (d Decision) Ban(w Widen, now time.Time) Ban {
	b := Ban{Prefix: d.Target(w), Jail: d.Jail, Expires: d.Expires, Scope: d.Scope, Origin: d.Origin}
	if b.Expires.IsZero() && d.BanTime >= 0 {
		b.Expires = now.Add(d.BanTime)
	}
	return b
}
