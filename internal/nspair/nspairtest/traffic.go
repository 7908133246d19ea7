package nspairtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Receiver counts UDP datagrams arriving at the host, per source address.
type Receiver struct {
	Port uint16
	mu   sync.Mutex
	seen map[netip.Addr]int
	cond *sync.Cond
	conn []*net.UDPConn
	done chan struct{}
	wg   sync.WaitGroup
}

// Listen opens UDP sockets on the host side (IPv4 and IPv6, on port) and
// counts what arrives until the test ends.
func (p *Pair) Listen(t testing.TB, port uint16) *Receiver {
	t.Helper()
	r := &Receiver{Port: port, seen: map[netip.Addr]int{}, done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	err := p.Host.Do(func() error {
		for _, nw := range []struct{ net, addr string }{{"udp4", "0.0.0.0"}, {"udp6", "[::]"}} {
			c, err := net.ListenUDP(nw.net, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(fmt.Sprintf("%s:%d", nw.addr, port))))
			if err != nil {
				return err
			}
			_ = c.SetReadBuffer(4 << 20)
			r.conn = append(r.conn, c)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listen udp %d in %s: %v", port, p.Host.Name, err)
	}
	for _, c := range r.conn {
		r.wg.Add(1)
		go r.read(c)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *Receiver) read(c *net.UDPConn) {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		_, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.mu.Lock()
		r.seen[from.Addr().Unmap()]++
		r.cond.Broadcast()
		r.mu.Unlock()
	}
}

// Close stops the receiver.
func (r *Receiver) Close() {
	select {
	case <-r.done:
		return
	default:
	}
	close(r.done)
	for _, c := range r.conn {
		c.Close()
	}
	r.wg.Wait()
}

// Count is how many datagrams from src have arrived so far.
func (r *Receiver) Count(src netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[src.Unmap()]
}

// WaitFor waits until at least n datagrams from src have arrived or d has
// passed, and returns the count.
func (r *Receiver) WaitFor(src netip.Addr, n int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		c := r.Count(src)
		if c >= n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Sender sends UDP datagrams from one attacker source address.
type Sender struct {
	conn *net.UDPConn
	From netip.Addr
}

// Sender opens a UDP socket in the attacker namespace bound to from (one
// of the attacker's addresses) aimed at the host's address of the same
// family on port.
func (p *Pair) Sender(t testing.TB, from netip.Addr, port uint16) *Sender {
	t.Helper()
	to := HostV4
	if from.Is6() && !from.Is4In6() {
		to = HostV6
	}
	var c *net.UDPConn
	err := p.Attacker.Do(func() error {
		var err error
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, port)))
		return err
	})
	if err != nil {
		t.Fatalf("udp socket from %s in %s: %v", from, p.Attacker.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Sender{conn: c, From: from}
}

// LocalPort is the UDP source port the datagrams carry.
func (s *Sender) LocalPort() uint16 {
	return uint16(s.conn.LocalAddr().(*net.UDPAddr).Port)
}

// Send sends n datagrams of size bytes of payload, paced so a veth queue
// never overflows (loss would look like a drop). Bounded: n is capped at
// 100,000 per call.
func (s *Sender) Send(t testing.TB, n, size int) {
	t.Helper()
	if n > 100000 {
		t.Fatalf("nspairtest: Send of %d datagrams exceeds the 100000 bound", n)
	}
	payload := make([]byte, size)
	for i := 0; i < n; i++ {
		if _, err := s.conn.Write(payload); err != nil {
			t.Fatalf("send from %s: %v", s.From, err)
		}
		if i%64 == 63 {
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// Deliver sends n datagrams from s and returns how many arrived at r,
// waiting up to settle for stragglers.
func Deliver(t testing.TB, s *Sender, r *Receiver, n int, settle time.Duration) int {
	t.Helper()
	before := r.Count(s.From)
	s.Send(t, n, 32)
	return r.WaitFor(s.From, before+n, settle) - before
}
