package iptables

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/bans/bantest"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// openIn opens the backend inside the pair's host namespace and fails the
// test on error.
func openIn(t *testing.T, p *nspairtest.Pair, o Options) *IPTables {
	t.Helper()
	o.Netns = p.Host.Path()
	b, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open iptables backend in %s: %v", p.Host.Name, err)
	}
	return b
}

// assertRootClean fails if the root namespace shows any xdpban trace:
// everything these tests do must stay inside their namespaces.
func assertRootClean(t *testing.T) {
	t.Helper()
	for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list", "-n"}} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil {
			t.Errorf("root namespace: %s: %v: %s", c[0], err, out)
			continue
		}
		if strings.Contains(string(out), "xdpban") {
			t.Errorf("root namespace has an xdpban trace in %s:\n%s", c[0], out)
		}
	}
}

func TestConformance(t *testing.T) {
	for _, m := range []Mode{ModeIPSet, ModeRules} {
		t.Run(string(m), func(t *testing.T) {
			bantest.Run(t, func(t *testing.T, p *nspairtest.Pair) func() bans.Backend {
				t.Cleanup(func() { assertRootClean(t) })
				return func() bans.Backend {
					b := openIn(t, p, Options{Mode: m})
					if b.Mode() != m {
						t.Fatalf("mode = %s, want %s", b.Mode(), m)
					}
					return b
				}
			})
		})
	}
}
