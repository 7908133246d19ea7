package drops

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
	"github.com/xdpban/xdpban/loader"
)

// TestFloodEvents floods the host from two banned sources through the
// real XDP program in namespaces and checks what reaches a watcher: the
// per-address and global caps hold, every field is the packet's, and for
// each source the events' 1+suppressed add up to the packets dropped.
func TestFloodEvents(t *testing.T) {
	nspairtest.Require(t)
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	const port, perAddr, global = 7301, 5, 8
	r := p.Listen(t, port) // nothing may arrive
	var x *loader.XDP
	if err := p.Host.Do(func() error {
		var err error
		x, err = loader.Open(context.Background(), loader.Options{
			Interfaces: []string{p.HostIf}, PinPath: pin,
			MapSizes:    loader.MapSizes{V4: 1024, V6: 1024, V4Net: 64, V6Net: 64},
			DropLogRate: perAddr, DropLogGlobal: global,
			Logger: slog.New(slog.DiscardHandler),
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Detach() })
	var hostIndex int
	p.Host.Do(func() error {
		ifi, err := net.InterfaceByName(p.HostIf)
		if err == nil {
			hostIndex = ifi.Index
		}
		return err
	})

	srcs := []netip.Addr{nspairtest.AttackerV4, nspairtest.AttackerV6}
	ctx := context.Background()
	for _, a := range srcs {
		if err := x.Add(ctx, bans.Ban{Prefix: bans.Widen{}.Addr(a), Jail: "sshd"}); err != nil {
			t.Fatal(err)
		}
	}

	evctx, stop := context.WithCancel(ctx)
	defer stop()
	raw, err := x.DropEvents(evctx)
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub()
	watch, lost := hub.Subscribe(evctx, netip.Prefix{}, 1024)
	// The reader runs in the test's namespace, where the host's ifindex
	// names nothing (or something else): check the index on the raw
	// events, then hand them on as the daemon's Pump would.
	badIndex := make(chan int, 1)
	go func() {
		for ev := range raw {
			if ev.Ifindex != hostIndex {
				select {
				case badIndex <- ev.Ifindex:
				default:
				}
			}
			hub.Publish(FromBackend(ev))
		}
	}()

	senders := map[netip.Addr]*nspairtest.Sender{}
	for _, a := range srcs {
		senders[a] = p.Sender(t, a, port)
	}
	// The flood: 2000 datagrams from each source, timed, so the caps can
	// be checked against the number of one-second windows it spanned.
	start := time.Now()
	for _, a := range srcs {
		senders[a].Send(t, 2000, 32)
	}
	floodSecs := time.Since(start)
	// After a full window, one more datagram each: its event hands over
	// every drop still held back, closing the books.
	time.Sleep(1100 * time.Millisecond)
	for _, a := range srcs {
		senders[a].Send(t, 1, 32)
	}
	if got := r.WaitFor(srcs[0], 1, 200*time.Millisecond) + r.Count(srcs[1]); got != 0 {
		t.Fatalf("%d datagrams from banned sources were delivered", got)
	}

	list, err := x.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	packets := map[netip.Addr]uint64{}
	for _, b := range list {
		for _, a := range srcs {
			if b.Prefix.Contains(a) {
				packets[a] = b.Packets
			}
		}
	}

	events := map[netip.Addr][]Event{}
	accounted := map[netip.Addr]uint64{}
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-watch:
			events[ev.Src] = append(events[ev.Src], ev)
			accounted[ev.Src] += 1 + ev.Suppressed
			done = accounted[srcs[0]] == packets[srcs[0]] && accounted[srcs[1]] == packets[srcs[1]]
		case <-deadline:
			done = true
		}
	}
	windows := int(floodSecs/time.Second) + 1
	total := 0
	for _, a := range srcs {
		evs := events[a]
		total += len(evs)
		if packets[a] != 2001 {
			t.Errorf("%s: entry counted %d packets, 2001 sent", a, packets[a])
		}
		if accounted[a] != packets[a] {
			t.Errorf("%s: %d events with suppressed counts account for %d drops, the entry dropped %d", a, len(evs), accounted[a], packets[a])
		}
		// The last event is the closing one; the flood's are before it.
		if n := len(evs) - 1; n < 1 || n > perAddr*windows {
			t.Errorf("%s: %d events during a %v flood, want 1..%d (%d/s per address)", a, n, floodSecs, perAddr*windows, perAddr)
		}
		dst, wantLen := nspairtest.HostV4, uint32(14+20+8+32)
		if a.Is6() {
			dst, wantLen = nspairtest.HostV6, 14+40+8+32
		}
		lport := senders[a].LocalPort()
		for _, ev := range evs {
			if ev.Dst != dst || ev.Proto != ProtoUDP || ev.SPort != lport || ev.DPort != port || ev.Len != wantLen ||
				ev.Flags != 0 || ev.Jail != "sshd" || ev.Time.Before(start.Add(-time.Second)) || ev.Time.After(time.Now()) {
				t.Errorf("%s: event %s: want dst %s udp sport %d dport %d len %d jail sshd", a, ev.Line(), dst, lport, port, wantLen)
				break
			}
		}
	}
	if total-len(srcs) > global*windows {
		t.Errorf("%d events in %d window(s), global cap %d/s", total-len(srcs), windows, global)
	}
	select {
	case i := <-badIndex:
		t.Errorf("event from ifindex %d, the host end is %d", i, hostIndex)
	default:
	}
	if lost() != 0 {
		t.Errorf("watcher lost %d drops", lost())
	}
	t.Logf("flood %v: %v packets, %d+%d events (incl. closing ones)", floodSecs, packets,
		len(events[srcs[0]]), len(events[srcs[1]]))
}
