package iptables

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

var ctx = context.Background()

func newPair(t *testing.T) *nspairtest.Pair {
	t.Helper()
	p := nspairtest.New(t)
	t.Cleanup(func() { assertRootClean(t) })
	return p
}

// save is iptables-save / ip6tables-save of the host namespace without
// the timestamp comments and counters, so two dumps compare exactly.
func save(t *testing.T, p *nspairtest.Pair, bin string) string {
	t.Helper()
	out := p.Host.Run(t, bin)
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		keep = append(keep, regexp.MustCompile(`\[\d+:\d+\]`).ReplaceAllString(l, "[]"))
	}
	return strings.Join(keep, "\n")
}

func without(s, sub string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, sub) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func ban(p string, d time.Duration) bans.Ban {
	b := bans.Ban{Prefix: netip.MustParsePrefix(p), Jail: "test"}
	if d > 0 {
		b.Expires = time.Now().Add(d)
	}
	return b
}

func bothModes(t *testing.T, fn func(t *testing.T, m Mode)) {
	for _, m := range []Mode{ModeIPSet, ModeRules} {
		t.Run(string(m), func(t *testing.T) { fn(t, m) })
	}
}

func TestForeignRulesUntouched(t *testing.T) {
	bothModes(t, func(t *testing.T, m Mode) {
		p := newPair(t)
		// What fail2ban and an admin's own firewall leave around.
		for _, c := range [][]string{
			{"iptables", "-N", "f2b-sshd"},
			{"iptables", "-A", "f2b-sshd", "-s", "203.0.113.50/32", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"},
			{"iptables", "-A", "f2b-sshd", "-j", "RETURN"},
			{"iptables", "-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd"},
			{"iptables", "-A", "INPUT", "-s", "198.51.100.0/24", "-m", "comment", "--comment", "admin: xdp-looking text", "-j", "ACCEPT"},
			{"iptables", "-A", "FORWARD", "-j", "DROP"},
			{"ip6tables", "-A", "INPUT", "-s", "2001:db8:f::/48", "-j", "DROP"},
			{"ipset", "create", "other-tool", "hash:ip", "timeout", "0"},
			{"ipset", "add", "other-tool", "203.0.113.77"},
			{"iptables", "-A", "INPUT", "-m", "set", "--match-set", "other-tool", "src", "-j", "DROP"},
		} {
			p.Host.Run(t, c[0], c[1:]...)
		}
		before4, before6 := save(t, p, "iptables-save"), save(t, p, "ip6tables-save")
		setsBefore := p.Host.Run(t, "ipset", "save", "other-tool")

		b := openIn(t, p, Options{Mode: m, BlockType: "REJECT", From: []string{"INPUT", "FORWARD"}})
		if err := b.Add(ctx, ban("192.0.2.2/32", time.Hour), ban("2001:db8::/64", 0)); err != nil {
			t.Fatal(err)
		}
		// While active, every foreign line is still there, in order.
		if got := without(save(t, p, "iptables-save"), "xdpban"); got != before4 {
			t.Errorf("foreign IPv4 rules changed while active:\n%s\nwant\n%s", got, before4)
		}
		if got := without(save(t, p, "ip6tables-save"), "xdpban"); got != before6 {
			t.Errorf("foreign IPv6 rules changed while active:\n%s\nwant\n%s", got, before6)
		}
		// Our jump is first in INPUT, ahead of the admin's ACCEPT.
		in := p.Host.Run(t, "iptables", "-S", "INPUT")
		if lines := strings.Split(strings.TrimSpace(in), "\n"); len(lines) < 2 || !strings.HasSuffix(lines[1], "-j xdpban") {
			t.Errorf("INPUT does not start with the xdpban jump:\n%s", in)
		}
		if err := b.Detach(); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if got := save(t, p, "iptables-save"); got != before4 {
			t.Errorf("after detach IPv4 rules differ:\n%s\nwant\n%s", got, before4)
		}
		if got := save(t, p, "ip6tables-save"); got != before6 {
			t.Errorf("after detach IPv6 rules differ:\n%s\nwant\n%s", got, before6)
		}
		if got := p.Host.Run(t, "ipset", "save", "other-tool"); got != setsBefore {
			t.Errorf("foreign set changed:\n%s\nwant\n%s", got, setsBefore)
		}
		if got := p.Host.Run(t, "ipset", "list", "-n"); strings.Contains(got, "xdpban") {
			t.Errorf("xdpban sets left after detach: %s", got)
		}
	})
}

func TestAdoptAfterCrash(t *testing.T) {
	bothModes(t, func(t *testing.T, m Mode) {
		p := newPair(t)
		r := p.Listen(t, 7010)
		b := openIn(t, p, Options{Mode: m})
		if err := b.Add(ctx, ban("192.0.2.2/32", time.Hour)); err != nil {
			t.Fatal(err)
		}
		want4 := save(t, p, "iptables-save")
		// A crash: the process dies without Close. Simulate a crash in
		// the middle of setup too, by adding the jump a second time.
		p.Host.Run(t, "iptables", "-I", "INPUT", "2", "-m", "comment", "--comment", "xdpban jump", "-j", "xdpban")
		for range 2 {
			b2 := openIn(t, p, Options{Mode: m})
			if got := save(t, p, "iptables-save"); got != want4 {
				t.Fatalf("after re-open rules differ:\n%s\nwant\n%s", got, want4)
			}
			list, err := b2.List(ctx)
			if err != nil || len(list) != 1 || list[0].Prefix != netip.MustParsePrefix("192.0.2.2/32") || list[0].Jail != "test" {
				t.Fatalf("adopted list = %v, %v", list, err)
			}
			b2.Close()
		}
		s := p.Sender(t, nspairtest.AttackerV4, 7010)
		if got := nspairtest.Deliver(t, s, r, 10, 300*time.Millisecond); got != 0 {
			t.Fatalf("%d datagrams from the banned source arrived after adopt", got)
		}
		b.Close()
		b3 := openIn(t, p, Options{Mode: m})
		if err := b3.Detach(); err != nil {
			t.Fatal(err)
		}
		if got := save(t, p, "iptables-save"); strings.Contains(got, "xdpban") {
			t.Fatalf("detach after adopt left:\n%s", got)
		}
	})
}

func TestRejectSendsReset(t *testing.T) {
	bothModes(t, func(t *testing.T, m Mode) {
		p := newPair(t)
		var ln net.Listener
		if err := p.Host.Do(func() error {
			var err error
			ln, err = net.Listen("tcp", "[::]:7011")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		dial := func(to netip.Addr, network string, port uint16) error {
			return p.Attacker.Do(func() error {
				c, err := net.DialTimeout(network, netip.AddrPortFrom(to, port).String(), 2*time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
		}
		for _, to := range []netip.Addr{nspairtest.HostV4, nspairtest.HostV6} {
			if err := dial(to, "tcp", 7011); err != nil {
				t.Fatalf("connect to %s before the ban: %v", to, err)
			}
		}
		b := openIn(t, p, Options{Mode: m, BlockType: "REJECT"})
		if err := b.Add(ctx, ban("192.0.2.2/32", time.Hour), ban("2001:db8::/64", time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, to := range []netip.Addr{nspairtest.HostV4, nspairtest.HostV6} {
			start := time.Now()
			err := dial(to, "tcp", 7011)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("connect to %s while banned with REJECT: %v, want ECONNREFUSED (TCP reset)", to, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusal took %v: the reset was not immediate", d)
			}
			// UDP gets ICMP port unreachable, seen as ECONNREFUSED on a
			// connected socket.
			err = p.Attacker.Do(func() error {
				c, err := net.Dial("udp", netip.AddrPortFrom(to, 7012).String())
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte("x")); err != nil {
					return err
				}
				_, err = c.Read(make([]byte, 8))
				return err
			})
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("udp to %s while banned with REJECT: %v, want ECONNREFUSED (ICMP unreachable)", to, err)
			}
		}
		st, err := b.Status(ctx)
		if err != nil || st.Counters["dropped"] < 4 {
			t.Errorf("status counters = %v, %v; want dropped >= 4", st.Counters, err)
		}
		// DROP, by contrast, leaves the connect hanging.
		b.Close()
		b = openIn(t, p, Options{Mode: m})
		t.Cleanup(func() { b.Detach() })
		if err := dial(nspairtest.HostV4, "tcp", 7011); err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connect while banned with DROP: %v, want a timeout", err)
		}
		if got := save(t, p, "iptables-save"); strings.Contains(got, "REJECT") {
			t.Errorf("REJECT rules left after switching to DROP:\n%s", got)
		}
	})
}

func TestJumpFromForwardAndDockerUser(t *testing.T) {
	p := newPair(t)
	// What Docker sets up.
	p.Host.Run(t, "iptables", "-N", "DOCKER-USER")
	p.Host.Run(t, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
	p.Host.Run(t, "iptables", "-A", "FORWARD", "-j", "DOCKER-USER")

	b := openIn(t, p, Options{From: []string{"INPUT", "FORWARD", "DOCKER-USER"}})
	for _, c := range []string{"INPUT", "FORWARD", "DOCKER-USER"} {
		lines := strings.Split(strings.TrimSpace(p.Host.Run(t, "iptables", "-S", c)), "\n")
		if len(lines) < 2 || lines[1] != fmt.Sprintf(`-A %s -m comment --comment "xdpban jump" -j xdpban`, c) {
			t.Errorf("%s does not start with the xdpban jump:\n%s", c, strings.Join(lines, "\n"))
		}
	}
	// ip6tables has no DOCKER-USER here: skipped with a warning, not fatal.
	if got := p.Host.Run(t, "ip6tables", "-S", "FORWARD"); !strings.Contains(got, "-j xdpban") {
		t.Errorf("ip6tables FORWARD has no jump:\n%s", got)
	}
	b.Close()

	// Configuration narrowed to INPUT: the other jumps go on restart.
	b = openIn(t, p, Options{})
	for _, c := range []string{"FORWARD", "DOCKER-USER"} {
		if got := p.Host.Run(t, "iptables", "-S", c); strings.Contains(got, "xdpban") {
			t.Errorf("%s still jumps to xdpban after it was dropped from chains:\n%s", c, got)
		}
	}
	if err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := p.Host.Run(t, "iptables", "-S", "DOCKER-USER"); got != "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n" {
		t.Errorf("DOCKER-USER changed: %q", got)
	}

	_, err := Open(ctx, Options{From: []string{"INPUT", "NOPE-CHAIN"}, Netns: p.Host.Path()})
	if err == nil || !strings.Contains(err.Error(), "NOPE-CHAIN") {
		t.Errorf("missing chain: err = %v, want one naming NOPE-CHAIN", err)
	}
	if got := save(t, p, "iptables-save"); strings.Contains(got, "xdpban") {
		t.Errorf("failed open left traces:\n%s", got)
	}
}

func TestScopeLimitsBan(t *testing.T) {
	bothModes(t, func(t *testing.T, m Mode) {
		p := newPair(t)
		in, out := p.Listen(t, 7020), p.Listen(t, 7021)
		sc, err := bans.ParseScope("udp", "7020,7100:7200")
		if err != nil {
			t.Fatal(err)
		}
		b := openIn(t, p, Options{Mode: m, Interfaces: []string{p.HostIf}})
		t.Cleanup(func() { b.Detach() })
		b4, b6 := ban("192.0.2.2/32", time.Hour), ban("2001:db8::/64", time.Hour)
		b4.Scope, b6.Scope = sc, sc
		if err := b.Add(ctx, b4, b6); err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{nspairtest.AttackerV4, nspairtest.AttackerV6} {
			if got := nspairtest.Deliver(t, p.Sender(t, a, 7020), in, 10, 300*time.Millisecond); got != 0 {
				t.Errorf("%s to scoped port 7020: %d of 10 arrived, want 0", a, got)
			}
			if got := nspairtest.Deliver(t, p.Sender(t, a, 7021), out, 10, time.Second); got != 10 {
				t.Errorf("%s to unscoped port 7021: %d of 10 arrived, want 10", a, got)
			}
		}
	})
}

func TestIPSetFullAndMigration(t *testing.T) {
	p := newPair(t)
	b := openIn(t, p, Options{Mode: ModeRules})
	var many []bans.Ban
	for i := range 1000 {
		many = append(many, ban(fmt.Sprintf("198.51.%d.%d/32", 100+i/250, i%250), time.Hour))
	}
	many = append(many, ban("192.0.2.2/32", 0))
	if err := b.Add(ctx, many...); err != nil {
		t.Fatalf("add 1001 rules: %v", err)
	}
	if n := strings.Count(p.Host.Run(t, "iptables", "-S", "xdpban"), "-A xdpban"); n != 1001 {
		t.Fatalf("%d rules in xdpban, want 1001", n)
	}
	b.Close()

	// Restart in ipset mode: the rules move into the set.
	b = openIn(t, p, Options{Mode: ModeIPSet})
	t.Cleanup(func() { b.Detach() })
	list, err := b.List(ctx)
	if err != nil || len(list) != 1001 {
		t.Fatalf("after migration %d bans, %v; want 1001", len(list), err)
	}
	if n := strings.Count(p.Host.Run(t, "iptables", "-S", "xdpban"), "-A xdpban"); n != 1 {
		t.Fatalf("%d rules left in xdpban after migration, want the set match only", n)
	}
	r := p.Listen(t, 7030)
	if got := nspairtest.Deliver(t, p.Sender(t, nspairtest.AttackerV4, 7030), r, 10, 300*time.Millisecond); got != 0 {
		t.Fatalf("%d arrived from a migrated permanent ban", got)
	}
	st, err := b.Status(ctx)
	if err != nil || st.Backend != "iptables" || len(st.Tables) != 2 || st.Tables[0].Entries != 1000+1 || st.Tables[0].Capacity != DefaultMaxElem {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if st.Counters["dropped"] != 10 {
		t.Errorf("dropped counter = %d, want 10", st.Counters["dropped"])
	}

	small := openIn(t, newPair(t), Options{Mode: ModeIPSet, MaxElem: 2})
	t.Cleanup(func() { small.Detach() })
	err = small.Add(ctx, ban("192.0.2.10/32", 0), ban("192.0.2.11/32", 0), ban("192.0.2.12/32", 0))
	if !errors.Is(err, bans.ErrFull) {
		t.Fatalf("third ban in a set of 2: %v, want ErrFull", err)
	}
}

func TestDeleteListExpireSemantics(t *testing.T) {
	bothModes(t, func(t *testing.T, m Mode) {
		p := newPair(t)
		b := openIn(t, p, Options{Mode: m})
		t.Cleanup(func() { b.Detach() })
		past := bans.Ban{Prefix: netip.MustParsePrefix("203.0.113.0/25"), Jail: "old", Expires: time.Now().Add(-time.Minute)}
		a := ban("203.0.113.128/25", time.Hour)
		a2 := a
		a2.Jail = "replaced"
		if err := b.Add(ctx, past, a, a2); err != nil {
			t.Fatal(err)
		}
		list, _ := b.List(ctx)
		if len(list) != 2 {
			t.Fatalf("list = %v, want the expired and the live ban", list)
		}
		for _, x := range list {
			if x.Prefix == a.Prefix && x.Jail != "replaced" {
				t.Errorf("same prefix twice kept %q, want the last (replaced)", x.Jail)
			}
		}
		gone, err := b.Expire(ctx, time.Now())
		if err != nil || len(gone) != 1 || gone[0].Prefix != past.Prefix || gone[0].Jail != "old" {
			t.Fatalf("expire = %v, %v; want only %s", gone, err, past.Prefix)
		}
		if err := b.Add(ctx, bans.Ban{Prefix: netip.MustParsePrefix("0.0.0.0/0")}); err == nil {
			t.Error("a /0 ban was accepted")
		}
		if err := b.Add(ctx, bans.Ban{Prefix: netip.MustParsePrefix("::ffff:192.0.2.1/128")}); err == nil {
			t.Error("an IPv4-mapped prefix was accepted")
		}
		n, err := b.Delete(ctx, a.Prefix, a.Prefix, netip.MustParsePrefix("192.0.2.99/32"))
		if err != nil || n != 1 {
			t.Fatalf("delete = %d, %v; want 1", n, err)
		}
		if len(must(b.List(ctx))) != 0 {
			t.Fatalf("list not empty after delete")
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestScopeSetsDetached: the per-scope sets and their rules go with
// Detach, after a restart too, and nothing of them stays behind.
func TestScopeSetsDetached(t *testing.T) {
	p := newPair(t)
	b := openIn(t, p, Options{Mode: ModeIPSet})
	x, y := ban("192.0.2.2/32", time.Hour), ban("2001:db8::/64", time.Hour)
	x.Scope = Scope{Proto: "tcp", Ports: []PortRange{{From: 22, To: 22}}}
	y.Scope = Scope{Proto: "udp", Ports: []PortRange{{From: 53, To: 53}}}
	if err := b.Add(ctx, x, y); err != nil {
		t.Fatal(err)
	}
	sets := p.Host.Run(t, "ipset", "list", "-n")
	if n := strings.Count(sets, "xdpban-v"); n != 6 { // all-traffic, tcp/22, udp/53 sets, per family
		t.Fatalf("%d xdpban sets, want 6:\n%s", n, sets)
	}
	b.Close()
	b = openIn(t, p, Options{Mode: ModeIPSet})
	if err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := p.Host.Run(t, "ipset", "list", "-n"); strings.Contains(got, "xdpban") {
		t.Errorf("sets left after detach:\n%s", got)
	}
	if got := save(t, p, "iptables-save") + save(t, p, "ip6tables-save"); strings.Contains(got, "xdpban") {
		t.Errorf("rules left after detach:\n%s", got)
	}
}
