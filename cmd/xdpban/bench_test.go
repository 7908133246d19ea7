package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
	"github.com/xdpban/xdpban/internal/syncbuf"
	"github.com/xdpban/xdpban/loader"
)

// benchDaemon runs fn with a world of its own. The world helpers take a
// *testing.T (they are shared with the tests), so fn runs as a test via
// testing.RunTests; its cleanups (daemon, namespaces, pins) run when it
// returns.
func benchDaemon(b *testing.B, fn func(t *testing.T, w *world)) {
	nspairtest.Require(b)
	ok := false
	res := testing.RunTests(func(pat, str string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: "bench-world", F: func(t *testing.T) { fn(t, newWorld(t)); ok = !t.Failed() }}})
	if !res || !ok {
		b.Fatal("benchmark setup failed (see output above)")
	}
}

// BenchmarkCLIBan compares what an operator waits for: `xdpban ban ADDR`
// (a fresh process, socket round trip, XDP map update, fsync'd store
// commit) against `fail2ban-client set JAIL banip ADDR` on a fail2ban
// server with a no-op action, both measured in this run. Reported:
// xdpban-ms/op, fail2ban-ms/op and their ratio.
func BenchmarkCLIBan(b *testing.B) {
	f2bServer, err := exec.LookPath("fail2ban-server")
	if err != nil {
		b.Skip("fail2ban not installed: no peer to compare with")
	}
	f2bClient, _ := exec.LookPath("fail2ban-client")
	n := b.N
	var xd, fb time.Duration
	benchDaemon(b, func(t *testing.T, w *world) {
		w.start(t)
		sock := startFail2ban(t, w, f2bServer, f2bClient)
		for i := range n {
			addr := fmt.Sprintf("198.51.100.%d", i%250+1)
			if i >= 250 {
				addr = fmt.Sprintf("2001:db8:b:%x::1", i)
			}
			cmd := exec.Command(os.Args[0], append(w.paths(), "ban", addr, "--for", "1h")...)
			cmd.Env = append(os.Environ(), "XDPBAN_TEST_AS_MAIN=1")
			t0 := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("xdpban ban: %v: %s", err, out)
			}
			xd += time.Since(t0)
			addr6 := fmt.Sprintf("2001:db8:f2b:%x::1", i)
			t0 = time.Now()
			if out, err := exec.Command(f2bClient, "-s", sock, "set", "bench", "banip", addr6).CombinedOutput(); err != nil {
				t.Fatalf("fail2ban-client banip: %v: %s", err, out)
			}
			fb += time.Since(t0)
		}
	})
	b.ReportMetric(float64(xd.Microseconds())/1000/float64(n), "xdpban-ms/op")
	b.ReportMetric(float64(fb.Microseconds())/1000/float64(n), "fail2ban-ms/op")
	b.ReportMetric(float64(fb)/float64(xd), "fail2ban/xdpban")
}

// startFail2ban runs a private fail2ban server (its own config copy,
// socket, database, no firewall action) inside the host namespace.
func startFail2ban(t *testing.T, w *world, server, client string) string {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	if out, err := exec.Command("cp", "-r", "/etc/fail2ban", conf).CombinedOutput(); err != nil {
		t.Fatalf("copy fail2ban config: %v: %s", err, out)
	}
	// Debian's jail.d enables sshd with an iptables action: none of that.
	os.RemoveAll(filepath.Join(conf, "jail.d"))
	os.MkdirAll(filepath.Join(conf, "jail.d"), 0o755)
	sock := filepath.Join(dir, "f2b.sock")
	logf := filepath.Join(dir, "auth.log")
	os.WriteFile(logf, nil, 0o644)
	os.WriteFile(filepath.Join(conf, "fail2ban.local"), []byte(fmt.Sprintf(
		"[Definition]\nlogtarget = %s\nsocket = %s\npidfile = %s\ndbfile = %s\n",
		filepath.Join(dir, "f2b.log"), sock, filepath.Join(dir, "f2b.pid"), filepath.Join(dir, "f2b.sqlite3"))), 0o644)
	os.WriteFile(filepath.Join(conf, "jail.local"), []byte(fmt.Sprintf(
		"[DEFAULT]\nenabled = false\nbanaction = dummy\naction = dummy[target=%s]\n\n[bench]\nenabled = true\nfilter = sshd\nbackend = polling\nlogpath = %s\nbantime = 1h\n",
		filepath.Join(dir, "dummy"), logf)), 0o644)
	cmd := exec.Command("nsenter", "--net="+w.p.Host.Path(), "--", server, "-f", "-x", "-c", conf, "-s", sock, "-p", filepath.Join(dir, "f2b.pid"))
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command(client, "-s", sock, "stop").Run()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if o, err := exec.Command(client, "-s", sock, "status", "bench").CombinedOutput(); err == nil && strings.Contains(string(o), "Status for the jail: bench") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fail2ban server not ready after 30s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return sock
}

// BenchmarkSocketBan measures one ban through the control socket (HTTP,
// XDP map update, fsync'd store commit) against the bare backend Add on
// the same pinned maps in the same run: the ratio is what durability and
// the socket cost over the kernel update alone.
func BenchmarkSocketBan(b *testing.B) {
	n := b.N
	var viaSock, bare time.Duration
	benchDaemon(b, func(t *testing.T, w *world) {
		w.start(t)
		c := control.NewClient(w.socket)
		defer c.Close()
		x, err := loader.OpenPinned(w.pin)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		ctx := context.Background()
		for i := range n {
			t0 := time.Now()
			if _, err := c.Ban(ctx, []control.BanItem{{Addr: fmt.Sprintf("2001:db8:a:%x::1", i), Jail: "bench", For: "1h"}}); err != nil {
				t.Fatal(err)
			}
			viaSock += time.Since(t0)
			p := bans.Widen{}.Addr(netipMust(fmt.Sprintf("2001:db8:d:%x::1", i)))
			t0 = time.Now()
			if err := x.Add(ctx, bans.Ban{Prefix: p, Jail: "bench", Expires: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			bare += time.Since(t0)
		}
	})
	b.ReportMetric(float64(viaSock.Microseconds())/float64(n), "socket-µs/op")
	b.ReportMetric(float64(bare.Microseconds())/float64(n), "bare-add-µs/op")
	b.ReportMetric(float64(viaSock)/float64(bare), "socket/bare")
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
