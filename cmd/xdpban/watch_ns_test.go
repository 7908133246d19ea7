package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/droplog"
	"github.com/xdpban/xdpban/internal/netnstest"
	"github.com/xdpban/xdpban/loader"
)

// Without a daemon, watch reads the pinned ring buffer itself: a banned
// source's flood shows up, filtered to the address asked for.
func TestWatchDirectFromPins(t *testing.T) {
	netnstest.Require(t)
	p := netnstest.New(t)
	pin := netnstest.PinDir(t)
	const port = 7302
	var x *loader.XDP
	if err := p.Host.Do(func() error {
		var err error
		x, err = loader.Open(context.Background(), loader.Options{
			Interfaces: []string{p.HostIf}, PinPath: pin,
			MapSizes:    config.MapSizes{V4: 1024, V6: 1024, V4Net: 64, V6Net: 64},
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
	for _, a := range []netip.Addr{netnstest.AttackerV4, netnstest.AttackerV6} {
		if err := x.Add(context.Background(), bans.Ban{Prefix: bans.Widen{}.Addr(a), Jail: "sshd"}); err != nil {
			t.Fatal(err)
		}
	}
	x.Close() // like a stopped daemon: enforcement stays, pins stay

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := &syncBuf{}
	e := &env{stdout: out, stderr: io.Discard, stdin: strings.NewReader(""),
		getenv: func(string) string { return "" }, ctx: ctx}
	done := make(chan int, 1)
	go func() {
		done <- run(e, []string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "--pin-path", pin,
			"watch", "--json", "2001:db8::2"})
	}()
	v6 := p.Sender(t, netnstest.AttackerV6, port)
	v4 := p.Sender(t, netnstest.AttackerV4, port)
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
		var ev droplog.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ev.Src != netnstest.AttackerV6 || ev.Dst != netnstest.HostV6 || ev.Proto != droplog.ProtoUDP ||
			ev.SPort != v6.LocalPort() || ev.DPort != port || ev.Len != 14+40+8+32 || ev.Jail != "sshd" {
			t.Fatalf("event %s: want the IPv6 attacker's datagram only", ev.Line())
		}
	}
}
