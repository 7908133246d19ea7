package loader

import (
	"context"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

func nextEvent(t *testing.T, evs <-chan DropEvent) DropEvent {
	t.Helper()
	select {
	case ev := <-evs:
		return ev
	case <-time.After(2 * time.Second):
		t.Fatal("no drop event within 2s")
	}
	return DropEvent{}
}

func noEvent(t *testing.T, evs <-chan DropEvent) {
	t.Helper()
	select {
	case ev := <-evs:
		t.Fatalf("unexpected drop event %+v", ev)
	case <-time.After(150 * time.Millisecond):
	}
}

func rawEntry(t *testing.T, x *XDP, key any, tb table) xdpbanBanEntry {
	t.Helper()
	var v xdpbanBanEntry
	if err := x.tbl[tb].Lookup(key, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// reported is an exact entry's counters as List shows them: the entry
// plus what the CPUs' hit-cache slots hold for it.
func reported(t *testing.T, x *XDP, key any, tb table) xdpbanBanEntry {
	t.Helper()
	v := rawEntry(t, x, key, tb)
	k, ok := hitKeyOf(slot{tb, key})
	if !ok {
		return v
	}
	p, err := x.pendingFor([]hitKey{k})
	if err != nil {
		t.Fatal(err)
	}
	return withPending(v, p[k])
}

func TestDropEventsSampled(t *testing.T) {
	x := loadDetached(t, Options{})
	mustAdd(t, x, ban("192.0.2.66", "sshd", time.Hour), ban("192.0.2.67", "sshd", time.Hour),
		ban("2001:db8:0:1::/64", "web", time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, err := x.DropEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}

	syn := tcp4(addr("192.0.2.66"), 22, tcpSYN)
	run(t, x, syn)
	noEvent(t, evs) // off until SetDropLog
	if c := counters(t, x); c["events_sent"] != 0 || c["events_suppressed"] != 0 {
		t.Fatalf("event counters moved while events are off: %v", c)
	}

	if err := x.SetDropLog(2, 0); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if run(t, x, syn) != xdpDrop {
			t.Fatal("banned SYN not dropped")
		}
	}
	for range 2 {
		ev := nextEvent(t, evs)
		want := DropEvent{Src: addr("192.0.2.66"), Dst: hostV4, Proto: 6, SrcPort: 40000, DstPort: 22,
			Length: len(syn), TCPFlags: tcpSYN, Jail: "sshd"}
		got := ev
		got.Time, got.Ifindex, got.Iface = time.Time{}, 0, ""
		if got != want {
			t.Fatalf("event %+v, want %+v", got, want)
		}
		if d := time.Since(ev.Time); d < -time.Second || d > 5*time.Second {
			t.Errorf("event time %v is %v from now", ev.Time, d)
		}
	}
	noEvent(t, evs)
	key := addr("192.0.2.66").As4()
	if e := reported(t, x, key, tV4); e.EventsSuppressed != 3 || e.EventsInWindow != 2 {
		t.Fatalf("entry suppressed/in-window = %d/%d, want 3/2", e.EventsSuppressed, e.EventsInWindow)
	}
	if c := counters(t, x); c["events_sent"] != 2 || c["events_suppressed"] != 3 {
		t.Fatalf("global events sent/suppressed = %d/%d, want 2/3", c["events_sent"], c["events_suppressed"])
	}

	// A second later the entry's window reopens (time moved by editing
	// the entry's window start).
	e := rawEntry(t, x, key, tV4)
	e.LastEventNs -= uint64(2 * time.Second)
	if err := x.tbl[tV4].Put(key, &e); err != nil {
		t.Fatal(err)
	}
	// The CPU's slot remembers when the window reopens (a second from
	// now, in boot time): the edit must be announced like any change.
	if err := x.bumpGen(); err != nil {
		t.Fatal(err)
	}
	run(t, x, syn)
	if ev := nextEvent(t, evs); ev.Src != addr("192.0.2.66") || ev.Suppressed != 3 {
		t.Fatalf("event after window reopened: from %v with %d suppressed, want 192.0.2.66 with the 3 held back", ev.Src, ev.Suppressed)
	}
	if e := rawEntry(t, x, key, tV4); e.EventsSuppressed != 0 {
		t.Fatalf("entry still holds %d suppressed after handing them to an event", e.EventsSuppressed)
	}

	// Ports are found behind IPv6 extension headers.
	run(t, x, tcp6ext(addr("2001:db8:0:1::7"), 8443, tcpSYN, ext6{kind: 0}, ext6{kind: 60}))
	if ev := nextEvent(t, evs); ev.DstPort != 8443 || ev.SrcPort != 40000 || ev.Proto != 6 || ev.TCPFlags != tcpSYN {
		t.Fatalf("event behind extension headers %+v, want tcp 40000→8443 SYN", ev)
	}

	// IPv6: the event carries the real source, not the banned /64.
	run(t, x, tcp6(addr("2001:db8:0:1::5"), 443, tcpSYN|tcpACK))
	ev := nextEvent(t, evs)
	if ev.Src != addr("2001:db8:0:1::5") || ev.Dst != hostV6 || ev.DstPort != 443 || ev.TCPFlags != tcpSYN|tcpACK || ev.Jail != "web" {
		t.Fatalf("v6 event %+v", ev)
	}

	// Global cap: 3 per second whatever the per-address allowance.
	if err := x.SetDropLog(100, 3); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		run(t, x, tcp4(addr("192.0.2.67"), 22, tcpSYN))
		run(t, x, udp6(addr("2001:db8:0:1::9")))
	}
	for range 3 {
		nextEvent(t, evs)
	}
	noEvent(t, evs)

	if err := x.SetDropLog(-1, 0); err == nil || !strings.Contains(err.Error(), "drop_log_rate -1") {
		t.Errorf("negative rate: %v", err)
	}
	cancel()
	for range evs { // the channel closes once ctx ends
	}
}

func bucketKey(a netip.Addr, port uint16) xdpbanRlKey {
	k := xdpbanRlKey{Addr: a.As16()}
	k.Port = nativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, port))
	return k
}

func TestRateLimitBucket(t *testing.T) {
	x := loadDetached(t, Options{})
	ctx := context.Background()
	if err := x.SetRateLimits([]RateLimitRule{
		{Port: 22, Jail: "sshd", Rate: 1, Per: time.Second, Burst: 3},
		{Port: 443, Jail: "web", Rate: 1, Per: time.Minute, Burst: 1},
	}); err != nil {
		t.Fatal(err)
	}
	src := addr("192.0.2.50")
	syn := tcp4(src, 22, tcpSYN)
	var got []uint32
	for range 5 {
		got = append(got, run(t, x, syn))
	}
	if want := []uint32{xdpPass, xdpPass, xdpPass, xdpDrop, xdpDrop}; !equal(got, want) {
		t.Fatalf("verdicts of 5 SYNs with burst 3: %v, want %v", got, want)
	}
	for _, f := range []struct {
		name  string
		frame []byte
	}{
		{"ack from the limited source", tcp4(src, 22, tcpACK)},
		{"syn-ack from the limited source", tcp4(src, 22, tcpSYN|tcpACK)},
		{"syn to an unlimited port", tcp4(src, 80, tcpSYN)},
		{"syn from another source", tcp4(addr("192.0.2.51"), 22, tcpSYN)},
		{"udp to the limited port", cat(eth(ethIPv4), ipv4(src, hostV4, 17, tcpHdr(22, tcpSYN)))},
	} {
		if v := run(t, x, f.frame); v != xdpPass {
			t.Errorf("%s: verdict %d, want pass", f.name, v)
		}
	}
	c := counters(t, x)
	if c["rate_limited"] != 2 || c["passed"] != 8 || c["dropped"] != 0 {
		t.Fatalf("counters rate_limited/passed/dropped = %d/%d/%d, want 2/8/0", c["rate_limited"], c["passed"], c["dropped"])
	}
	rl, err := x.RateLimited(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rl) != 1 || rl[0].Prefix != netip.PrefixFrom(src, 32) || rl[0].Port != 22 || rl[0].Jail != "sshd" ||
		rl[0].Dropped != 2 || rl[0].OverSince.IsZero() {
		t.Fatalf("rate limited sources = %+v, want 192.0.2.50/32:22 sshd with 2 dropped and over", rl)
	}
	if by, err := x.RateLimitedByJail(); err != nil || by["sshd"] != 2 || len(by) != 1 {
		t.Fatalf("per jail = %v %v, want sshd:2", by, err)
	}

	// Two seconds pass for the bucket: two more SYNs fit, the third not.
	k := bucketKey(src, 22)
	var b xdpbanRlBucket
	if err := x.rlBuckets.Lookup(&k, &b); err != nil {
		t.Fatal(err)
	}
	b.Tat -= uint64(2 * time.Second)
	if err := x.rlBuckets.Put(&k, &b); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for range 3 {
		got = append(got, run(t, x, syn))
	}
	if want := []uint32{xdpPass, xdpPass, xdpDrop}; !equal(got, want) {
		t.Fatalf("after 2s: %v, want %v", got, want)
	}

	// IPv6 sources share a bucket per ban width (/64).
	got = got[:0]
	for _, s := range []string{"2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:2::1"} {
		got = append(got, run(t, x, tcp6(addr(s), 443, tcpSYN)))
	}
	if want := []uint32{xdpPass, xdpDrop, xdpPass}; !equal(got, want) {
		t.Fatalf("v6 /64 sharing: %v, want %v", got, want)
	}

	// Extension headers do not hide a SYN; a later fragment carries no
	// TCP header and is never taken for one.
	hop, dst := ext6{kind: 0}, ext6{kind: 60}
	src6 := addr("2001:db8:0:3::1")
	got = got[:0]
	for _, f := range [][]byte{
		tcp6ext(src6, 443, tcpSYN, hop),
		tcp6ext(src6, 443, tcpSYN, hop, dst),
		tcp6ext(src6, 443, tcpSYN, ext6{kind: 44}),            // first fragment: has TCP
		tcp6ext(src6, 443, tcpSYN, ext6{kind: 44, offset: 1}), // later fragment
	} {
		got = append(got, run(t, x, f))
	}
	if want := []uint32{xdpPass, xdpDrop, xdpDrop, xdpPass}; !equal(got, want) {
		t.Fatalf("v6 SYNs behind extension headers: %v, want %v", got, want)
	}

	// A banned source is dropped as banned, not rate limited.
	mustAdd(t, x, bans.Ban{Prefix: netip.PrefixFrom(src, 32), Jail: "sshd"})
	before := counters(t, x)
	run(t, x, syn)
	if after := counters(t, x); after["dropped"] != before["dropped"]+1 || after["rate_limited"] != before["rate_limited"] {
		t.Errorf("banned SYN counted as %v → %v", before, after)
	}

	// Removing the rules lifts the limit.
	if err := x.SetRateLimits(nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if v := run(t, x, tcp4(addr("192.0.2.52"), 443, tcpSYN)); v != xdpPass {
			t.Fatalf("SYN dropped after rules were removed")
		}
	}

	for _, tc := range []struct {
		rules []RateLimitRule
		want  string
	}{
		{[]RateLimitRule{{Port: 22, Jail: "a", Rate: 1, Per: time.Second}, {Port: 22, Jail: "b", Rate: 1, Per: time.Second}}, `jails "a" and "b"`},
		{[]RateLimitRule{{Port: 0, Jail: "a", Rate: 1, Per: time.Second}}, "port 0"},
		{[]RateLimitRule{{Port: 22, Jail: "a", Rate: 0, Per: time.Second}}, "ratelimit 0/1s"},
		{[]RateLimitRule{{Port: 22, Jail: "a", Rate: 10_000_000, Per: time.Second}}, "million"},
	} {
		if err := x.SetRateLimits(tc.rules); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetRateLimits(%+v) = %v, want error with %q", tc.rules, err, tc.want)
		}
	}
}

func equal(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
