package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch"
	"github.com/xdpban/xdpban/logwatch/filter"
)

// realJails compiles filters the way the daemon's command does.
func realJails(cfg *config.Config, w bans.Widen) ([]logwatch.JailSpec, error) {
	var out []logwatch.JailSpec
	for _, j := range cfg.Jails {
		if !j.Enabled {
			continue
		}
		f, err := filter.Load(cfg.FilterDirs, j.Filter, j.FilterOptions)
		if err != nil {
			return nil, j.FilterError(err)
		}
		out = append(out, logwatch.JailSpec{Jail: j, NewScanner: f.NewScanner, Widen: w})
	}
	return out, nil
}

// writeConfig writes a configuration directory whose jail.local is
// jails, with logs under dir and no ban log.
func writeConfig(t *testing.T, dir, jails string) *config.Config {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "xdpban.local"), []byte("[xdpban]\nbanlog = none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(jails), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return cfg
}

func TestNewRefusesBrokenFilterBeforeOpeningBackend(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "auth.log")
	os.WriteFile(logf, nil, 0o644)
	cfg := writeConfig(t, filepath.Join(dir, "etc"), "[web]\nenabled = true\nfilter = nosuchfilter\nlogpath = "+logf+"\n")
	opened := false
	_, err := New(Options{
		Config: cfg,
		Jails:  realJails,
		OpenBackend: func(context.Context, config.Daemon) (bans.Backend, string, error) {
			opened = true
			return newMem(), "test", nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), "nosuchfilter") || !strings.Contains(err.Error(), "jail.local:3: [web] filter") {
		t.Fatalf("New with a missing filter: err = %v, want the filter and its line, jail.local:3", err)
	}
	if opened {
		t.Fatal("the backend was opened for a configuration that cannot run")
	}
}

func TestReloadWithBrokenFilterKeepsRunningConfig(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "auth.log")
	os.WriteFile(logf, nil, 0o644)
	good := writeConfig(t, filepath.Join(dir, "good"), "[sshd]\nenabled = true\nlogpath = "+logf+"\nmaxretry = 3\n")
	// The first jail is valid and changes maxretry; the second breaks the
	// file. Neither may be applied.
	bad := writeConfig(t, filepath.Join(dir, "bad"), "[sshd]\nenabled = true\nlogpath = "+logf+"\nmaxretry = 2\n"+
		"[web]\nenabled = true\nfilter = nosuchfilter\nlogpath = "+logf+"\n")
	good.Daemon.Socket = filepath.Join(dir, "s.sock")
	bad.Daemon.Socket = good.Daemon.Socket
	d := startDaemon(t, Options{
		Config:     good,
		LoadConfig: func() (*config.Config, error) { return bad, nil },
		Jails:      realJails,
		DryRun:     true,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx := context.Background()
	_, err := d.Reload(ctx, "")
	if !errors.Is(err, control.ErrBadRequest) || !strings.Contains(err.Error(), "running one stays") || !strings.Contains(err.Error(), "nosuchfilter") {
		t.Fatalf("reload of a broken configuration: %v", err)
	}
	if d.cfg != good {
		t.Fatal("the broken configuration replaced the running one")
	}
	if names := d.engine.Names(); len(names) != 1 || names[0] != "sshd" {
		t.Fatalf("jails after the failed reload: %v, want [sshd]", names)
	}
}

// TestReloadReturnsWarnings: what the daemon logs about a reloaded
// configuration (an unknown jail setting) is also returned to the
// caller, for the jail reloaded only, and the reload is applied.
func TestReloadReturnsWarnings(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "auth.log")
	os.WriteFile(logf, nil, 0o644)
	first := writeConfig(t, filepath.Join(dir, "first"), "[sshd]\nenabled = true\nlogpath = "+logf+"\n")
	next := writeConfig(t, filepath.Join(dir, "next"), "[sshd]\nenabled = true\nlogpath = "+logf+"\nmaxretry = 2\nbantme = 1h\n"+
		"[web]\nenabled = true\nfilter = sshd\nlogpath = "+logf+"\n")
	first.Daemon.Socket = filepath.Join(dir, "s.sock")
	next.Daemon.Socket = first.Daemon.Socket
	d := startDaemon(t, Options{
		Config:     first,
		LoadConfig: func() (*config.Config, error) { return next, nil },
		Jails:      realJails,
		DryRun:     true,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx := context.Background()
	warns, err := d.Reload(ctx, "web")
	if err != nil || len(warns) != 0 {
		t.Fatalf("reload of web = %q, %v; want no warnings (the unknown setting is sshd's)", warns, err)
	}
	warns, err = d.Reload(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.HasPrefix(warns[0], "jail sshd: setting not used: ") || !strings.Contains(warns[0], "bantme") || !strings.Contains(warns[0], "jail.local:5") {
		t.Fatalf("reload warnings %q, want one naming sshd's bantme and its file:line", warns)
	}
	if d.cfg != next {
		t.Fatal("a reload with warnings was not applied")
	}
	if names := strings.Join(d.engine.Names(), " "); names != "sshd web" && names != "web sshd" {
		t.Fatalf("jails after reload: %s, want sshd and web", names)
	}
}

func TestParseItemsRefusesTooWidePrefixes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, a := range []string{"0.0.0.0/0", "128.0.0.0/1", "10.0.0.0/7", "::/0", "2000::/3", "2001:db8::/15"} {
		if _, err := ParseItems([]control.BanItem{{Addr: a}}, bans.Widen{}, now, ItemRules{}); err == nil || !strings.Contains(err.Error(), "too wide a ban") {
			t.Errorf("ban %s: err %v, want too wide", a, err)
		}
	}
	for _, a := range []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/16", "2001:db8::7"} {
		if _, err := ParseItems([]control.BanItem{{Addr: a}}, bans.Widen{}, now, ItemRules{}); err != nil {
			t.Errorf("ban %s: %v", a, err)
		}
	}
}
