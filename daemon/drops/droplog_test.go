package drops

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

func sample() Event {
	return Event{Time: time.Date(2026, 11, 24, 17, 0, 0, 123456789, time.UTC), Iface: "veth0",
		Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("192.0.2.1"), Proto: ProtoTCP,
		SPort: 40000, DPort: 22, Len: 60, Flags: 0x02, Jail: "sshd", Suppressed: 12}
}

func TestLineFormat(t *testing.T) {
	v6 := sample()
	v6.Src, v6.Dst = netip.MustParseAddr("::ffff:192.0.2.9"), netip.MustParseAddr("2001:db8::1")
	v6.Proto, v6.Flags, v6.Jail, v6.Iface = ProtoICMPv6, 0, "", ""
	udp := sample()
	udp.Src, udp.Proto, udp.Jail, udp.Suppressed = netip.MustParseAddr("2001:db8::2"), ProtoUDP, "my jail", 0
	synack := sample()
	synack.Flags, synack.Proto, synack.Iface = 0x12|0x80, ProtoTCP, "-"
	for _, c := range []struct {
		ev   Event
		want string
	}{
		{sample(), "drop time=2026-11-24T17:00:00.123456789Z iface=veth0 src=192.0.2.2 dst=192.0.2.1 proto=tcp sport=40000 dport=22 len=60 flags=S jail=sshd suppressed=12"},
		{v6, "drop time=2026-11-24T17:00:00.123456789Z iface=- src=192.0.2.9 dst=2001:db8::1 proto=icmpv6 len=60 jail=- suppressed=12"},
		{udp, `drop time=2026-11-24T17:00:00.123456789Z iface=veth0 src=2001:db8::2 dst=192.0.2.1 proto=udp sport=40000 dport=22 len=60 jail="my jail" suppressed=0`},
		{synack, `drop time=2026-11-24T17:00:00.123456789Z iface="-" src=192.0.2.2 dst=192.0.2.1 proto=tcp sport=40000 dport=22 len=60 flags=SAC jail=sshd suppressed=12`},
	} {
		if got := c.ev.Line(); got != c.want {
			t.Errorf("line\n got %s\nwant %s", got, c.want)
		}
		back, err := ParseLine(c.ev.Line())
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", c.ev.Line(), err)
		}
		c.ev.Src, c.ev.Dst = c.ev.Src.Unmap(), c.ev.Dst.Unmap()
		if !HasPorts(c.ev.Proto) {
			c.ev.SPort, c.ev.DPort = 0, 0
		}
		if c.ev.Proto != ProtoTCP {
			c.ev.Flags = 0
		}
		if back != c.ev {
			t.Errorf("round trip\n got %+v\nwant %+v", back, c.ev)
		}
	}
}

func TestJSONFormat(t *testing.T) {
	b, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-11-24T17:00:00.123456789Z","iface":"veth0","src":"192.0.2.2","dst":"192.0.2.1","proto":"tcp","sport":40000,"dport":22,"len":60,"flags":"S","jail":"sshd","suppressed":12}`
	if string(b) != want {
		t.Errorf("json\n got %s\nwant %s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back != sample() {
		t.Errorf("round trip %+v, %v", back, err)
	}
	icmp := sample()
	icmp.Proto = ProtoICMP
	b, _ = json.Marshal(icmp)
	if strings.Contains(string(b), "sport") || strings.Contains(string(b), "flags") {
		t.Errorf("icmp JSON %s carries ports or flags", b)
	}
}

func TestParseLineRejectsBadInput(t *testing.T) {
	good := sample().Line()
	for _, c := range []struct{ line, want string }{
		{"hello", "not a drop event"},
		{strings.Replace(good, "proto=tcp", "proto=tcpx", 1), `proto "tcpx"`},
		{strings.Replace(good, "sport=40000", "sport=70000", 1), `sport "70000"`},
		{strings.Replace(good, "flags=S", "flags=Z", 1), `flags "Z"`},
		{strings.Replace(good, "src=192.0.2.2", "src=192.0.2.999", 1), `src "192.0.2.999"`},
		{strings.Replace(good, "time=2026", "time=x2026", 1), "time"},
		{good + " extra=1", `unknown key "extra"`},
		{good + " jail=x", "jail appears twice"},
		{strings.Replace(good, " len=60", "", 1), "len is missing"},
		{strings.Replace(good, "jail=sshd", `jail="ss`, 1), "unterminated"},
		{good + " junk", "not key=value"},
	} {
		_, err := ParseLine(c.line)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseLine(%q): %v, want an error containing %q", c.line, err, c.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	ev := sample()
	for _, c := range []struct {
		f     string
		match bool
	}{
		{"", true}, {"192.0.2.2", true}, {"192.0.2.3", false}, {"192.0.2.0/24", true},
		{"198.51.100.0/24", false}, {"::ffff:192.0.2.2", true}, {"2001:db8::2", false},
	} {
		p, err := ParseFilter(c.f)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", c.f, err)
		}
		if Match(p, ev) != c.match {
			t.Errorf("filter %q on %s: match %v, want %v", c.f, ev.Src, !c.match, c.match)
		}
	}
	ev.Src = netip.MustParseAddr("2001:db8::2")
	if p, _ := ParseFilter("2001:db8::3"); Match(p, ev) {
		t.Errorf("2001:db8::3 matched 2001:db8::2: watch must not widen to /64")
	}
	if _, err := ParseFilter("nonsense"); err == nil || !strings.Contains(err.Error(), `"nonsense"`) {
		t.Errorf("bad filter: %v", err)
	}
}

func TestHubFiltersAndUnsubscribes(t *testing.T) {
	h := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	f, _ := ParseFilter("192.0.2.0/24")
	ch, _ := h.Subscribe(ctx, f, 8)
	a, b := sample(), sample()
	b.Src = netip.MustParseAddr("198.51.100.7")
	h.Publish(a)
	h.Publish(b)
	if got := <-ch; got != a {
		t.Fatalf("got %+v", got)
	}
	select {
	case got := <-ch:
		t.Fatalf("filtered event delivered: %+v", got)
	default:
	}
	cancel()
	for range ch { // closed once unsubscribed
	}
	if n := h.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers after cancel", n)
	}
	h.Publish(a) // no subscriber: must not panic or block
}

// A reader that never reads: Publish still returns, and what it missed
// comes back as suppressed counts so every source's drops add up.
func TestHubSlowWatcherAccounting(t *testing.T) {
	h := NewHub()
	ch, lost := h.Subscribe(context.Background(), netip.Prefix{}, 4)
	srcs := []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")}
	drops := map[netip.Addr]uint64{}
	for i := range 1000 {
		ev := sample()
		ev.Src = srcs[i%2]
		ev.Suppressed = uint64(i % 3)
		drops[ev.Src] += 1 + ev.Suppressed
		h.Publish(ev)
	}
	// Drain, then one more event per source carries what was owed.
	got := map[netip.Addr]uint64{}
	for range 4 {
		ev := <-ch
		got[ev.Src] += 1 + ev.Suppressed
	}
	for _, s := range srcs {
		ev := sample()
		ev.Src, ev.Suppressed = s, 0
		drops[s]++
		h.Publish(ev)
		e := <-ch
		got[e.Src] += 1 + e.Suppressed
	}
	for _, s := range srcs {
		if got[s] != drops[s] {
			t.Errorf("%s: events account for %d drops, %d happened", s, got[s], drops[s])
		}
	}
	if lost() != 0 {
		t.Errorf("lost %d with only two sources", lost())
	}
}

func TestAttrsLogLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	log.LogAttrs(context.Background(), slog.LevelInfo, "drop", sample().Attrs()...)
	want := "level=INFO msg=drop iface=veth0 src=192.0.2.2 dst=192.0.2.1 proto=tcp sport=40000 dport=22 len=60 flags=S jail=sshd suppressed=12 dropped_at=2026-11-24T17:00:00.123Z\n"
	if buf.String() != want {
		t.Errorf("log\n got %s\nwant %s", buf.String(), want)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add(sample().Line())
	f.Add(`drop time=2026-11-24T17:00:00Z iface="a b" src=2001:db8::2 dst=- proto=58 len=0 jail="\x00" suppressed=0`)
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := ParseLine(line)
		if err != nil {
			return
		}
		again, err := ParseLine(ev.Line())
		if err != nil {
			t.Fatalf("own line %q does not parse: %v", ev.Line(), err)
		}
		if !HasPorts(ev.Proto) {
			ev.SPort, ev.DPort = 0, 0
		}
		if ev.Proto != ProtoTCP {
			ev.Flags = 0
		}
		if !again.Time.Equal(ev.Time) {
			t.Fatalf("time %v became %v", ev.Time, again.Time)
		}
		again.Time = ev.Time
		if again != ev {
			t.Fatalf("round trip of %q\n got %+v\nwant %+v", line, again, ev)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var j Event
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatalf("own JSON %s: %v", b, err)
		}
	})
}

func TestPumpLogsAndPublishes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	hub := NewHub()
	sub, _ := hub.Subscribe(context.Background(), netip.Prefix{}, 4)
	in := make(chan Event, 2)
	in <- sample()
	close(in)
	Pump(context.Background(), in, hub, log)
	if got := <-sub; got != sample() {
		t.Errorf("published %+v", got)
	}
	if !strings.Contains(buf.String(), "msg=drop iface=veth0 src=192.0.2.2") {
		t.Errorf("log %q", buf.String())
	}
	hub.Close()
	if _, ok := <-sub; ok {
		t.Error("Close left a watcher's channel open")
	}
	late, _ := hub.Subscribe(context.Background(), netip.Prefix{}, 1)
	if _, ok := <-late; ok {
		t.Error("Subscribe after Close got an open channel")
	}
	hub.Publish(sample()) // after Close: no panic
}

func TestFromBackend(t *testing.T) {
	in := make(chan bans.DropEvent, 2)
	in <- bans.DropEvent{Time: sample().Time, Ifindex: 3, Iface: "veth0", Src: netip.MustParseAddr("::ffff:192.0.2.2"),
		Dst: sample().Dst, Proto: ProtoTCP, SrcPort: 40000, DstPort: 22, Length: 60, TCPFlags: 0x02, Jail: "sshd", Suppressed: 12}
	in <- bans.DropEvent{Src: sample().Src, Proto: ProtoICMP, SrcPort: 9, DstPort: 9, TCPFlags: 0xff, Length: -1}
	close(in)
	out := Convert(context.Background(), in)
	if got := <-out; got != sample() {
		t.Errorf("tcp event\n got %+v\nwant %+v", got, sample())
	}
	if got := <-out; got.SPort != 0 || got.DPort != 0 || got.Flags != 0 || got.Len != 0 {
		t.Errorf("icmp event kept ports/flags or a negative length: %+v", got)
	}
	if _, ok := <-out; ok {
		t.Error("Convert did not close its channel")
	}
}
