package loader

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// TestDropEventsNamespace: real drops on an attached interface produce
// sampled events naming the interface, the source and the port.
func TestDropEventsNamespace(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	r := p.Listen(t, 7010)
	x := openIn(t, p, pin)
	t.Cleanup(func() { _ = x.Detach() })
	var ifindex int
	if err := p.Host.Do(func() error {
		ifi, err := net.InterfaceByName(p.HostIf)
		if err == nil {
			ifindex = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := x.SetDropLog(5, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, err := x.DropEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := nspairtest.AttackerV4
	mustAdd(t, x, bans.Ban{Prefix: netip.PrefixFrom(a, 32), Jail: "sshd", Expires: time.Now().Add(time.Hour)})
	const n = 30
	if got := nspairtest.Deliver(t, p.Sender(t, a, 7010), r, n, 200*time.Millisecond); got != 0 {
		t.Fatalf("%d datagrams from the banned source arrived", got)
	}
	var got []DropEvent
	deadline := time.After(time.Second)
collect:
	for {
		select {
		case ev := <-evs:
			got = append(got, ev)
		case <-deadline:
			break collect
		}
	}
	e := reported(t, x, a.As4(), tV4)
	// Every drop is accounted for: by an event, in an event's suppressed
	// count, or still pending in the entry or its hit-cache slots.
	stood := e.EventsSuppressed
	for _, ev := range got {
		stood += 1 + ev.Suppressed
	}
	if len(got) < 5 || stood != n || e.Packets != n {
		t.Fatalf("%d events standing for %d drops (entry packets %d, pending %d), want 5+ events accounting for %d",
			len(got), stood, e.Packets, e.EventsSuppressed, n)
	}
	for _, ev := range got {
		if ev.Src != a || ev.Dst != nspairtest.HostV4 || ev.DstPort != 7010 || ev.Proto != 17 || ev.Ifindex != ifindex || ev.Jail != "sshd" {
			t.Fatalf("event %+v, want %s → %s:7010 udp on ifindex %d jail sshd", ev, a, nspairtest.HostV4, ifindex)
		}
	}
	t.Logf("%d drops → %d events, %d suppressed", n, len(got), e.EventsSuppressed)
}

// TestRateLimitNamespace: a burst of connection attempts from one source
// is cut to the limit (within one burst), while another source
// connecting at a normal rate is untouched.
func TestRateLimitNamespace(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	const (
		port  = 2222
		rate  = 5
		burst = 5
		flood = 60
	)
	// The rules come in through Options, as the daemon passes them.
	var x *XDP
	if err := p.Host.Do(func() error {
		var err error
		x, err = Open(context.Background(), Options{
			Interfaces: []string{p.HostIf}, PinPath: pin, MapSizes: smallSizes, Logger: testLogger(t),
			RateLimits: []RateLimitRule{{Port: port, Jail: "sshd", Rate: rate, Per: time.Second, Burst: burst}},
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Detach() })
	normal := netip.MustParseAddr("192.0.2.3") // on-link for the host: replies need no route
	p.AddAttackerAddr(t, normal)

	var ln net.Listener
	if err := p.Host.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ":2222")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accepted := map[netip.Addr]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted[c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()]++
			mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })

	// The flood: non-blocking connects, one SYN each. The first
	// retransmission comes after a second; counting ends before it.
	start := time.Now()
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	if err := p.Attacker.Do(func() error {
		for range flood {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: nspairtest.AttackerV4.As4()}); err != nil {
				return err
			}
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: nspairtest.HostV4.As4(), Port: port})
			if err != nil && !errors.Is(err, unix.EINPROGRESS) {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("flood: %v", err)
	}

	// The normal source: 3 connections 250 ms apart, under the limit.
	if err := p.Attacker.Do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: normal.AsSlice()}, Timeout: 500 * time.Millisecond}
		for i := range 3 {
			if i > 0 {
				time.Sleep(250 * time.Millisecond)
			}
			c, err := d.Dial("tcp", netip.AddrPortFrom(nspairtest.HostV4, port).String())
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	}); err != nil {
		t.Fatalf("normal-rate source could not connect: %v", err)
	}
	time.Sleep(time.Until(start.Add(900 * time.Millisecond)))
	elapsed := time.Since(start)
	mu.Lock()
	fl, nm := accepted[nspairtest.AttackerV4], accepted[normal]
	mu.Unlock()

	maxOK := burst + int(elapsed.Seconds()*rate) + 1
	if fl < burst || fl > maxOK {
		t.Errorf("flood of %d SYNs: %d connections accepted in %v, want %d..%d", flood, fl, elapsed.Round(time.Millisecond), burst, maxOK)
	}
	if nm != 3 {
		t.Errorf("normal source: %d of 3 connections accepted", nm)
	}
	rl, err := x.RateLimited(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rl) != 1 || rl[0].Prefix != netip.PrefixFrom(nspairtest.AttackerV4, 32) || rl[0].Jail != "sshd" ||
		int(rl[0].Dropped) < flood-maxOK {
		t.Errorf("rate limited sources %+v, want only %s with at least %d dropped", rl, nspairtest.AttackerV4, flood-maxOK)
	}
	c, err := x.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if int(c["rate_limited"]) != int(rl[0].Dropped) {
		t.Errorf("rate_limited counter %d, bucket says %d", c["rate_limited"], rl[0].Dropped)
	}
	t.Logf("flood %d SYNs → %d accepted, %d dropped; normal source %d/3", flood, fl, rl[0].Dropped, nm)
}
