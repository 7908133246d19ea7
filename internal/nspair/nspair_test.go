package nspair_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/nspair"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

const prefix = "xbnp-"

func exists(name string) bool {
	_, err := os.Stat(filepath.Join(nspair.NetnsDir, name))
	return err == nil
}

func TestNewBuildsIsolatedPairAndCloseRemovesIt(t *testing.T) {
	nspairtest.Require(t)
	p, err := nspair.New(nspair.Config{Prefix: prefix, IfPrefix: "xbnp", HostRole: "bastion"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if !strings.HasPrefix(p.Host.Name, prefix+strconv.Itoa(os.Getpid())+"-") || !strings.HasSuffix(p.Host.Name, "-bastion") ||
		!strings.HasSuffix(p.Attacker.Name, "-attacker") || !strings.HasSuffix(p.HostIf, "b") {
		t.Fatalf("names %s %s %s do not follow the scheme", p.Host.Name, p.Attacker.Name, p.HostIf)
	}
	root, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	for _, dev := range []string{p.HostIf, p.AttackerIf} {
		if strings.Contains(string(root), dev) {
			t.Errorf("%s is visible in the root namespace", dev)
		}
	}
	ctx := t.Context()
	for _, ns := range []*nspair.NS{p.Host, p.Attacker} {
		for _, fam := range []string{"-4", "-6"} {
			if rt, err := ns.Output(ctx, "ip", fam, "route", "show", "default"); err != nil || strings.TrimSpace(rt) != "" {
				t.Errorf("%s default route: %q (%v)", ns.Name, rt, err)
			}
		}
	}
	if rp, err := p.Host.Output(ctx, "sysctl", "-n", "net.ipv4.conf."+p.HostIf+".rp_filter"); err != nil || strings.TrimSpace(rp) != "0" {
		t.Errorf("host rp_filter on %s: %q (%v)", p.HostIf, rp, err)
	}
	neigh, err := p.Attacker.Output(ctx, "ip", "neigh", "show", "dev", p.AttackerIf, "nud", "permanent")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{nspair.HostV4, nspair.HostV6} {
		if !strings.Contains(neigh, a.String()+" ") {
			t.Errorf("no static neighbour for %s on the attacker: %s", a, neigh)
		}
	}
	for _, dst := range []netip.Addr{nspair.HostV4, nspair.HostV6} {
		if err := reaches(p, dst); err != nil {
			t.Errorf("attacker to %s: %v", dst, err)
		}
	}
	if err := p.AddAttackerAddr(netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("a non-documentation attacker address was accepted")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(p.Host.Name) || exists(p.Attacker.Name) {
		t.Fatalf("namespaces %s, %s still exist after Close", p.Host.Name, p.Attacker.Name)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestNewUndoesOnError: the attacker namespace cannot be made (a slash in
// its name), so the host namespace made before must be gone again.
func TestNewUndoesOnError(t *testing.T) {
	nspairtest.Require(t)
	id := nspair.NewID()
	p, err := nspair.New(nspair.Config{Prefix: prefix, ID: id, AttackerRole: "a/b"})
	if err == nil {
		p.Close()
		t.Fatal("New succeeded with an attacker namespace name containing a slash")
	}
	if host := prefix + id + "-host"; exists(host) {
		exec.Command("ip", "netns", "del", host).Run()
		t.Fatalf("%s left behind after New failed: %v", host, err)
	}
}

func TestIsDocumentation(t *testing.T) {
	if nspair.IsDocumentation(netip.MustParseAddr("8.8.8.8")) || nspair.IsDocumentation(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("non-documentation address accepted")
	}
	if !nspair.IsDocumentation(netip.MustParseAddr("::ffff:203.0.113.5")) {
		t.Fatal("IPv4-mapped documentation address refused")
	}
}

// reaches sends one datagram from the attacker to dst and reads it on the
// host.
func reaches(p *nspair.Pair, dst netip.Addr) error {
	var rcv *net.UDPConn
	if err := p.Host.Do(func() error {
		var err error
		rcv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 0)))
		return err
	}); err != nil {
		return err
	}
	defer rcv.Close()
	to := rcv.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := p.Attacker.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}); err != nil {
		return err
	}
	_ = rcv.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 8)
	if _, from, err := rcv.ReadFromUDPAddrPort(buf); err != nil {
		return fmt.Errorf("nothing arrived: %w", err)
	} else if a := from.Addr().Unmap(); a != nspair.AttackerV4 && a != nspair.AttackerV6 {
		return fmt.Errorf("datagram from %s, not the attacker", a)
	}
	return nil
}
