package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/internal/bans"
)

type dropHandler struct {
	memHandler
	hub *drops.Hub
}

func (h *dropHandler) WatchDrops(ctx context.Context, f netip.Prefix) (<-chan drops.Event, error) {
	ch, _ := h.hub.Subscribe(ctx, f, 64)
	return ch, nil
}

func TestWatchDropsStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xdpban.sock")
	h := &dropHandler{memHandler: memHandler{bans: map[netip.Prefix]bans.Ban{}}, hub: drops.NewHub()}
	s, err := Listen(path, h, slog.New(slog.NewTextHandler(io.Discard, nil)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	c := NewClient(path)
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan drops.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.WatchDrops(ctx, "192.0.2.0/24", func(ev drops.Event) error {
			got <- ev
			if len(got) == 2 {
				return io.EOF // the caller's own stop reason comes back
			}
			return nil
		})
	}()
	for h.hub.Subscribers() == 0 { // the stream is open once subscribed
		if ctx.Err() != nil {
			t.Fatal("client never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	in := drops.Event{Time: time.Date(2026, 11, 24, 17, 0, 0, 5, time.UTC), Iface: "veth0",
		Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("192.0.2.1"), Proto: drops.ProtoUDP,
		SPort: 5353, DPort: 53, Len: 42, Jail: "dns", Suppressed: 7}
	other := in
	other.Src = netip.MustParseAddr("198.51.100.2")
	h.hub.Publish(other) // filtered out by the daemon side
	h.hub.Publish(in)
	in2 := in
	in2.Suppressed = 0
	h.hub.Publish(in2)
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("WatchDrops returned %v, want the callback's io.EOF", err)
	}
	if a, b := <-got, <-got; a != in || b != in2 {
		t.Fatalf("streamed\n%+v\n%+v\nwant\n%+v\n%+v", a, b, in, in2)
	}

	if err := c.WatchDrops(ctx, "not-an-addr", nil); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad filter: %v, want ErrBadRequest", err)
	}
}

func TestWatchDropsUnsupported(t *testing.T) {
	path, _, _ := serve(t) // memHandler: no DropWatcher
	c := NewClient(path)
	defer c.Close()
	err := c.WatchDrops(context.Background(), "", func(drops.Event) error { return nil })
	if !errors.Is(err, bans.ErrUnsupported) {
		t.Fatalf("err %v, want ErrUnsupported", err)
	}
}
