package iptables

import (
	"github.com/xdpban/xdpban/internal/bans"

	"slices"
	"strings"
	"testing"
	"time"
)

func TestCommentRoundTrip(t *testing.T) {
	for _, c := range []struct {
		jail string
		exp  time.Time
	}{
		{"sshd", time.Time{}},
		{"sshd", time.Unix(1700000000, 0)},
		{"nginx-http-auth", time.Unix(1700000000, 123456789)},
		{`we"ird \ jail name`, time.Unix(1, 500000000)},
		{"", time.Unix(4102444800, 1)},
	} {
		s := formatComment(c.jail, c.exp, 0)
		if len(s) > maxCommentLen || strings.ContainsAny(s, "\"\\") {
			t.Errorf("formatComment(%q) = %q: too long or quotes", c.jail, s)
		}
		jail, exp, ours, err := parseComment(s)
		if !ours || err != nil || jail != c.jail || !exp.Equal(c.exp) {
			t.Errorf("parseComment(%q) = %q, %v, %v, %v; want %q, %v", s, jail, exp, ours, err, c.jail, c.exp)
		}
	}
}

func TestCommentLongJailIsCut(t *testing.T) {
	long := strings.Repeat("é", 200)
	s := formatComment(long, time.Unix(1700000000, 1), 0)
	if len(s) > maxCommentLen {
		t.Fatalf("comment is %d bytes, limit %d", len(s), maxCommentLen)
	}
	jail, exp, ours, err := parseComment(s)
	if !ours || err != nil || !strings.HasPrefix(long, jail) || jail == "" || !exp.Equal(time.Unix(1700000000, 1)) {
		t.Fatalf("cut comment %q parsed as %q, %v, %v, %v", s, jail, exp, ours, err)
	}
}

func TestParseCommentRejects(t *testing.T) {
	for _, s := range []string{"xdpban jail=sshd", "xdpban exp=12", "xdpban jail=x exp=-1", "xdpban jail=x exp=1.1234567890", "xdpban jail=%zz exp=1", "xdpban jail=x exp=1.x"} {
		if _, _, ours, err := parseComment(s); !ours || err == nil {
			t.Errorf("parseComment(%q): ours=%v err=%v; want ours with an error", s, ours, err)
		}
	}
	for _, s := range []string{"", "f2b", "xdpbanjail=x exp=1", "other xdpban jail=x exp=1"} {
		if _, _, ours, _ := parseComment(s); ours {
			t.Errorf("parseComment(%q) claims a foreign comment", s)
		}
	}
}

func FuzzParseComment(f *testing.F) {
	f.Add("xdpban jail=sshd exp=1700000000")
	f.Add("xdpban jail=a+b%22 exp=1.5")
	f.Add("xdpban jail= exp=0")
	f.Fuzz(func(t *testing.T, s string) {
		jail, exp, ours, err := parseComment(s)
		if !ours || err != nil {
			return
		}
		// What parses must re-render to something that parses the same.
		s2 := formatComment(jail, exp, 0)
		j2, e2, ours2, err2 := parseComment(s2)
		if !ours2 || err2 != nil || !e2.Equal(exp) {
			t.Fatalf("%q -> %q, %v -> %q: %q %v %v %v", s, jail, exp, s2, j2, e2, ours2, err2)
		}
		if len(s2) <= maxCommentLen && len(formatComment(jail, exp, 0)) == len(s2) && j2 != jail && len(jail) < 100 {
			t.Fatalf("jail %q did not round-trip: %q", jail, j2)
		}
	})
}

func TestParseScope(t *testing.T) {
	for _, c := range []struct {
		proto, port string
		want        Scope
	}{
		{"", "", Scope{Proto: "tcp"}},
		{"tcp", "ssh", Scope{Proto: "tcp", Ports: []PortRange{{From: 22, To: 22}}}},
		{"all", "http,https", Scope{Proto: "all", Ports: []PortRange{{From: 80, To: 80}, {From: 443, To: 443}}}},
		{"UDP", "1000:2000, 53", Scope{Proto: "udp", Ports: []PortRange{{From: 1000, To: 2000}, {From: 53, To: 53}}}},
		{"tcp", "1000-2000", Scope{Proto: "tcp", Ports: []PortRange{{From: 1000, To: 2000}}}},
		{"tcp", "0:65535", Scope{Proto: "tcp"}},
		{"tcp", "all", Scope{Proto: "tcp"}},
		{"tcp", "22,22", Scope{Proto: "tcp", Ports: []PortRange{{From: 22, To: 22}}}},
	} {
		got, err := bans.ParseScope(c.proto, c.port)
		if err != nil || got.Proto != c.want.Proto || !slices.Equal(got.Ports, c.want.Ports) {
			t.Errorf("bans.ParseScope(%q, %q) = %+v, %v; want %+v", c.proto, c.port, got, err, c.want)
		}
	}
	for _, c := range [][2]string{{"icmp", ""}, {"tcp", "70000"}, {"tcp", "nosuchservice"}, {"tcp", "2000:1000"}, {"tcp", "22,,23"}, {"tcp", ":"}, {"tcp", "-5"}} {
		_, err := bans.ParseScope(c[0], c[1])
		if err == nil {
			t.Errorf("bans.ParseScope(%q, %q) accepted", c[0], c[1])
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || (!strings.Contains(msg, c[0]) && !strings.Contains(msg, c[1])) {
			t.Errorf("bans.ParseScope(%q, %q) error %q does not name the input on one line", c[0], c[1], msg)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	f.Add("tcp", "ssh,80,1000:2000")
	f.Add("all", "")
	f.Add("udp", "53-60")
	f.Fuzz(func(t *testing.T, proto, port string) {
		s, err := bans.ParseScope(proto, port)
		if err != nil {
			return
		}
		for _, r := range s.Ports {
			if r.From > r.To {
				t.Fatalf("backwards range %v from %q", r, port)
			}
		}
		for _, spec := range scopeMatches(s) {
			for i, a := range spec {
				if a == "--dports" && strings.Count(spec[i+1], ",")+1+strings.Count(spec[i+1], ":") > 15 {
					t.Fatalf("multiport list %q exceeds 15 ports", spec[i+1])
				}
			}
		}
		// The comment round-trips the scope.
		x := bans.Ban{Jail: "j", Scope: s}
		if _, _, got, ours, err := parseBanComment(banComment(x)); !ours || err != nil || got.String() != s.String() {
			t.Fatalf("comment %q read back as scope %q (%v), want %q", banComment(x), got, err, s)
		}
	})
}

func TestScopeMatchesChunkMultiport(t *testing.T) {
	var ports []PortRange
	for p := uint16(1000); p < 1020; p++ {
		ports = append(ports, PortRange{From: p, To: p})
	}
	specs := scopeMatches(Scope{Proto: "all", Ports: ports})
	if len(specs) != 4 { // 20 ports: 15+5, for tcp and for udp
		t.Fatalf("got %d specs, want 4: %v", len(specs), specs)
	}
	if got := scopeMatches(Scope{}); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("all traffic = %v, want one empty match", got)
	}
	if got := scopeMatches(Scope{Proto: "udp"}); len(got) != 1 || !slices.Equal(got[0], []string{"-p", "udp"}) {
		t.Fatalf("all udp = %v, want -p udp", got)
	}
	if a, b := scopeSetName("xdpban-v4", Scope{Proto: "tcp", Ports: []PortRange{{From: 22, To: 22}}}), scopeSetName("xdpban-v4", Scope{Proto: "udp", Ports: []PortRange{{From: 22, To: 22}}}); a == b || len(a) > 31 {
		t.Fatalf("scope set names %q and %q: want distinct, at most 31 characters", a, b)
	}
}

func TestSplitQuoteRoundTrip(t *testing.T) {
	args := []string{"-s", "192.0.2.0/24", "-m", "comment", "--comment", `xdpban jail=a "b" \c`, "-j", "DROP"}
	got, err := splitArgs(quoteArgs(args))
	if err != nil || !slices.Equal(got, args) {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	r, ok, err := parseRuleLine(`-A xdpban -s 192.0.2.7/32 -m comment --comment "xdpban jail=sshd exp=17" -c 5 420 -j DROP`)
	if err != nil || !ok || r.pkts != 5 || r.bytes != 420 || r.opt("--comment") != "xdpban jail=sshd exp=17" || r.jump() != "DROP" || slices.Contains(r.args, "-c") {
		t.Fatalf("parseRuleLine = %+v, %v, %v", r, ok, err)
	}
	if _, ok, _ := parseRuleLine("-N xdpban"); ok {
		t.Fatal("chain line parsed as a rule")
	}
	if _, _, err := parseRuleLine(`-A x --comment "open`); err == nil {
		t.Fatal("unterminated quote accepted")
	}
}

func FuzzSplitArgs(f *testing.F) {
	f.Add(`-A xdpban -s 192.0.2.7/32 -m comment --comment "xdpban jail=sshd exp=17" -c 5 420 -j DROP`)
	f.Add(`"a\"b" c`)
	f.Fuzz(func(t *testing.T, s string) {
		args, err := splitArgs(s)
		if err != nil {
			return
		}
		again, err := splitArgs(quoteArgs(args))
		if err != nil || !slices.Equal(again, args) {
			t.Fatalf("%q: %q -> %q (%v)", s, args, again, err)
		}
	})
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{BlockType: "TARPIT"},
		{Mode: "nft"},
		{Chain: "a-chain-name-much-too-long-for-xt"},
		{SetV4: "a set"},
		{From: []string{"xdpban"}},
	} {
		// A namespace that does not exist: should validation ever let
		// one through, nothing can reach the root namespace.
		o.Netns = "/nonexistent/netns"
		_, err := Open(t.Context(), o)
		if err == nil {
			t.Errorf("Open(%+v) accepted", o)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error spans lines: %q", err)
		}
	}
}
