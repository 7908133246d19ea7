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

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/syncbuf"
)

func TestWatchBadInput(t *testing.T) {
	empty := t.TempDir()
	paths := []string{"--socket", empty + "/none.sock", "--pin-path", empty + "/pins"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "300.1.2.3"}, `xdpban: watch: watch filter: invalid address "300.1.2.3"`},
		{[]string{"watch", "192.0.2.0/40"}, `invalid CIDR "192.0.2.0/40"`},
		{[]string{"watch", "192.0.2.1", "192.0.2.2"}, "usage: xdpban watch [--json] [ADDR|CIDR]"},
		{[]string{"watch", "--yaml"}, "flag provided but not defined: -yaml"},
	} {
		code, out, errs := cli(t, "", append(append([]string{}, paths...), c.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("xdpban %s: exit %d stdout %q stderr %q, want exit 2 and one line containing %q",
				strings.Join(c.args, " "), code, out, errs, c.want)
		}
	}
}

// watchHandler is a daemon stand-in: only its drop stream matters here.
type watchHandler struct{ hub *drops.Hub }

func (h watchHandler) WatchDrops(ctx context.Context, f netip.Prefix) (<-chan drops.Event, error) {
	ch, _ := h.hub.Subscribe(ctx, f, 64)
	return ch, nil
}
func (watchHandler) Ban(context.Context, []control.BanItem) ([]bans.Ban, error) { return nil, nil }
func (watchHandler) Unban(context.Context, control.UnbanRequest) (int, error)   { return 0, nil }
func (watchHandler) List(context.Context) ([]bans.Ban, error)                   { return nil, nil }
func (watchHandler) Status(context.Context) (control.Status, error) {
	return control.Status{Mode: "daemon"}, nil
}
func (watchHandler) JailStatus(context.Context, string) (control.JailStatus, error) {
	return control.JailStatus{}, nil
}
func (watchHandler) Reload(context.Context, string) ([]string, error) { return nil, nil }
func (watchHandler) Detach(context.Context) error                     { return nil }

func TestWatchStreamsFromDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "xdpban.sock")
	h := watchHandler{hub: drops.NewHub()}
	srv, err := control.Listen(sock, h, slog.New(slog.NewTextHandler(io.Discard, nil)), control.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	ev := drops.Event{Time: time.Date(2026, 11, 24, 17, 0, 0, 1, time.UTC), Iface: "veth0",
		Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("192.0.2.1"), Proto: drops.ProtoTCP,
		SPort: 40000, DPort: 22, Len: 60, Flags: 0x02, Jail: "sshd", Suppressed: 3}
	other := ev
	other.Src = netip.MustParseAddr("203.0.113.9")

	for _, jsonOut := range []bool{false, true} {
		args := []string{"--socket", sock, "watch", "192.0.2.0/24"}
		if jsonOut {
			args = append(args, "--json")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out := &syncbuf.Buffer{}
		e := &env{stdout: out, stderr: io.Discard, stdin: strings.NewReader(""),
			getenv: func(string) string { return "" }, ctx: ctx}
		done := make(chan int, 1)
		go func() { done <- run(e, args) }()
		for h.hub.Subscribers() == 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		h.hub.Publish(other) // outside the filter
		h.hub.Publish(ev)
		for !strings.Contains(out.String(), "\n") && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		cancel() // Ctrl-C
		if code := <-done; code != exitOK {
			t.Fatalf("watch exited %d", code)
		}
		got := out.String()
		if jsonOut {
			var back drops.Event
			if err := json.Unmarshal([]byte(got), &back); err != nil || back != ev || strings.Count(got, "\n") != 1 {
				t.Errorf("--json printed %q (%v), want exactly the event", got, err)
			}
		} else if got != ev.Line()+"\n" {
			t.Errorf("printed %q, want %q", got, ev.Line()+"\n")
		}
		// The daemon side notices the client leave and unsubscribes.
		for deadline := time.Now().Add(10 * time.Second); h.hub.Subscribers() != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("daemon side still subscribed after the watcher left")
			}
		}
	}
}
