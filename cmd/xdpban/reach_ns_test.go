package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// TestReachabilityMatrix: one ban means the same on every backend, seen
// from outside. For xdp, nftables and iptables, the daemon and CLI as an
// operator runs them: the attacker's reach (ping v4, tcp/22, tcp/8080,
// ping v6, tcp/22 v6) before any ban, after `xdpban ban ADDR` (all
// traffic), and after `xdpban ban ADDR --jail sshd` with sshd's
// banscope = port (tcp/22). One expected matrix for all three.
func TestReachabilityMatrix(t *testing.T) {
	open := nspairtest.Reach{PingV4: true, TCP22: true, TCP8080: true, PingV6: true, TCP22V6: true}
	stages := []struct {
		name  string
		ban   []string // extra ban arguments; nil bans nothing
		scope string   // listed scope of the bans
		want  nspairtest.Reach
	}{
		{name: "before any ban", want: open},
		{name: "after a CLI ban", ban: []string{}, scope: "all", want: nspairtest.Reach{}},
		{name: "after a banscope = port ban (--jail sshd)", ban: []string{"--jail", "sshd"}, scope: "tcp/22",
			want: nspairtest.Reach{PingV4: true, TCP8080: true, PingV6: true}},
	}
	seen := map[string][]nspairtest.Reach{}
	for _, backend := range []string{"xdp", "nftables", "iptables"} {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t)
			jails := "[sshd]\nenabled = false\nbanscope = port\nport = ssh\nprotocol = tcp\n"
			if err := os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(jails), 0o644); err != nil {
				t.Fatal(err)
			}
			w.p.ServeTCP(t, 22, 8080)
			w.start(t, "--backend", backend)
			v4, v6 := nspairtest.AttackerV4, nspairtest.AttackerV6
			for _, st := range stages {
				if st.ban != nil {
					w.mustCLI(t, "unban", "--all")
					w.mustCLI(t, append([]string{"ban", v4.String(), v6.String()}, st.ban...)...)
					// The v6 prefix may be narrowed below /64 (the host's own
					// address shares it): whatever was banned, in this scope.
					l := w.list(t)
					if len(l) != 2 {
						t.Fatalf("%s: %d bans listed, want 2: %v", st.name, len(l), l)
					}
					for p, e := range l {
						if e.Scope != st.scope {
							t.Fatalf("%s: %s listed with scope %q, want %s", st.name, p, e.Scope, st.scope)
						}
					}
				}
				got := w.p.Matrix(t, v4, v6)
				if got != st.want {
					t.Errorf("%s on %s: %s; want %s", st.name, backend, got, st.want)
				}
				seen[backend] = append(seen[backend], got)
			}
			if !t.Failed() {
				t.Logf("measured on %s: before: %s | CLI ban: %s | --jail sshd: %s", backend, seen[backend][0], seen[backend][1], seen[backend][2])
			}
		})
	}
	for _, b := range []string{"nftables", "iptables"} {
		for i := range seen["xdp"] {
			if i < len(seen[b]) && seen[b][i] != seen["xdp"][i] {
				t.Errorf("%s: %s differs from xdp: %s vs %s", stages[i].name, b, seen[b][i], seen["xdp"][i])
			}
		}
	}
}
