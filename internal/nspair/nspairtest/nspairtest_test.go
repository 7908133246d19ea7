package nspairtest

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestPairDeliversAndStaysIsolated(t *testing.T) {
	p := New(t)
	extra4 := netip.MustParseAddr("198.51.100.9")
	extra6 := netip.MustParseAddr("2001:db8:1::9")
	p.AddAttackerAddr(t, extra4)
	p.AddAttackerAddr(t, extra6)

	r := p.Listen(t, 9999)
	for _, from := range []netip.Addr{AttackerV4, AttackerV6, extra4, extra6} {
		s := p.Sender(t, from, 9999)
		if got := Deliver(t, s, r, 50, time.Second); got != 50 {
			t.Errorf("from %s: %d of 50 datagrams arrived", from, got)
		}
	}

	// Neither end of the veth may be visible in the root namespace.
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	for _, dev := range []string{p.HostIf, p.AttackerIf} {
		if strings.Contains(string(out), dev) {
			t.Errorf("%s is visible in the root namespace", dev)
		}
	}
	// The namespaces have no default route: nothing can leave.
	for _, ns := range []*NS{p.Host, p.Attacker} {
		for _, fam := range []string{"-4", "-6"} {
			if rt := ns.Run(t, "ip", fam, "route", "show", "default"); strings.TrimSpace(rt) != "" {
				t.Errorf("%s has a default route: %s", ns.Name, rt)
			}
		}
	}
}
