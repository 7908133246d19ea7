package bans

import (
	"net/netip"
	"testing"
	"time"
)

func TestDecisionBan(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	later := now.Add(3 * time.Hour)
	tests := []struct {
		name string
		d    Decision
		w    Widen
		want Ban
	}{
		{"jail v4", Decision{Jail: "sshd", Addr: netip.MustParseAddr("192.0.2.7"), BanTime: 10 * time.Minute},
			Widen{}, Ban{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Jail: "sshd", Expires: now.Add(10 * time.Minute)}},
		{"jail v4-mapped", Decision{Jail: "sshd", Addr: netip.MustParseAddr("::ffff:192.0.2.7"), BanTime: time.Minute},
			Widen{}, Ban{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Jail: "sshd", Expires: now.Add(time.Minute)}},
		{"jail v6 widened to /64", Decision{Jail: "sshd", Addr: netip.MustParseAddr("2001:db8::7"), BanTime: -1},
			Widen{}, Ban{Prefix: netip.MustParsePrefix("2001:db8::/64"), Jail: "sshd"}},
		{"jail v6 policy /128", Decision{Jail: "sshd", Addr: netip.MustParseAddr("2001:db8::7"), BanTime: -1},
			Widen{IPv6: 128}, Ban{Prefix: netip.MustParsePrefix("2001:db8::7/128"), Jail: "sshd"}},
		{"prefix wins over addr, expires over bantime, origin kept",
			Decision{Jail: "manual", Addr: netip.MustParseAddr("192.0.2.1"), Prefix: netip.MustParsePrefix("198.51.100.9/24"),
				Expires: later, BanTime: time.Minute, Origin: "node-b"},
			Widen{}, Ban{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Jail: "manual", Expires: later, Origin: "node-b"}},
		{"prefix /128 widened like an address", Decision{Jail: "fleet", Prefix: netip.MustParsePrefix("2001:db8::1/128"), BanTime: -1},
			Widen{}, Ban{Prefix: netip.MustParsePrefix("2001:db8::/64"), Jail: "fleet"}},
		{"scope carried", Decision{Jail: "sshd", Addr: netip.MustParseAddr("192.0.2.8"), BanTime: time.Minute,
			Scope: Scope{Proto: "tcp", Ports: []PortRange{{22, 22}}}},
			Widen{}, Ban{Prefix: netip.MustParsePrefix("192.0.2.8/32"), Jail: "sshd", Expires: now.Add(time.Minute),
				Scope: Scope{Proto: "tcp", Ports: []PortRange{{22, 22}}}}},
		{"zero bantime has already ended", Decision{Jail: "j", Addr: netip.MustParseAddr("203.0.113.5")},
			Widen{}, Ban{Prefix: netip.MustParsePrefix("203.0.113.5/32"), Jail: "j", Expires: now}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.d.Ban(tc.w, now)
			if got.Prefix != tc.want.Prefix || got.Jail != tc.want.Jail || !got.Expires.Equal(tc.want.Expires) || got.Origin != tc.want.Origin ||
				got.Scope.String() != tc.want.Scope.String() {
				t.Errorf("Ban() = %+v, want %+v", got, tc.want)
			}
			if got.Prefix != tc.d.Target(tc.w) {
				t.Errorf("Target() = %v, Ban().Prefix = %v: the intake's dedup key must be the banned prefix", tc.d.Target(tc.w), got.Prefix)
			}
		})
	}
}

// TestExactDecisionIsNotRewidened: a jail's narrowed /128 stays a /128 at
// the intake, where widening it again would cover the ignored neighbour.
func TestExactDecisionIsNotRewidened(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8::2/128")
	d := Decision{Jail: "sshd", Addr: p.Addr(), Prefix: p, Exact: true, BanTime: time.Hour}
	if got := d.Ban(Widen{}, time.Now()).Prefix; got != p {
		t.Fatalf("exact decision banned %s, want %s", got, p)
	}
	d.Exact = false
	if got := d.Ban(Widen{}, time.Now()).Prefix; got != netip.MustParsePrefix("2001:db8::/64") {
		t.Fatalf("a CLI-style /128 banned %s, want the widened /64", got)
	}
}
