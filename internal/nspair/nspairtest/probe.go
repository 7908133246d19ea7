package nspairtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/nspair"
)

// Probe times a ban from the outside: a paced stream of numbered UDP
// datagrams from one attacker source to one host socket, with the send
// time of each datagram recorded. A ban shows as a cut: from some
// datagram on, none arrives. The first datagram of that final missing run
// is "the first packet dropped", and its send time is when the ban was in
// force at the latest (give or take the veth transit, microseconds).
//
// Datagrams missing before the cut (receive buffer overflow on a loaded
// machine) are counted as Lost, never as drops, so callers can check the
// XDP entry's packet counter against Cut.Dropped exactly.
//
// It needs no testing.TB, so `make bench` (a program with namespaces of
// its own) uses it too: NewProbe takes sockets already opened in the right
// namespaces. Pair.Probe opens them for tests.
type Probe struct {
	send, recv *net.UDPConn
	interval   time.Duration

	mu      sync.Mutex
	sentAt  []time.Time // by sequence number
	arrived []bool      // by sequence number
	nSent   int
	nArr    int
	top     int // highest sequence number arrived, -1 before any

	stop    chan struct{}
	senderr error
	wg      sync.WaitGroup
	once    sync.Once
}

// ProbeMax bounds one probe's stream (at 100 µs pacing, 20 s of traffic).
const ProbeMax = 200000

// NewProbe returns a probe sending on send (connected to the host socket
// recv is bound to) every interval. Call Start, then WaitCut; Close
// releases both sockets.
func NewProbe(send, recv *net.UDPConn, interval time.Duration) *Probe {
	return &Probe{send: send, recv: recv, interval: interval, top: -1, stop: make(chan struct{})}
}

// Probe opens a probe from the attacker address from to the host's
// address of the same family on port (which must be free), sending every
// interval. It is closed when the test ends.
func (p *Pair) Probe(t testing.TB, from netip.Addr, port uint16, interval time.Duration) *Probe {
	t.Helper()
	pr, err := OpenProbe(p.pair, from, port, interval)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	return pr
}

// OpenProbe is Pair.Probe for a program (make bench): the caller closes
// the probe.
func OpenProbe(p *nspair.Pair, from netip.Addr, port uint16, interval time.Duration) (*Probe, error) {
	to := HostV4
	if from.Is6() && !from.Is4In6() {
		to = HostV6
	}
	dst := netip.AddrPortFrom(to, port)
	var recv, send *net.UDPConn
	err := p.Host.Do(func() error {
		var err error
		recv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("probe: listen on %s in %s: %w", dst, p.Host.Name, err)
	}
	err = p.Attacker.Do(func() error {
		var err error
		send, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		recv.Close()
		return nil, fmt.Errorf("probe: udp socket from %s in %s: %w", from, p.Attacker.Name, err)
	}
	return NewProbe(send, recv, interval), nil
}

// Start starts the stream and returns once warm datagrams have arrived,
// proving the path is open before anything is timed.
func (p *Probe) Start(ctx context.Context, warm int) error {
	_ = p.recv.SetReadBuffer(4 << 20)
	p.wg.Add(2)
	go p.receive()
	go p.transmit()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n, err := p.nArr, p.senderr
		p.mu.Unlock()
		switch {
		case n >= warm:
			return nil
		case err != nil:
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("probe from %s: %d of %d warm-up datagrams arrived within 5s: the path is not open", p.send.LocalAddr(), n, warm)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *Probe) transmit() {
	defer p.wg.Done()
	var buf [8]byte
	// The runtime's timers wake up a millisecond late when nothing else
	// is going on; nanosleep on this goroutine's own thread keeps the
	// pacing (the figure's resolution) near the interval asked for.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pause := unix.NsecToTimespec(p.interval.Nanoseconds())
	for seq := 0; seq < ProbeMax; {
		binary.BigEndian.PutUint64(buf[:], uint64(seq))
		now := time.Now()
		_, err := p.send.Write(buf[:])
		switch {
		case err == nil:
			p.mu.Lock()
			p.grow(seq)
			p.sentAt[seq] = now
			p.nSent = seq + 1
			p.mu.Unlock()
			seq++
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.EAGAIN):
			// A stale ICMP error or a full queue: this datagram
			// was not sent, so it gets no number; retried next round.
		default:
			p.mu.Lock()
			p.senderr = fmt.Errorf("probe: send from %s: %w", p.send.LocalAddr(), err)
			p.mu.Unlock()
			return
		}
		select {
		case <-p.stop:
			return
		default:
		}
		_ = unix.Nanosleep(&pause, nil)
	}
}

func (p *Probe) receive() {
	defer p.wg.Done()
	var buf [64]byte
	for {
		n, err := p.recv.Read(buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n != 8 {
			continue
		}
		seq := int(binary.BigEndian.Uint64(buf[:8]))
		if seq >= ProbeMax {
			continue
		}
		p.mu.Lock()
		// The receiver may run before the sender has recorded the send.
		p.grow(seq)
		if !p.arrived[seq] {
			p.arrived[seq] = true
			p.nArr++
			p.top = max(p.top, seq)
		}
		p.mu.Unlock()
	}
}

// grow makes room for sequence number seq; p.mu held.
func (p *Probe) grow(seq int) {
	for seq >= len(p.arrived) {
		p.arrived = append(p.arrived, false)
		p.sentAt = append(p.sentAt, time.Time{})
	}
}

// Cut is where a probe's stream stopped arriving.
type Cut struct {
	// Sent and Arrived count datagrams.
	Sent, Arrived int
	// First is the sequence number of the first datagram dropped: the
	// first of the unbroken run of datagrams, up to the last sent, that
	// never arrived. FirstSent is its send time, LastArrivedSent the
	// send time of the datagram just before it (which arrived).
	First                      int
	FirstSent, LastArrivedSent time.Time
	// Lost are datagrams missing before First: not the ban's doing.
	Lost int
	// Interval is the mean time between two sends.
	Interval time.Duration
}

// Dropped is how many datagrams the cut swallowed.
func (c Cut) Dropped() int { return c.Sent - c.First }

// Since is the time from t0 to the first dropped datagram's send.
func (c Cut) Since(t0 time.Time) time.Duration { return c.FirstSent.Sub(t0) }

// WaitCut waits until nothing sent during the last quiet has arrived (and
// at least 10 datagrams were sent in that time) and still nothing more
// has 20 ms later, stops the stream, lets stragglers in, and returns the
// cut. It fails when the stream is still flowing after limit.
func (p *Probe) WaitCut(ctx context.Context, quiet, limit time.Duration) (Cut, error) {
	const minQuiet = 10
	const settle = 20 * time.Millisecond
	deadline := time.Now().Add(limit)
	for {
		p.mu.Lock()
		next, sent, serr := p.top+1, p.nSent, p.senderr
		cut := next < sent && sent-next >= minQuiet && time.Since(p.sentAt[next]) >= quiet
		p.mu.Unlock()
		if serr != nil {
			return Cut{}, serr
		}
		if cut {
			// A receiver starved for longer than quiet looks like a
			// cut; one that catches up within settle was not one.
			time.Sleep(settle)
			p.mu.Lock()
			moved := p.top+1 != next
			p.mu.Unlock()
			if !moved {
				break
			}
			continue
		}
		if time.Now().After(deadline) {
			return Cut{}, fmt.Errorf("probe from %s: datagrams still arriving %v after the start of the wait (%d sent, last arrived #%d)", p.send.LocalAddr(), limit, sent, next-1)
		}
		if err := ctx.Err(); err != nil {
			return Cut{}, err
		}
		time.Sleep(time.Millisecond)
	}
	p.halt()
	// Let anything still queued on the host be read: only then is the
	// cut final.
	time.Sleep(settle)
	p.recv.Close()
	p.wg.Wait()

	p.mu.Lock()
	defer p.mu.Unlock()
	c := Cut{Sent: p.nSent, Arrived: p.nArr, First: p.top + 1}
	if c.First == 0 || c.Sent-c.First < minQuiet {
		return c, fmt.Errorf("probe from %s: no cut: datagram #%d of %d arrived after the stream looked stopped", p.send.LocalAddr(), p.top, c.Sent)
	}
	for i := 0; i < c.First; i++ {
		if !p.arrived[i] {
			c.Lost++
		}
	}
	c.FirstSent = p.sentAt[c.First]
	c.LastArrivedSent = p.sentAt[c.First-1]
	if c.Sent > 1 {
		c.Interval = p.sentAt[c.Sent-1].Sub(p.sentAt[0]) / time.Duration(c.Sent-1)
	}
	return c, nil
}

func (p *Probe) halt() {
	p.once.Do(func() { close(p.stop) })
}

// Close stops the stream and closes both sockets. Safe to call twice.
func (p *Probe) Close() {
	p.halt()
	p.send.Close()
	p.recv.Close()
	p.wg.Wait()
}
