package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
	"github.com/xdpban/xdpban/internal/syncbuf"
	"github.com/xdpban/xdpban/loader"
)

// Without a daemon, watch reads the pinned ring buffer itself: a banned
// source's flood shows up, filtered to the address asked for.
func TestWatchDirectFromPins(t *testing.T) {
	nspairtest.Require(t)
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	const port = 7302
	var x *loader.XDP
	if err := p.Host.Do(func() error {
		var err error
		x, err = loader.Open(context.Background(), loader.Options{
			Interfaces: []string{p.HostIf}, PinPath: pin,
			MapSizes:    loader.MapSizes{V4: 1024, V6: 1024, V4Net: 64, V6Net: 64},
			DropLogRate: 100, Logger: slog.New(slog.DiscardHandler),
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // x is closed below: detach through the pins
		if y, err := loader.OpenPinned(pin); err == nil {
			y.Detach()
		}
	})
	for _, a := range []netip.Addr{nspairtest.AttackerV4, nspairtest.AttackerV6} {
		if err := x.Add(context.Background(), bans.Ban{Prefix: bans.Widen{}.Addr(a), Jail: "sshd"}); err != nil {
			t.Fatal(err)
		}
	}
	x.Close() // like a stopped daemon: enforcement stays, pins stay

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := &syncbuf.Buffer{}
	e := &env{stdout: out, stderr: io.Discard, stdin: strings.NewReader(""),
		getenv: func(string) string { return "" }, ctx: ctx}
	done := make(chan int, 1)
	go func() {
		done <- run(e, []string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "--pin-path", pin,
			"watch", "--json", "2001:db8::2"})
	}()
	v6 := p.Sender(t, nspairtest.AttackerV6, port)
	v4 := p.Sender(t, nspairtest.AttackerV4, port)
	// Send until the watcher (which may still be opening the pins) shows
	// three events; bounded to 50 rounds.
	for i := 0; i < 50 && strings.Count(out.String(), "\n") < 3; i++ {
		v4.Send(t, 5, 32)
		v6.Send(t, 5, 32)
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("watch exited %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("watch printed %q, want at least 3 events", out.String())
	}
	for _, l := range lines {
		var ev drops.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ev.Src != nspairtest.AttackerV6 || ev.Dst != nspairtest.HostV6 || ev.Proto != drops.ProtoUDP ||
			ev.SPort != v6.LocalPort() || ev.DPort != port || ev.Len != 14+40+8+32 || ev.Jail != "sshd" {
			t.Fatalf("event %s: want the IPv6 attacker's datagram only", ev.Line())
		}
	}
}

// A running daemon streams the drops of a banned flood to `xdpban watch`
// and, with log_drops, writes them to its log.
func TestWatchThroughDaemon(t *testing.T) {
	w := newWorld(t)
	writeTestConfig(t, w.config, "drop_log_rate = 4\ndrop_log_global = 100\nlog_drops = true\n")
	d := w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--jail", "sshd")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := &syncbuf.Buffer{}
	e := &env{stdout: out, stderr: io.Discard, stdin: strings.NewReader(""),
		getenv: func(string) string { return "" }, ctx: ctx}
	done := make(chan int, 1)
	go func() { done <- run(e, append(w.paths(), "watch", a.String())) }()
	s := w.p.Sender(t, a, testPort)
	for i := 0; i < 50 && strings.Count(out.String(), "\n") < 2; i++ {
		s.Send(t, 20, 32)
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("watch exited %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("watch printed %q, want at least 2 events", out.String())
	}
	for _, l := range lines {
		ev, err := drops.ParseLine(l)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		// The daemon runs in the host namespace: the interface has its name.
		if ev.Src != a || ev.Dst != nspairtest.HostV4 || ev.Iface != w.p.HostIf || ev.SPort != s.LocalPort() ||
			ev.DPort != testPort || ev.Len != 14+20+8+32 || ev.Jail != "sshd" {
			t.Fatalf("event %q: want the attacker's datagram on %s", l, w.p.HostIf)
		}
	}
	if log := d.out.String(); !strings.Contains(log, "msg=drop") || !strings.Contains(log, "src=192.0.2.2") {
		t.Fatalf("log_drops: no drop record in the daemon log:\n%s", log)
	}
}

// ratelimit.banafter end to end: a source that keeps sending SYNs over
// its jail's limit for longer than banafter is banned like a jail's
// offender, while the limit alone only throttled it. `status JAIL` and
// the metrics then report exactly the SYNs the limit dropped: every SYN
// sent either reached the host's TCP, was dropped by the limit, or was
// dropped by the ban.
func TestRateLimitBanAfter(t *testing.T) {
	w := newWorld(t)
	w.p.Host.Run(t, "ip", "link", "set", "lo", "up")
	writeTestConfig(t, w.config, "metrics_listen = 127.0.0.1:9798\n")
	logf := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const port = 7400
	jail := fmt.Sprintf("[synflood]\nenabled = true\nfilter = sshd\nlogpath = %s\nport = %d\nbantime = 1h\n"+
		"ratelimit = 5/s,burst=5\nratelimit.banafter = 2s\n\n[sshd]\nenabled = false\n", logf, port)
	if err := os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(jail), 0o644); err != nil {
		t.Fatal(err)
	}
	w.start(t)
	a := nspairtest.AttackerV4
	c := control.NewClient(w.socket)
	defer c.Close()
	inSegs0 := hostTCPInSegs(t, w)
	start := time.Now()
	var banned *control.Entry
	sent := 0
	// About 30 SYNs a second for at most 10s (bounded): nobody listens,
	// so each passing SYN is answered by a RST, each throttled one times
	// the dial out. The 30ms time-out closes the socket long before the
	// first SYN retransmission (1s): one dial is one SYN.
	for i := 0; i < 300 && banned == nil; i++ {
		sent++
		w.p.Attacker.Do(func() error {
			d := net.Dialer{Timeout: 30 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: a.AsSlice()}}
			if conn, err := d.Dial("tcp", netip.AddrPortFrom(nspairtest.HostV4, port).String()); err == nil {
				conn.Close()
			}
			return nil
		})
		if i%10 == 9 {
			es, err := c.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Addr == "192.0.2.2/32" {
					banned = &e
				}
			}
		}
	}
	if banned == nil {
		t.Fatalf("source throttled for %v was never banned (ratelimit.banafter = 2s)", time.Since(start))
	}
	if took := time.Since(start); banned.Jail != "synflood" || took < 2*time.Second {
		t.Fatalf("ban %+v after %v: want jail synflood, no sooner than banafter (2s)", *banned, took)
	}
	t.Logf("banned after %v of SYN flood", time.Since(start).Round(time.Millisecond))

	// The flood is over; let the last RSTs and counters settle.
	time.Sleep(200 * time.Millisecond)
	received := int(hostTCPInSegs(t, w) - inSegs0)
	banDrops := int(w.list(t)["192.0.2.2/32"].Packets)
	var js control.JailStatus
	if err := json.Unmarshal([]byte(w.mustCLI(t, "status", "synflood", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	if js.RateLimit != "5/1s,burst=5" || js.RateLimited == nil {
		t.Fatalf("status synflood: ratelimit %q, ratelimited %v: want 5/1s,burst=5 and a count", js.RateLimit, js.RateLimited)
	}
	rl := int(*js.RateLimited)
	t.Logf("sent %d SYNs: %d reached the host, %d rate-limited, %d dropped by the ban", sent, received, rl, banDrops)
	// About 25 of every 30 SYNs a second are over the limit for >= 2s.
	if rl < 30 || sent-received != rl+banDrops {
		t.Fatalf("sent %d, host received %d, ban dropped %d: %d rate-limited by status, want %d (and at least 30)",
			sent, received, banDrops, rl, sent-received-banDrops)
	}
	text := w.mustCLI(t, "status", "synflood")
	if want := fmt.Sprintf("|- Rate limit\n|  |- Setting:\t5/1s,burst=5\n|  `- Rate-limited SYNs dropped:\t%d\n", rl); !strings.Contains(text, want) {
		t.Errorf("status synflood lacks %q:\n%s", want, text)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(w.mustCLI(t, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, j := range st.Jails {
		if j.Name == "synflood" && (j.RateLimited == nil || int(*j.RateLimited) != rl) {
			t.Errorf("status --json: synflood ratelimited %v, want %d", j.RateLimited, rl)
		}
	}
	if want := fmt.Sprintf(`xdpban_ratelimited_packets_total{jail="synflood"} %d`, rl); !strings.Contains(scrapeMetrics(t, w), want) {
		t.Errorf("metrics lack %q", want)
	}
}

// hostTCPInSegs is the TCP segments the host's stack received (Tcp
// InSegs of /proc/net/snmp in the host namespace): what XDP passed.
func hostTCPInSegs(t *testing.T, w *world) uint64 {
	t.Helper()
	out := w.p.Host.Run(t, "cat", "/proc/net/snmp")
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "InSegs" && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatalf("Tcp InSegs %q: %v", f[i], err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Tcp InSegs in the host's /proc/net/snmp:\n%s", out)
	return 0
}

// scrapeMetrics reads the daemon's metrics endpoint in the host namespace.
func scrapeMetrics(t *testing.T, w *world) string {
	t.Helper()
	var body string
	err := w.p.Host.Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9798", 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	return body
}

func TestWatchRefusedWhenEventsOff(t *testing.T) {
	w := newWorld(t)
	writeTestConfig(t, w.config, "drop_log_rate = 0\n")
	w.start(t)
	code, out, errs := w.cli(t, "watch")
	if code != exitFailure || out != "" || !strings.Contains(errs, "drop_log_rate = 0") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("exit %d stdout %q stderr %q: want exit 1 and one line naming drop_log_rate", code, out, errs)
	}
}
