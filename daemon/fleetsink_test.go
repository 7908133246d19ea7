package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// fleetDaemon runs a daemon on a memory backend in the fleet fc.
func fleetDaemon(t *testing.T, fc config.Fleet, jails string) (*Daemon, *memBackend) {
	t.Helper()
	dir := t.TempDir()
	cfg := writeConfig(t, filepath.Join(dir, "etc"), jails)
	cfg.Daemon.Socket = filepath.Join(dir, "s.sock")
	cfg.Daemon.StateDir = filepath.Join(dir, "state")
	fc.Enabled = true
	fc.StoreDir = filepath.Join(dir, "state", "fleet")
	cfg.Daemon.Fleet = fc
	mem := newMem()
	d := startDaemon(t, Options{
		Config:      cfg,
		OpenBackend: func(context.Context, config.Daemon) (bans.Backend, string, error) { return mem, "test", nil },
		Logger:      testLogger(),
	})
	return d, mem
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func inStep(t *testing.T, ds ...*Daemon) {
	t.Helper()
	for _, d := range ds {
		waitFor(t, "connected to the fleet", func() bool {
			st, err := d.Status(context.Background())
			return err == nil && st.Fleet != nil && st.Fleet.InStep
		})
	}
}

// Bans decided on one daemon are enforced on the other through its
// intake, marked with their origin; the receiver's ignoreip wins; an
// unban on the receiver lifts the ban at its origin.
func TestFleetDaemons(t *testing.T) {
	listen := freeAddr(t)
	a, memA := fleetDaemon(t, config.Fleet{Node: "a", Listen: listen}, "")
	b, memB := fleetDaemon(t, config.Fleet{Node: "b", Servers: []string{"nats://" + listen}},
		"[sshd]\nignoreip = 198.51.100.7\n")
	inStep(t, a, b)
	ctx := context.Background()

	p := netip.MustParsePrefix("192.0.2.50/32")
	if _, err := a.Ban(ctx, []control.BanItem{{Addr: "192.0.2.50", For: "1h"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b enforces a's ban", func() bool { _, ok := memB.has(p); return ok })
	got, _ := b.core.Lookup(p)
	if got.Origin != "a" || got.Jail != DefaultJail {
		t.Fatalf("b holds %+v, want a's manual ban", got)
	}
	mine, _ := a.core.Lookup(p)
	if left := got.Expires.Sub(mine.Expires); left > time.Second || left < -time.Second {
		t.Fatalf("b's copy ends %v, a's %v: want the same absolute expiry", got.Expires, mine.Expires)
	}
	// The list says where a ban came from, even from a backend that
	// keeps no origin.
	memB.mu.Lock()
	x := memB.m[p]
	x.Origin = ""
	memB.m[p] = x
	memB.mu.Unlock()
	list, err := b.List(ctx)
	if err != nil || len(list) != 1 || list[0].Origin != "a" {
		t.Fatalf("b's list %+v (%v), want the ban from a", list, err)
	}
	if list, _ := a.List(ctx); len(list) != 1 || list[0].Origin != "" {
		t.Fatalf("a's list %+v, want its own ban without origin", list)
	}

	// A remote /24 covering b's ignoreip is refused there, counted.
	if _, err := a.Ban(ctx, []control.BanItem{{Addr: "198.51.100.0/24"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b refuses the /24 over its ignoreip", func() bool {
		st, _ := b.Status(ctx)
		return st.Fleet.Refused["ignoreip"] == 1
	})
	if _, ok := memB.has(netip.MustParsePrefix("198.51.100.0/24")); ok {
		t.Fatal("b enforces a remote ban covering its ignoreip")
	}

	// An operator's unban on b lifts the ban on a.
	if _, err := b.Unban(ctx, control.UnbanRequest{Addrs: []string{"192.0.2.50"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a lifts the ban unbanned on b", func() bool { _, ok := memA.has(p); return !ok })
	if _, ok := a.core.Lookup(p); ok {
		t.Fatal("a's store still holds the ban unbanned on b")
	}

	// A jail's decision goes out the same way, once enforced here.
	jp := netip.MustParsePrefix("203.0.113.44/32")
	a.apply(ctx, []bans.Decision{{Jail: "sshd", Addr: jp.Addr(), BanTime: time.Hour, At: time.Now()}})
	if _, ok := memA.has(jp); !ok {
		t.Fatal("a's jail decision is not enforced on a")
	}
	waitFor(t, "b enforces a's jail ban", func() bool { x, ok := memB.has(jp); return ok && x.Jail == "sshd" && x.Origin == "a" })

	// Nothing b received went back out.
	st, _ := b.Status(ctx)
	if st.Fleet.Published != 1 { // the unban only
		t.Fatalf("b published %d, want 1 (its unban)", st.Fleet.Published)
	}
	if st.Fleet.Node != "b" || st.Fleet.Outbox != 0 || len(st.Fleet.Servers) != 1 {
		t.Fatalf("b's fleet status %+v", st.Fleet)
	}
}

// A daemon started while its fleet is unreachable bans at once; the ban
// is published when the fleet comes up.
func TestFleetDownNeverBlocks(t *testing.T) {
	listen := freeAddr(t)
	b, _ := fleetDaemon(t, config.Fleet{Node: "b", Servers: []string{"nats://" + listen}}, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p := netip.MustParsePrefix("203.0.113.9/32")
	if _, err := b.Ban(ctx, []control.BanItem{{Addr: p.Addr().String(), For: "1h"}}); err != nil {
		t.Fatalf("ban with the fleet down: %v", err)
	}
	if st, _ := b.Status(ctx); st.Fleet.Connected || st.Fleet.Outbox != 1 {
		t.Fatalf("fleet status with NATS down: %+v, want disconnected with 1 queued", st.Fleet)
	}
	_, memA := fleetDaemon(t, config.Fleet{Node: "a", Listen: listen}, "")
	waitFor(t, "a receives the ban b queued while down", func() bool { _, ok := memA.has(p); return ok })
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// A reload never joins, leaves or changes the fleet, and says so.
func TestReloadWarnsFleetChange(t *testing.T) {
	dir := t.TempDir()
	first := writeConfig(t, filepath.Join(dir, "first"), "")
	next := writeConfig(t, filepath.Join(dir, "next"), "")
	next.Daemon.Fleet = config.Fleet{Enabled: true, Node: "a", Servers: []string{"nats://192.0.2.1:4222"}}
	first.Daemon.Socket = filepath.Join(dir, "s.sock")
	next.Daemon.Socket = first.Daemon.Socket
	d := startDaemon(t, Options{Config: first, LoadConfig: func() (*config.Config, error) { return next, nil }, DryRun: true, Logger: testLogger()})
	warns, err := d.Reload(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0] != "[fleet] changed: restart the daemon to apply it" {
		t.Fatalf("reload warnings %q, want the [fleet] one", warns)
	}
	if d.fleet != nil {
		t.Fatal("a reload joined the fleet")
	}
}
