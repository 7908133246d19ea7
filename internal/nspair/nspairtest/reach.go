package nspairtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ServeTCP listens on the host's v4 and v6 addresses on each port and
// accepts (and closes) every connection until the test ends, so an
// attacker's connect says whether the path is open.
func (p *Pair) ServeTCP(t testing.TB, ports ...uint16) {
	t.Helper()
	for _, port := range ports {
		for _, a := range []netip.Addr{HostV4, HostV6} {
			var l net.Listener
			err := p.Host.Do(func() error {
				var err error
				l, err = net.Listen("tcp", netip.AddrPortFrom(a, port).String())
				return err
			})
			if err != nil {
				t.Fatalf("listen tcp %s in %s: %v", netip.AddrPortFrom(a, port), p.Host.Name, err)
			}
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			t.Cleanup(func() { l.Close() })
		}
	}
}

// reachTimeout bounds one probe: a dropped SYN or echo shows as silence,
// and the veth answers in microseconds otherwise.
const reachTimeout = time.Second

// TCPConnects reports whether a TCP connection from the attacker address
// from to the host's address of the same family on port is accepted. A
// dropped SYN (timeout) and a reset (REJECT) are both false.
func (p *Pair) TCPConnects(t testing.TB, from netip.Addr, port uint16) bool {
	t.Helper()
	to := HostV4
	if from.Is6() && !from.Is4In6() {
		to = HostV6
	}
	var ok bool
	err := p.Attacker.Do(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), Timeout: reachTimeout}
		c, err := d.Dial("tcp", netip.AddrPortFrom(to, port).String())
		if err == nil {
			ok = true
			return c.Close()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) ||
			strings.Contains(err.Error(), "connection refused") {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("tcp connect %s -> %s:%d in %s: %v", from, to, port, p.Attacker.Name, err)
	}
	return ok
}

// Pings reports whether an ICMP echo from the attacker address from to
// the host's address of the same family is answered (one try; the veth
// loses nothing).
func (p *Pair) Pings(t testing.TB, from netip.Addr) bool {
	t.Helper()
	v6 := from.Is6() && !from.Is4In6()
	to, network := HostV4, "ip4:icmp"
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if v6 {
		to, network, typ = HostV6, "ip6:ipv6-icmp", ipv6.ICMPTypeEchoRequest
	}
	var c *icmp.PacketConn
	err := p.Attacker.Do(func() error {
		var err error
		c, err = icmp.ListenPacket(network, from.String())
		return err
	})
	if err != nil {
		t.Fatalf("icmp socket on %s in %s: %v", from, p.Attacker.Name, err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	msg, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("xdpban-reach")}}).Marshal(nil)
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: to.AsSlice()}); err != nil {
		t.Fatalf("ping %s from %s: %v", to, from, err)
	}
	proto := 1
	if v6 {
		proto = 58
	}
	deadline := time.Now().Add(reachTimeout)
	buf := make([]byte, 1500)
	for {
		_ = c.SetReadDeadline(deadline)
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || peer.String() != to.String() {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && (m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) && e.Seq == 1 && string(e.Data) == "xdpban-reach" {
			return true
		}
	}
}

// Reach is the reachability matrix of issue 15, seen from one attacker
// (one v4 and one v6 source): what a ban's scope lets through.
type Reach struct {
	PingV4, TCP22, TCP8080, PingV6, TCP22V6 bool
}

func (r Reach) String() string {
	f := func(b bool) string {
		if b {
			return "open"
		}
		return "blocked"
	}
	return fmt.Sprintf("ping v4 %s, tcp/22 %s, tcp/8080 %s, ping v6 %s, tcp/22 v6 %s",
		f(r.PingV4), f(r.TCP22), f(r.TCP8080), f(r.PingV6), f(r.TCP22V6))
}

// Matrix measures Reach from v4 and v6; the host must ServeTCP(22, 8080).
func (p *Pair) Matrix(t testing.TB, v4, v6 netip.Addr) Reach {
	t.Helper()
	return Reach{
		PingV4:  p.Pings(t, v4),
		TCP22:   p.TCPConnects(t, v4, 22),
		TCP8080: p.TCPConnects(t, v4, 8080),
		PingV6:  p.Pings(t, v6),
		TCP22V6: p.TCPConnects(t, v6, 22),
	}
}
