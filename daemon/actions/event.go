package actions

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// Kind is what happened to an address.
type Kind int

const (
	Ban Kind = iota + 1
	Unban
)

func (k Kind) String() string {
	switch k {
	case Ban:
		return "ban"
	case Unban:
		return "unban"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Limits on what one event carries: log lines come from attackers, and a
// queued event must stay small whatever they wrote.
const (
	MaxLines   = 50
	MaxLineLen = 1000
)

// Event is one ban or unban to notify about. For a jail's ban, fill it
// from bans.Decision field by field (Jail, Addr, Failures, BanTime,
// Time: At, Lines) plus the Prefix that was banned.
type Event struct {
	Kind Kind
	Jail string
	// Addr is the offending address; it may be invalid for a ban given as
	// a prefix (manual bans of a CIDR).
	Addr netip.Addr
	// Prefix is what is actually banned (IPv6 is widened to /64 by
	// default); when zero it is derived from Addr.
	Prefix   netip.Prefix
	Failures int
	// BanTime < 0 means permanent.
	BanTime time.Duration
	Time    time.Time
	Lines   []string
}

// FromBan describes a ban record being added (Ban) or removed (Unban),
// e.g. a manual ban or an expiry. BanTime is derived from Expires.
func FromBan(k Kind, b bans.Ban, now time.Time) Event {
	ev := Event{Kind: k, Jail: b.Jail, Prefix: b.Prefix, Time: now, BanTime: -1}
	if b.Prefix.IsSingleIP() {
		ev.Addr = b.Prefix.Addr()
	}
	if !b.Permanent() {
		ev.BanTime = b.Expires.Sub(now).Round(time.Second)
		if ev.BanTime < 0 {
			ev.BanTime = 0
		}
	}
	return ev
}

// sanitize returns a copy safe to queue: lines bounded in number and
// length, valid UTF-8, no control characters (a CR in a log line must not
// become a header break in a mail), prefix filled in.
func (ev Event) sanitize() Event {
	if !ev.Prefix.IsValid() && ev.Addr.IsValid() {
		ev.Prefix = bans.Widen{}.Addr(ev.Addr)
	}
	ev.Addr = ev.Addr.Unmap()
	ev.Jail = cleanLine(ev.Jail, 200)
	lines := ev.Lines
	if len(lines) > MaxLines {
		lines = lines[len(lines)-MaxLines:] // the latest are the most telling
	}
	ev.Lines = make([]string, len(lines))
	for i, l := range lines {
		ev.Lines[i] = cleanLine(l, MaxLineLen)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	return ev
}

// cleanLine makes s one line of valid UTF-8 without control characters,
// at most max bytes.
func cleanLine(s string, max int) string {
	if len(s) > max {
		s = s[:max] // a cut rune becomes U+FFFD below
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			if r == '\t' {
				return ' '
			}
			return '\uFFFD'
		}
		return r
	}, s)
}

// AddrString is the address shown to humans: the offending address, or
// the banned prefix when there is none.
func (ev Event) AddrString() string {
	if ev.Addr.IsValid() {
		return ev.Addr.String()
	}
	if ev.Prefix.IsSingleIP() {
		return ev.Prefix.Addr().String()
	}
	if ev.Prefix.IsValid() {
		return ev.Prefix.String()
	}
	return ""
}

// BanSeconds is BanTime in whole seconds, -1 for permanent.
func (ev Event) BanSeconds() int64 {
	if ev.BanTime < 0 {
		return -1
	}
	return int64(ev.BanTime / time.Second)
}

func (ev Event) prefixString() string {
	if ev.Prefix.IsValid() {
		return ev.Prefix.String()
	}
	return ""
}

// Document is the default JSON body of a webhook.
type Document struct {
	Event    string   `json:"event"`
	Jail     string   `json:"jail"`
	Addr     string   `json:"addr"`
	Prefix   string   `json:"prefix"`
	Failures int      `json:"failures"`
	BanTime  int64    `json:"bantime"`
	Time     string   `json:"time"`
	Lines    []string `json:"lines"`
}

// Document returns the event as the documented JSON document.
func (ev Event) Document() Document {
	lines := ev.Lines
	if lines == nil {
		lines = []string{}
	}
	return Document{Event: ev.Kind.String(), Jail: ev.Jail, Addr: ev.AddrString(),
		Prefix: ev.prefixString(), Failures: ev.Failures, BanTime: ev.BanSeconds(),
		Time: ev.Time.UTC().Format(time.RFC3339), Lines: lines}
}

// jsonEscape returns s as the inside of a JSON string literal.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func (ev Event) String() string {
	return fmt.Sprintf("%s %s jail=%s", ev.Kind, ev.AddrString(), ev.Jail)
}
