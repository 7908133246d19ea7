package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// The fault-injection suite: `go test -run Fault ./...` (make fault)
// selects these; make test runs them with everything else.

// runToExit runs `xdpban <paths> run ...` in the host namespace and waits
// (bounded) for it to exit on its own, as a start that must be refused
// does.
func (w *world) runToExit(t *testing.T, paths []string, extra ...string) (int, string) {
	t.Helper()
	args := append([]string{"--net=" + w.p.Host.Path(), "--", os.Args[0]}, paths...)
	args = append(args, "run", "--backend", "xdp")
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = append(os.Environ(), "XDPBAN_TEST_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("xdpban run did not exit within 30s (it should have been refused):\n%s", out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// steadyAttack sends one datagram from the banned attacker every 2 ms
// until stop is called, which returns how many were sent. The caller
// compares with what arrived: any arrival is a lapse of enforcement.
func (w *world) steadyAttack(t *testing.T) (stop func() int) {
	t.Helper()
	s := w.p.Sender(t, nspairtest.AttackerV4, testPort)
	var sent atomic.Int64
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 30000; i++ { // bounded: 60 s at most
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			s.Send(t, 1, 32)
			sent.Add(1)
		}
	}()
	var once sync.Once
	stop = func() int {
		once.Do(func() { close(quit) })
		<-done
		return int(sent.Load())
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestFaultSecondDaemon: a second daemon started on the first one's pin
// path (with its own socket, state dir and interface) is refused before
// it touches anything: one-line error, non-zero exit, and the first
// daemon's interface and bans stay enforced throughout, which a steady
// attack from a banned source proves (not one datagram gets through).
func TestFaultSecondDaemon(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--for", "0")
	w.mustCLI(t, "ban", "198.51.100.7")
	before := banSet(w.list(t))

	other := t.TempDir()
	paths := []string{"--socket", filepath.Join(other, "run", "xdpban.sock"), "--pin-path", w.pin,
		"--state-dir", filepath.Join(other, "state"), "--config", w.config}
	stop := w.steadyAttack(t)
	time.Sleep(100 * time.Millisecond)
	// lo: the second daemon names another interface, so one that went
	// ahead would detach the first one's (it drops interfaces it does
	// not name from the shared pins).
	code, out := w.runToExit(t, paths, "--iface", "lo", "--banlog", filepath.Join(other, "xdpban.log"))
	time.Sleep(300 * time.Millisecond)
	sent := stop()
	got := w.r.WaitFor(a, 1, 300*time.Millisecond)
	t.Logf("second daemon: exit %d: %s", code, strings.TrimSpace(out))
	t.Logf("steady attack during the second start: %d datagrams sent, %d arrived", sent, got)
	if code == 0 {
		t.Fatalf("second daemon on the same pin path exited 0")
	}
	last := lastLine(out)
	if !strings.Contains(last, "in use by another xdpban daemon") || !strings.Contains(last, w.pin) {
		t.Fatalf("second daemon's error %q: want the pin path named as in use", last)
	}
	if got != 0 {
		t.Fatalf("%d of %d datagrams from a banned source arrived while a second daemon started: enforcement lapsed", got, sent)
	}
	if sent < 50 {
		t.Fatalf("only %d datagrams sent: too few to show anything", sent)
	}
	// Nothing of the second daemon's: not attached to lo, no state made
	// beyond its (empty) directory, no socket.
	if hasXDP(t, w, "lo") {
		t.Fatalf("the refused daemon left XDP attached to lo")
	}
	if _, err := os.Stat(filepath.Join(other, "run", "xdpban.sock")); err == nil {
		t.Fatalf("the refused daemon left its socket")
	}
	// The first daemon answers and holds the same bans on its interface.
	if after := banSet(w.list(t)); after != before {
		t.Fatalf("bans changed under the first daemon: before %s, after %s", before, after)
	}
	if st := w.mustCLI(t, "status"); !strings.Contains(st, w.p.HostIf) {
		t.Fatalf("first daemon's interface %s gone from status:\n%s", w.p.HostIf, st)
	}
	if !hasXDP(t, w, w.p.HostIf) {
		t.Fatalf("first daemon's interface %s has no XDP program", w.p.HostIf)
	}
	if n := w.send(t, a, 50); n != 0 {
		t.Fatalf("after the refused start %d of 50 from the banned source arrived", n)
	}

	// A second daemon sharing the state directory is refused too, and
	// names that directory.
	paths = []string{"--socket", filepath.Join(other, "run2.sock"), "--pin-path", nspairtest.PinDir(t),
		"--state-dir", w.state, "--config", w.config}
	code, out = w.runToExit(t, paths, "--iface", "lo", "--banlog", filepath.Join(other, "xdpban2.log"))
	if last := lastLine(out); code == 0 || !strings.Contains(last, "state directory "+w.state) || !strings.Contains(last, "in use") {
		t.Fatalf("second daemon on the same state dir: exit %d, %q", code, last)
	}
	if hasXDP(t, w, "lo") {
		t.Fatalf("the refused daemon left XDP attached to lo")
	}
}

// TestFaultStartFailureLeavesNothing: a start refused for a socket in use
// or a state dir that cannot be one has attached and pinned nothing.
func TestFaultStartFailureLeavesNothing(t *testing.T) {
	w := newWorld(t)
	// A live listener on the socket path (another daemon's socket).
	if err := os.MkdirAll(filepath.Dir(w.socket), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", w.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, out := w.runToExit(t, w.paths(), "--iface", w.p.HostIf, "--banlog", w.banlog)
	if last := lastLine(out); code == 0 || !strings.Contains(last, w.socket) {
		t.Fatalf("start with the socket in use: exit %d, %q", code, last)
	}
	checkNothingLeft(t, w, "socket in use")
	ln.Close()

	// A state dir that is a file.
	file := filepath.Join(t.TempDir(), "state-is-a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	paths := []string{"--socket", w.socket, "--pin-path", w.pin, "--state-dir", file, "--config", w.config}
	code, out = w.runToExit(t, paths, "--iface", w.p.HostIf, "--banlog", w.banlog)
	if last := lastLine(out); code == 0 || !strings.Contains(last, file) {
		t.Fatalf("start with a file as state dir: exit %d, %q", code, last)
	}
	checkNothingLeft(t, w, "bad state dir")
	// And then a good start works on the same paths.
	w.start(t)

	// A start that fails after attaching: the store holds more bans
	// than the (now smaller) table takes, found only at the restore.
	var items []control.BanItem
	for i := 0; i < 300; i++ {
		items = append(items, control.BanItem{Addr: fmt.Sprintf("2001:db8:4:%x::/64", i)})
	}
	c := control.NewClient(w.socket)
	defer c.Close()
	if _, err := c.Ban(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	w.mustCLI(t, "detach") // the store keeps the 300
	<-w.d.done
	conf := "[xdpban]\nmap_size_v4 = 1024\nmap_size_v6 = 256\nmap_size_v4_net = 256\nmap_size_v6_net = 256\n"
	if err := os.WriteFile(filepath.Join(w.config, "xdpban.local"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = w.runToExit(t, w.paths(), "--iface", w.p.HostIf, "--banlog", w.banlog)
	if last := lastLine(out); code == 0 || !strings.Contains(last, "map_size_v6") {
		t.Fatalf("start with 300 stored bans for a 256-entry ban_v6: exit %d, %q", code, last)
	}
	checkNothingLeft(t, w, "stored bans do not fit")
}

func checkNothingLeft(t *testing.T, w *world, why string) {
	t.Helper()
	if _, err := os.Stat(w.pin); err == nil {
		t.Fatalf("%s: start failed but left pins at %s", why, w.pin)
	}
	stale, _ := filepath.Glob(w.pin + "*")
	if len(stale) > 0 {
		t.Fatalf("%s: start failed but left %v", why, stale)
	}
	if hasXDP(t, w, w.p.HostIf) {
		t.Fatalf("%s: start failed but left XDP attached to %s", why, w.p.HostIf)
	}
}

// hasXDP reports whether an XDP program is attached to dev in the host
// namespace.
func hasXDP(t *testing.T, w *world, dev string) bool {
	t.Helper()
	out := w.p.Host.Run(t, "ip", "-d", "link", "show", "dev", dev)
	return strings.Contains(out, "prog/xdp")
}

// banSet is the bans listed, by address, jail and expiry (not counters).
func banSet(m map[string]control.Entry) string {
	var out []string
	for a, e := range m {
		exp := "permanent"
		if e.Expires != nil {
			exp = *e.Expires
		}
		out = append(out, a+" "+e.Jail+" "+exp)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// smallFS mounts a tmpfs of size bytes in the test's temp dir (unmounted
// at the end): a real filesystem that really fills up.
func smallFS(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "smallfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs at %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes path until the filesystem refuses (ENOSPC).
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for i := 0; i < 1<<16; i++ { // bounded: 256 MiB at most
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatalf("%s: filesystem never filled up", path)
}

func (w *world) statusJSON(t *testing.T) control.Status {
	t.Helper()
	var st control.Status
	if err := json.Unmarshal([]byte(w.mustCLI(t, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFaultFullDisk: the state directory is on a small tmpfs that fills
// up while the daemon runs. Every ban made then is acknowledged and
// enforced (traffic dropped), an earlier ban of the same address stays
// in force, status and the metrics show the backlog. Killed with -9 and
// restarted on the still-full disk, the daemon starts, lists every
// acknowledged ban (the kernel kept them) and queues them again. Once
// space is freed the backlog is written: after detaching (the kernel
// forgets everything) a restart restores every acknowledged ban from
// the store.
func TestFaultFullDisk(t *testing.T) {
	w := newWorld(t)
	w.state = filepath.Join(smallFS(t, 1<<20), "state")
	writeTestConfig(t, w.config, "metrics_listen = 127.0.0.1:9798\n")
	w.start(t)
	a, a6 := nspairtest.AttackerV4, nspairtest.AttackerV6
	w.mustCLI(t, "ban", a.String(), "--for", "0")
	acked := map[string]bool{a.String() + "/32": true}

	fill(t, filepath.Join(filepath.Dir(w.state), "filler"))
	c := control.NewClient(w.socket)
	defer c.Close()
	var items []control.BanItem
	// Ban until the store refuses (its file may have room for a few).
	var backlog int
	for round := 0; round < 40 && backlog == 0; round++ {
		items = make([]control.BanItem, 200)
		for i := range items {
			items[i] = control.BanItem{Addr: fmt.Sprintf("2001:db8:%x:%x::/64", round+1, i), For: "1h"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := c.Ban(ctx, items)
		cancel()
		if err != nil {
			t.Fatalf("ban while the state disk is full: %v (a store error must not refuse an enforced ban)", err)
		}
		for _, g := range got {
			acked[g] = true
		}
		backlog = w.statusJSON(t).StoreBacklog
	}
	if backlog == 0 {
		t.Fatalf("store never refused a write on a full filesystem (%d bans)", len(acked))
	}
	// During the outage, in one refused write: new bans (a6's among
	// them) and a re-ban of a to 1h. Before, the failed write took them
	// all out of the kernel again, a's earlier permanent ban included.
	items = []control.BanItem{{Addr: a6.String()}, {Addr: a.String(), For: "1h"}}
	for i := 0; i < 200; i++ {
		items = append(items, control.BanItem{Addr: fmt.Sprintf("2001:db8:ffff:%x::/64", i)})
	}
	got, err := c.Ban(context.Background(), items)
	if err != nil {
		t.Fatalf("ban while the state disk is full: %v", err)
	}
	for _, g := range got {
		acked[g] = true
	}
	if b := w.statusJSON(t).StoreBacklog; b < backlog+len(items)-1 {
		t.Fatalf("backlog %d after a second batch of %d on a full disk (was %d): that write was not refused", b, len(items), backlog)
	}
	if n := w.send(t, a, 50); n != 0 {
		t.Fatalf("%d of 50 from %s arrived: a refused store write lifted its earlier ban", n, a)
	}
	if n := w.send(t, a6, 50); n != 0 {
		t.Fatalf("%d of 50 from %s arrived: a ban made while the disk is full is not enforced", n, a6)
	}
	st := w.statusJSON(t)
	if st.StoreBacklog == 0 || !strings.Contains(st.StoreError, "no space") {
		t.Fatalf("status during the outage: backlog %d, error %q; want both", st.StoreBacklog, st.StoreError)
	}
	if out := w.mustCLI(t, "status"); !strings.Contains(out, "FAILING") {
		t.Fatalf("status text does not show the failing store:\n%s", out)
	}
	m := scrapeMetrics(t, w)
	if !strings.Contains(m, "\nxdpban_store_backlog ") || strings.Contains(m, "\nxdpban_store_backlog 0\n") {
		t.Fatalf("metrics do not show the backlog:\n%s", grepLines(m, "xdpban_store"))
	}
	if len(w.list(t)) != len(acked) {
		t.Fatalf("%d bans listed, %d acknowledged", len(w.list(t)), len(acked))
	}
	t.Logf("disk full: %d bans acknowledged, backlog %d writes; %s", len(acked), st.StoreBacklog, grepLines(m, "xdpban_store_write_errors_total"))

	// kill -9 with the writes still queued and the disk still full: the
	// kernel kept them, and the next start (on the same full disk)
	// imports them from there and queues their writes again.
	w.d.kill()
	if n := w.send(t, a6, 20); n != 0 {
		t.Fatalf("daemon killed: %d of 20 from %s arrived", n, a6)
	}
	w.start(t)
	if n := len(w.list(t)); n != len(acked) {
		t.Fatalf("restart on the full disk lists %d bans, %d acknowledged", n, len(acked))
	}
	st = w.statusJSON(t)
	t.Logf("kill -9 and restart on the full disk: %d of %d acknowledged bans listed, backlog %d", len(w.list(t)), len(acked), st.StoreBacklog)
	if st.StoreBacklog == 0 {
		t.Fatalf("restart on the full disk shows no backlog, yet could not store the bans it imported")
	}

	// Space comes back: the backlog drains by itself.
	if err := os.Remove(filepath.Join(filepath.Dir(w.state), "filler")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the store backlog to drain", func() bool { return w.statusJSON(t).StoreBacklog == 0 })
	if m := scrapeMetrics(t, w); !strings.Contains(m, "\nxdpban_store_backlog 0\n") {
		t.Fatalf("metrics after recovery:\n%s", grepLines(m, "xdpban_store"))
	}
	// The store now holds every acknowledged ban: detach (the kernel
	// forgets them all) and start again.
	w.mustCLI(t, "detach")
	<-w.d.done
	w.start(t)
	listed := w.list(t)
	kept := 0
	var missing []string
	for p := range acked {
		if _, ok := listed[p]; ok {
			kept++
		} else {
			missing = append(missing, p)
		}
	}
	t.Logf("after recovery, detach and restart: %d of %d acknowledged bans restored from the store", kept, len(acked))
	if kept != len(acked) {
		var near []string
		for p := range listed {
			if strings.HasPrefix(p, "2001:db8::") {
				near = append(near, p)
			}
		}
		t.Fatalf("%d of %d acknowledged bans restored from the store; missing %v (listed near it: %v)", kept, len(acked), missing, near)
	}
	// (a's re-ban to 1h lived only in the killed daemon's queue and the
	// kernel; the restart restored the store's permanent ban over it:
	// longer, never shorter.)
	if n := w.send(t, a, 20); n != 0 {
		t.Fatalf("after restart %d of 20 from %s arrived", n, a)
	}
	if n := w.send(t, a6, 20); n != 0 {
		t.Fatalf("after restart %d of 20 from %s arrived", n, a6)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// kernelKeys reads a pinned ban table with bpftool (the kernel's view,
// not the daemon's) and returns its keys as hex strings.
func kernelKeys(t *testing.T, w *world, table string) map[string]bool {
	t.Helper()
	out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", filepath.Join(w.pin, table)).Output()
	if err != nil {
		t.Fatalf("bpftool map dump %s: %v", table, err)
	}
	var es []struct {
		Key []string `json:"key"`
	}
	if err := json.Unmarshal(out, &es); err != nil {
		t.Fatalf("bpftool map dump %s: %v\n%.300s", table, err, out)
	}
	keys := make(map[string]bool, len(es))
	for _, e := range es {
		var b strings.Builder
		for _, h := range e.Key {
			b.WriteString(strings.TrimPrefix(h, "0x"))
		}
		keys[b.String()] = true
	}
	return keys
}

// v6Key is the ban_v6 key of a /64 prefix as kernelKeys spells it.
func v6Key(p netip.Prefix) string {
	a := p.Masked().Addr().As16()
	return hex.EncodeToString(a[:])
}

// bpftoolBatch runs bpftool commands, one a line, in one process.
func bpftoolBatch(t *testing.T, lines []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bpftool", "batch", "file", f).CombinedOutput(); err != nil {
		t.Fatalf("bpftool batch: %v: %.500s", err, out)
	}
}

func hexBytes(b []byte) string {
	var s []string
	for _, x := range b {
		s = append(s, fmt.Sprintf("%02x", x))
	}
	return strings.Join(s, " ")
}

// TestFaultMapFull: ban_v6 made with 1,024 entries. A 3,000-line import
// is refused whole with one line naming the table and map_size_v6; 2,001
// single bans are acknowledged up to the table's limit and refused past
// it, and the kernel holds exactly what status says. Then the map is
// overfilled behind the daemon's back (bpftool), the kernel evicts the
// daemon's bans, and they come back: a jail decision for an evicted
// permanent ban puts it back at once (traffic dropped again), and a
// reload puts back the rest, counted in xdpban_bans_reinserted_total.
func TestFaultMapFull(t *testing.T) {
	w := newWorld(t)
	conf := "[xdpban]\nmap_size_v4 = 1024\nmap_size_v6 = 1024\nmap_size_v4_net = 256\nmap_size_v6_net = 256\nmetrics_listen = 127.0.0.1:9798\n"
	if err := os.WriteFile(filepath.Join(w.config, "xdpban.local"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := w.jailLog(t, 1)
	w.start(t)
	var limit int
	for _, tb := range w.statusJSON(t).Tables {
		if tb.Name == "ban_v6" {
			limit = tb.Limit
			if limit == 0 {
				limit = tb.Capacity
			}
			if tb.Capacity != 1024 {
				t.Fatalf("ban_v6 capacity %d, configured 1024", tb.Capacity)
			}
		}
	}
	t.Logf("ban_v6: 1024 entries, takes %d bans", limit)
	// In a /64 of its own: the harness's attacker shares the host's
	// on-link /64, where a ban narrows so as not to cover the host.
	a6 := netip.MustParseAddr("2001:db8:0:1::2")
	w.p.AddAttackerAddr(t, a6)
	w.mustCLI(t, "ban", a6.String(), "--for", "0")
	permKey := v6Key(netip.PrefixFrom(a6, 64))

	// An import that does not fit bans nothing.
	var file strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&file, "2001:db8:1:%x::/64\n", i)
	}
	imp := filepath.Join(t.TempDir(), "import")
	os.WriteFile(imp, []byte(file.String()), 0o600)
	code, out, errs := w.cli(t, "ban", "--from-file", imp)
	if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") > 0 || !strings.Contains(errs, "ban_v6") || !strings.Contains(errs, "map_size_v6") {
		t.Fatalf("import of 3000 into a %d-ban table: exit %d, stdout %q, stderr %q; want one line naming ban_v6 and map_size_v6", limit, code, out, errs)
	}
	if n := len(kernelKeys(t, w, "ban_v6")); n != 1 {
		t.Fatalf("refused import left %d entries in ban_v6, want 1 (the ban from before)", n)
	}
	t.Logf("import of 3000: refused whole (%s), kernel holds 1", strings.TrimSpace(errs))

	// 2,001 single bans: acknowledged up to the limit, refused after.
	c := control.NewClient(w.socket)
	defer c.Close()
	acked := map[string]bool{permKey: true}
	refused := 0
	for i := 0; i < 2001; i++ {
		p := netip.MustParsePrefix(fmt.Sprintf("2001:db8:2:%x::/64", i))
		_, err := c.Ban(context.Background(), []control.BanItem{{Addr: p.String(), For: "1h"}})
		switch {
		case err == nil:
			acked[v6Key(p)] = true
		case errors.Is(err, bans.ErrFull):
			refused++
		default:
			t.Fatalf("ban %d: %v", i, err)
		}
	}
	kernel := kernelKeys(t, w, "ban_v6")
	var entries int
	for _, tb := range w.statusJSON(t).Tables {
		if tb.Name == "ban_v6" {
			entries = tb.Entries
		}
	}
	t.Logf("2001 single bans: %d acknowledged (with the permanent one), %d refused; kernel holds %d, status says %d / 1024", len(acked), refused, len(kernel), entries)
	if len(acked) != limit || refused != 2001-(limit-1) {
		t.Fatalf("%d acknowledged, %d refused; want %d acknowledged", len(acked), refused, limit)
	}
	if len(kernel) != len(acked) || entries != len(acked) {
		t.Fatalf("acknowledged %d, kernel holds %d, status says %d", len(acked), len(kernel), entries)
	}
	for k := range acked {
		if !kernel[k] {
			t.Fatalf("acknowledged ban %s not in the kernel", k)
		}
	}
	if !strings.Contains(w.d.out.String(), "ban table nearly full") {
		t.Fatalf("no warning in the log at 90%% fill")
	}

	// Behind the daemon's back: 600 more entries, past max_entries.
	var add, del []string
	val := hexBytes(make([]byte, 48))
	for i := 0; i < 600; i++ {
		p := netip.MustParsePrefix(fmt.Sprintf("2001:db8:3:%x::/64", i))
		k := p.Addr().As16()
		add = append(add, fmt.Sprintf("map update pinned %s key hex %s value hex %s", filepath.Join(w.pin, "ban_v6"), hexBytes(k[:]), val))
		del = append(del, fmt.Sprintf("map delete pinned %s key hex %s", filepath.Join(w.pin, "ban_v6"), hexBytes(k[:])))
	}
	bpftoolBatch(t, add)
	kernel = kernelKeys(t, w, "ban_v6")
	kept := 0
	for k := range acked {
		if kernel[k] {
			kept++
		}
	}
	t.Logf("600 entries added behind the daemon: kernel holds %d, %d of %d acknowledged bans left (%d evicted)", len(kernel), kept, len(acked), len(acked)-kept)
	if kept == len(acked) {
		t.Fatalf("overfilling the map evicted nothing: the test shows nothing")
	}
	// Whatever survived those, the foreign entries go again, and the
	// permanent ban is made certain to be gone (as an eviction would).
	bpftoolBatch(t, del)
	handDeleted := 0
	if kernelKeys(t, w, "ban_v6")[permKey] {
		handDeleted = 1 // it survived the overfill: its reinsertion counts too
		bpftoolBatch(t, []string{fmt.Sprintf("map delete pinned %s key hex %s", filepath.Join(w.pin, "ban_v6"), hexBytes(netip.PrefixFrom(a6, 64).Masked().Addr().AsSlice()))})
	}
	if n := w.send(t, a6, 20); n != 20 {
		t.Fatalf("with its ban evicted %d of 20 from %s arrived, want 20", n, a6)
	}
	// A jail decision on the evicted permanent ban: the mirror says
	// "banned for longer", the kernel says no; the kernel wins.
	appendLines(t, logPath, failLine(a6.String(), 1))
	waitFor(t, 5*time.Second, "the evicted permanent ban to be put back", func() bool { return kernelKeys(t, w, "ban_v6")[permKey] })
	if n := w.send(t, a6, 20); n != 0 {
		t.Fatalf("after the jail decision %d of 20 from %s arrived", n, a6)
	}
	if e := w.list(t)[netip.PrefixFrom(a6, 64).Masked().String()]; e.Expires != nil {
		t.Fatalf("the permanent ban came back with an expiry: %+v", e)
	}
	// A reload checks the kernel against the store and puts back the rest.
	code, _, errs = w.cli(t, "reload")
	if code != 0 {
		t.Fatalf("reload: exit %d: %s", code, errs)
	}
	kernel = kernelKeys(t, w, "ban_v6")
	back := 0
	for k := range acked {
		if kernel[k] {
			back++
		}
	}
	m := scrapeMetrics(t, w)
	t.Logf("after the reload: kernel holds %d, %d of %d acknowledged bans; reload said %q; %s", len(kernel), back, len(acked), strings.TrimSpace(errs), grepLines(m, "xdpban_bans_reinserted_total"))
	if back != len(acked) || len(kernel) != len(acked) {
		t.Fatalf("after the reload %d of %d acknowledged bans in the kernel (%d entries)", back, len(acked), len(kernel))
	}
	if want := fmt.Sprintf("\nxdpban_bans_reinserted_total %d\n", len(acked)-kept+handDeleted); !strings.Contains(m, want) {
		t.Fatalf("metric: want %q in\n%s", strings.TrimSpace(want), grepLines(m, "xdpban_bans_reinserted"))
	}
	// With no daemon, the CLI works on the pins itself: same refusal.
	w.d.stop(t)
	code, out = w.cliIn(t, "ban", "2001:db8:6::/64")
	if code == 0 || !strings.Contains(out, "map_size_v6") {
		t.Fatalf("direct-mode ban into the full table: exit %d, %q", code, out)
	}
	if n := len(kernelKeys(t, w, "ban_v6")); n != len(acked) {
		t.Fatalf("after the refused direct-mode ban the kernel holds %d, want %d", n, len(acked))
	}
}
