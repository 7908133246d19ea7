package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// copyFail2banTree copies a fail2ban configuration tree (the stock
// /etc/fail2ban) into a temporary directory, so a test can add its own
// jail.local without touching the machine's.
func copyFail2banTree(t *testing.T, src string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(src, "jail.conf")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s/jail.conf missing in CI: install the fail2ban package", src)
		}
		t.Skipf("%s/jail.conf missing: install fail2ban to run this test", src)
	}
	dst := filepath.Join(t.TempDir(), "fail2ban")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

// TestFail2banJailLocalThresholdAndBantime runs `xdpban run
// --fail2ban-config` on a copy of the stock fail2ban tree whose jail.local
// gives sshd its own maxretry and bantime: the ban comes at exactly that
// threshold (jail.conf supplies the filter, port and defaults, jail.local
// the numbers) and is lifted by itself after that bantime.
func TestFail2banJailLocalThresholdAndBantime(t *testing.T) {
	const (
		maxRetry = 3
		banTime  = 3 * time.Second
	)
	w := newWorld(t)
	f2b := copyFail2banTree(t, "/etc/fail2ban")
	logPath := filepath.Join(t.TempDir(), "auth.log")
	appendLines(t, logPath, "startup line\n")
	// banscope = all: the stock banaction (iptables-multiport) would ban
	// tcp/22 only, and the probes below are UDP datagrams.
	local := fmt.Sprintf("[sshd]\nenabled = true\nbackend = polling\nlogpath = %s\nmaxretry = %d\nfindtime = 10m\nbantime = %ds\nbanscope = all\n",
		logPath, maxRetry, int(banTime.Seconds()))
	if err := os.WriteFile(filepath.Join(f2b, "jail.local"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	w.start(t, "--fail2ban-config", f2b)

	a := nspairtest.AttackerV4
	s := w.p.Sender(t, a, testPort)
	if got := nspairtest.Deliver(t, s, w.r, 10, 300*time.Millisecond); got != 10 {
		t.Fatalf("before any failure %d of 10 arrived", got)
	}
	// The jail starts after the daemon answers; -1 until it runs.
	failed := func() int {
		code, out, _ := w.cli(t, "status", "sshd", "--json")
		if code != 0 {
			return -1
		}
		var js control.JailStatus
		if err := json.Unmarshal([]byte(out), &js); err != nil {
			t.Fatalf("status sshd --json: %v\n%s", err, out)
		}
		if len(js.Files) != 1 || js.Files[0] != logPath {
			t.Fatalf("jail sshd follows %v, want jail.local's logpath %s", js.Files, logPath)
		}
		return js.TotalFailed
	}
	waitFor(t, 10*time.Second, "jail sshd running", func() bool { return failed() == 0 })

	// maxretry-1 failures: counted, nobody banned, traffic passes.
	for i := 1; i < maxRetry; i++ {
		appendLines(t, logPath, failLine(a.String(), i))
	}
	waitFor(t, 10*time.Second, "the first maxretry-1 failures counted", func() bool { return failed() == maxRetry-1 })
	if l := w.list(t); len(l) != 0 {
		t.Fatalf("banned after %d failures with maxretry %d: %v", maxRetry-1, maxRetry, l)
	}
	if got := nspairtest.Deliver(t, s, w.r, 10, 300*time.Millisecond); got != 10 {
		t.Fatalf("after %d failures (maxretry %d) %d of 10 arrived", maxRetry-1, maxRetry, got)
	}

	// The maxretry-th failure bans, for bantime from the moment of the ban.
	t0 := time.Now()
	appendLines(t, logPath, failLine(a.String(), maxRetry))
	var e control.Entry
	waitFor(t, 10*time.Second, "the ban at the maxretry-th failure", func() bool {
		var ok bool
		e, ok = w.list(t)["192.0.2.2/32"]
		return ok
	})
	tb := time.Now()
	if e.Jail != "sshd" || e.Expires == nil || e.Scope != "all" {
		t.Fatalf("ban entry %+v: want jail sshd with an expiry, scope all", e)
	}
	exp, err := time.Parse(time.RFC3339, *e.Expires)
	if err != nil {
		t.Fatalf("expiry %q: %v", *e.Expires, err)
	}
	// Expires has whole seconds: allow one either side of [t0, tb]+bantime.
	if exp.Before(t0.Add(banTime-time.Second)) || exp.After(tb.Add(banTime+time.Second)) {
		t.Fatalf("ban expires %s, want about %s after the ban at %s", exp, banTime, tb.Format(time.RFC3339Nano))
	}
	if got := nspairtest.Deliver(t, s, w.r, 10, 300*time.Millisecond); got != 0 {
		t.Fatalf("banned: %d of 10 arrived", got)
	}

	// Probe until a datagram gets through again: that must be bantime
	// after the ban, not sooner (the kernel honours the expiry) and not
	// much later.
	var passedAt time.Time
	for deadline := t0.Add(banTime + 5*time.Second); time.Now().Before(deadline); {
		sent := time.Now()
		if nspairtest.Deliver(t, s, w.r, 1, 50*time.Millisecond) == 1 {
			passedAt = sent
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if passedAt.IsZero() {
		t.Fatalf("still dropped %s after the ban (bantime %s)", time.Since(t0).Round(time.Millisecond), banTime)
	}
	lifted := passedAt.Sub(t0)
	t.Logf("bantime %s: traffic passed again %s after the maxretry-th failure was written", banTime, lifted.Round(time.Millisecond))
	if lifted < banTime {
		t.Fatalf("traffic passed %s after the ban, before bantime %s", lifted, banTime)
	}
	if lifted > banTime+2*time.Second {
		t.Fatalf("traffic passed only %s after the ban, want about bantime %s", lifted, banTime)
	}
	if got := nspairtest.Deliver(t, s, w.r, 10, 300*time.Millisecond); got != 10 {
		t.Fatalf("after the ban expired %d of 10 arrived", got)
	}
	waitFor(t, 5*time.Second, "the expired ban gone from the list", func() bool { return len(w.list(t)) == 0 })
}
