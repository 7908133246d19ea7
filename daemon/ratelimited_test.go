package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// rlBackend is a backend with a rate limiter, like loader.XDP: it
// reports the SYNs dropped per jail.
type rlBackend struct {
	*memBackend
	mu    sync.Mutex
	drops map[string]uint64
	err   error
}

func (b *rlBackend) RateLimitedByJail() (map[string]uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range b.drops {
		out[k] = v
	}
	return out, b.err
}

// runWith runs a daemon on be with a rate-limited jail (synflood), one
// without (sshd) and a disabled one with a limit (off), until the test
// ends.
func runWith(t *testing.T, be bans.Backend) *Daemon {
	t.Helper()
	return startDaemon(t, testOptions(t, be, func(logf string) string {
		return "[synflood]\nenabled = true\nfilter = sshd\nlogpath = " + logf + "\nport = 7400\nratelimit = 10/min,burst=20\n" +
			"[sshd]\nenabled = true\nlogpath = " + logf + "\n" +
			"[off]\nenabled = false\nfilter = sshd\nlogpath = " + logf + "\nport = 7401\nratelimit = 5/s\n"
	}))
}

// testOptions are a daemon's options on backend be, with the jail.local
// jails writes for an empty log of its own, and a socket and state
// directory under the test's temp dir.
func testOptions(t *testing.T, be bans.Backend, jails func(logf string) string) Options {
	t.Helper()
	dir := t.TempDir()
	logf := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, filepath.Join(dir, "etc"), jails(logf))
	cfg.Daemon.Socket = filepath.Join(dir, "s.sock")
	cfg.Daemon.StateDir = filepath.Join(dir, "state")
	return Options{
		Config: cfg,
		Jails:  realJails,
		OpenBackend: func(context.Context, config.Daemon) (bans.Backend, string, error) {
			return be, "test", nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func summaryOf(t *testing.T, st control.Status, name string) control.JailSummary {
	t.Helper()
	for _, j := range st.Jails {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("status lists no jail %q: %+v", name, st.Jails)
	return control.JailSummary{}
}

func TestStatusShowsRateLimitedDropsPerJail(t *testing.T) {
	be := &rlBackend{memBackend: newMem(), drops: map[string]uint64{"synflood": 1234}}
	d := runWith(t, be)
	ctx := context.Background()
	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j := summaryOf(t, st, "synflood"); j.RateLimit != "10/1m,burst=20" || j.RateLimited == nil || *j.RateLimited != 1234 {
		t.Errorf("synflood summary %+v (ratelimited %v), want 10/1m,burst=20 and 1234", j, j.RateLimited)
	}
	if j := summaryOf(t, st, "sshd"); j.RateLimit != "" || j.RateLimited != nil {
		t.Errorf("sshd has no ratelimit but its summary says %q / %v", j.RateLimit, j.RateLimited)
	}
	js, err := d.JailStatus(ctx, "synflood")
	if err != nil {
		t.Fatal(err)
	}
	if js.RateLimit != "10/1m,burst=20" || js.RateLimited == nil || *js.RateLimited != 1234 {
		t.Errorf("jail status %q / %v, want 10/1m,burst=20 and 1234", js.RateLimit, js.RateLimited)
	}
	if js, err := d.JailStatus(ctx, "sshd"); err != nil || js.RateLimit != "" || js.RateLimited != nil {
		t.Errorf("sshd jail status %q / %v (%v), want no ratelimit fields", js.RateLimit, js.RateLimited, err)
	}
	// A limit with no drop yet is a 0, not an absent figure.
	be.mu.Lock()
	be.drops = map[string]uint64{}
	be.mu.Unlock()
	if js, err := d.JailStatus(ctx, "synflood"); err != nil || js.RateLimited == nil || *js.RateLimited != 0 {
		t.Errorf("no drops yet: %v (%v), want 0", js.RateLimited, err)
	}
	// The metrics read the same figure at scrape time.
	be.mu.Lock()
	be.drops = map[string]uint64{"synflood": 77, "off": 5}
	be.mu.Unlock()
	for _, jc := range d.jailCounters() {
		switch jc.Jail {
		case "synflood":
			if jc.RateLimited == nil || *jc.RateLimited != 77 {
				t.Errorf("synflood metric %v, want 77", jc.RateLimited)
			}
		default:
			if jc.RateLimited != nil {
				t.Errorf("jail %s without an enforced ratelimit has metric %v", jc.Jail, *jc.RateLimited)
			}
		}
	}
	// A failed kernel read fails the status with the reason, and the
	// daemon goes on.
	be.mu.Lock()
	be.err = errors.New("map gone")
	be.mu.Unlock()
	if _, err := d.Status(ctx); err == nil || !strings.Contains(err.Error(), "rate-limited drops") || !strings.Contains(err.Error(), "map gone") {
		t.Errorf("status with a failing read: %v", err)
	}
	if jcs := d.jailCounters(); len(jcs) != 2 {
		t.Errorf("metrics with a failing read: %d jails, want both still reported", len(jcs))
	}
}

// A backend without a rate limiter (iptables) leaves the figure out: the
// setting is shown, the count is not claimed.
func TestStatusWithoutRateLimiterLeavesDropsOut(t *testing.T) {
	d := runWith(t, newMem())
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if j := summaryOf(t, st, "synflood"); j.RateLimit != "10/1m,burst=20" || j.RateLimited != nil {
		t.Errorf("synflood summary %q / %v, want the setting and no count", j.RateLimit, j.RateLimited)
	}
	js, err := d.JailStatus(context.Background(), "synflood")
	if err != nil || js.RateLimit != "10/1m,burst=20" || js.RateLimited != nil {
		t.Errorf("jail status %q / %v (%v), want the setting and no count", js.RateLimit, js.RateLimited, err)
	}
	for _, jc := range d.jailCounters() {
		if jc.RateLimited != nil {
			t.Errorf("jail %s has a rate-limited metric without a rate limiter", jc.Jail)
		}
	}
}

// startDaemon runs a daemon with opt until the test ends and returns it
// once it is ready.
func startDaemon(t *testing.T, opt Options) *Daemon {
	t.Helper()
	ready := make(chan struct{})
	opt.Ready = func() { close(ready) }
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	return d
}
