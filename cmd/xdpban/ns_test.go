package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/fleet"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
	"github.com/xdpban/xdpban/internal/syncbuf"
)

const testPort = 7009

// world is one protected host with its attacker and the paths a daemon
// of this test uses (never the defaults).
type world struct {
	p      *nspairtest.Pair
	r      *nspairtest.Receiver
	socket string
	pin    string
	state  string
	banlog string
	config string
	d      *daemonProc
}

func newWorld(t *testing.T) *world {
	t.Helper()
	nspairtest.Require(t)
	dir := t.TempDir()
	w := &world{
		p:      nspairtest.New(t),
		socket: filepath.Join(dir, "run", "xdpban.sock"),
		pin:    nspairtest.PinDir(t),
		state:  filepath.Join(dir, "state"),
		banlog: filepath.Join(dir, "xdpban.log"),
		config: filepath.Join(dir, "etc"),
	}
	w.r = w.p.Listen(t, testPort)
	writeTestConfig(t, w.config, "")
	return w
}

// writeTestConfig writes a small configuration: small maps (the defaults
// preallocate a million entries) plus extra.
func writeTestConfig(t *testing.T, dir, extra string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "[xdpban]\nmap_size_v4 = 16384\nmap_size_v6 = 16384\nmap_size_v4_net = 1024\nmap_size_v6_net = 1024\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "xdpban.local"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The shipped sshd jail would follow this machine's auth log.
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (w *world) paths() []string {
	return []string{"--socket", w.socket, "--pin-path", w.pin, "--state-dir", w.state, "--config", w.config}
}

// cli runs an xdpban command against this world's daemon (or pins).
func (w *world) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, "", append(w.paths(), args...)...)
}

func (w *world) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := w.cli(t, args...)
	if code != 0 {
		t.Fatalf("xdpban %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// daemonProc is `xdpban run` started in the host namespace.
type daemonProc struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

// start runs the daemon in the host namespace (nsenter keeps /sys/fs/bpf,
// which `ip netns exec` would hide by remounting /sys) and waits until its
// socket answers.
func (w *world) start(t *testing.T, extra ...string) *daemonProc {
	t.Helper()
	args := append([]string{"--net=" + w.p.Host.Path(), "--", os.Args[0]}, w.paths()...)
	args = append(args, "run", "--iface", w.p.HostIf, "--backend", "xdp", "--banlog", w.banlog)
	args = append(args, extra...)
	cmd := exec.Command("nsenter", args...)
	cmd.Env = append(os.Environ(), "XDPBAN_TEST_AS_MAIN=1")
	d := &daemonProc{cmd: cmd, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.out.String())
		}
	})
	c := control.NewClient(w.socket)
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.done:
			t.Fatalf("daemon exited at start (%v):\n%s", d.err, d.out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		// Answering is not started: the socket is served while the
		// kernel is compared with the store.
		st, err := c.Status(ctx)
		cancel()
		if err == nil && !st.Starting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not started after 20s (status %+v): %v\n%s", st, err, d.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.d = d
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v\n%s", d.err, d.out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("daemon did not stop within 15s of SIGTERM:\n%s", d.out.String())
	}
}

func (d *daemonProc) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.done
}

func (w *world) send(t *testing.T, from netip.Addr, n int) int {
	t.Helper()
	s := w.p.Sender(t, from, testPort)
	return nspairtest.Deliver(t, s, w.r, n, 300*time.Millisecond)
}

func (w *world) list(t *testing.T) map[string]control.Entry {
	t.Helper()
	out := w.mustCLI(t, "list", "--json")
	var es []control.Entry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	m := map[string]control.Entry{}
	for _, e := range es {
		m[e.Addr] = e
	}
	return m
}

func TestBanUnbanThroughDaemon(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	a := nspairtest.AttackerV4
	if got := w.send(t, a, 20); got != 20 {
		t.Fatalf("before the ban %d of 20 arrived", got)
	}
	w.mustCLI(t, "ban", a.String(), "--jail", "sshd")
	// Enforced before the CLI returned: the very next packets drop.
	const n = 50
	if got := w.send(t, a, n); got != 0 {
		t.Fatalf("after ban returned, %d of %d arrived", got, n)
	}
	e, ok := w.list(t)["192.0.2.2/32"]
	if !ok {
		t.Fatalf("ban missing from list")
	}
	if e.Packets != n || e.Jail != "sshd" || e.Expires == nil {
		t.Fatalf("list entry %+v: want %d packets, jail sshd, an expiry", e, n)
	}
	exp, _ := time.Parse(time.RFC3339, *e.Expires)
	if left := time.Until(exp); left < 58*time.Minute || left > time.Hour {
		t.Fatalf("time left %v, want about 1h (the default)", left)
	}
	out := w.mustCLI(t, "list")
	if !strings.Contains(out, "192.0.2.2/32") || !strings.Contains(out, "sshd") || !strings.Contains(out, fmt.Sprint(n)) {
		t.Fatalf("list output:\n%s", out)
	}
	// Unban of a jail nothing runs or holds bans under is refused too.
	if code, _, errs := w.cli(t, "unban", "--all", "--jail", "nosuch"); code != exitUsage || !strings.Contains(errs, `unknown jail "nosuch"`) || !strings.Contains(errs, "manual, sshd") {
		t.Fatalf("unban --all --jail nosuch: exit %d %q, want exit 2 naming nosuch and the jails", code, errs)
	}
	// Unban with the wrong jail is refused and changes nothing.
	if code, _, errs := w.cli(t, "unban", a.String(), "--jail", "nginx"); code != exitFailure || !strings.Contains(errs, "jail sshd") {
		t.Fatalf("unban with wrong jail: exit %d %q", code, errs)
	}
	w.mustCLI(t, "unban", a.String())
	if got := w.send(t, a, 20); got != 20 {
		t.Fatalf("after unban %d of 20 arrived", got)
	}
	if code, _, errs := w.cli(t, "unban", a.String()); code != exitFailure || !strings.Contains(errs, "not banned") {
		t.Fatalf("second unban: exit %d %q", code, errs)
	}
	log, _ := os.ReadFile(w.banlog)
	if !strings.Contains(string(log), "NOTICE  [sshd] Ban 192.0.2.2\n") || !strings.Contains(string(log), "NOTICE  [sshd] Unban 192.0.2.2\n") {
		t.Fatalf("ban log:\n%s", log)
	}
}

func TestIPv6BanCoversSlash64(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	// A /64 the host has no address in.
	a := netip.MustParseAddr("2001:db8:0:1::5")
	other := netip.MustParseAddr("2001:db8:0:1::99")
	w.p.AddAttackerAddr(t, a)
	w.p.AddAttackerAddr(t, other)
	w.mustCLI(t, "ban", a.String(), "--for", "10m")
	if got := w.send(t, a, 20); got != 0 {
		t.Fatalf("banned v6 source: %d of 20 arrived", got)
	}
	if got := w.send(t, other, 20); got != 0 {
		t.Fatalf("other address in the same /64: %d of 20 arrived", got)
	}
	e, ok := w.list(t)["2001:db8:0:1::/64"]
	if !ok || e.Packets != 40 {
		t.Fatalf("list: %+v (ok %v), want 2001:db8:0:1::/64 with 40 packets", e, ok)
	}
	// IPv4 is untouched.
	if got := w.send(t, nspairtest.AttackerV4, 20); got != 20 {
		t.Fatalf("v4 source: %d of 20 arrived", got)
	}
	// The harness's attacker shares the host's on-link /64: its ban
	// narrows to the widest prefix without the host's 2001:db8::1, and
	// a neighbour outside that prefix still gets through.
	neighbour := netip.MustParseAddr("2001:db8::1:7")
	w.p.AddAttackerAddr(t, neighbour)
	out := w.mustCLI(t, "ban", nspairtest.AttackerV6.String(), "--for", "10m")
	if !strings.Contains(out, "banned 2001:db8::2/127") {
		t.Fatalf("ban of %s inside the host's /64: %q, want it narrowed to 2001:db8::2/127", nspairtest.AttackerV6, out)
	}
	if got := w.send(t, nspairtest.AttackerV6, 20); got != 0 {
		t.Fatalf("narrowed ban: %d of 20 from %s arrived", got, nspairtest.AttackerV6)
	}
	if got := w.send(t, neighbour, 20); got != 20 {
		t.Fatalf("on-link neighbour %s outside the narrowed ban: %d of 20 arrived", neighbour, got)
	}
}

func TestBanExpiresByItself(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--for", "2s")
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("during the ban %d of 10 arrived", got)
	}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if len(w.list(t)) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l := w.list(t); len(l) != 0 {
		t.Fatalf("ban still listed 6s after a 2s ban: %v", l)
	}
	if got := w.send(t, a, 20); got != 20 {
		t.Fatalf("after expiry %d of 20 arrived", got)
	}
	// The sweep removed it from the store and logged it.
	deadline = time.Now().Add(3 * time.Second)
	for {
		log, _ := os.ReadFile(w.banlog)
		if strings.Contains(string(log), "Unban 192.0.2.2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Unban line after expiry:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.d.stop(t)
	w.start(t)
	if l := w.list(t); len(l) != 0 {
		t.Fatalf("expired ban came back after restart: %v", l)
	}
}

func TestRestartLosesNothing(t *testing.T) {
	w := newWorld(t)
	d := w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--for", "1h", "--jail", "sshd")
	w.mustCLI(t, "ban", "198.51.100.0/24", "--for", "0")
	before := w.list(t)
	// A banned source keeps sending through the whole stop and start: not
	// one datagram may pass while no daemon runs.
	var conn *net.UDPConn
	err := w.p.Attacker.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(nspairtest.HostV4, testPort)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stopSend := make(chan struct{})
	sent := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stopSend:
				sent <- n
				return
			default:
			}
			if _, err := conn.Write(make([]byte, 32)); err == nil {
				n++
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()
	d.stop(t)
	time.Sleep(100 * time.Millisecond)
	w.start(t)
	close(stopSend)
	during := <-sent
	if got := w.r.WaitFor(a, 1, 300*time.Millisecond); got != 0 {
		t.Fatalf("%d of %d datagrams sent across the restart arrived", got, during)
	}
	after := w.list(t)
	if len(after) != 2 {
		t.Fatalf("after restart: %v", after)
	}
	for k, b := range before {
		g := after[k]
		if g.Jail != b.Jail || (g.Expires == nil) != (b.Expires == nil) || (g.Expires != nil && *g.Expires != *b.Expires) {
			t.Errorf("%s: before %+v, after %+v", k, b, g)
		}
	}
	if got := after["192.0.2.2/32"].Packets; got != uint64(during) {
		t.Errorf("packets counted across the restart: %d, want the %d sent", got, during)
	}
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("after restart %d of 10 arrived", got)
	}
}

// TestDetachThenStartIsAReboot: `xdpban detach` removes every trace from
// the kernel (as a reboot does); the next start puts every unexpired ban
// back, with its remaining time, before the socket answers.
func TestDetachThenStartIsAReboot(t *testing.T) {
	w := newWorld(t)
	d := w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--for", "1h", "--jail", "sshd")
	w.mustCLI(t, "ban", "2001:db8::2", "--for", "30m")
	w.mustCLI(t, "ban", "203.0.113.0/24", "--for", "0")
	before := w.list(t)
	out := w.mustCLI(t, "detach")
	if !strings.Contains(out, "detached") {
		t.Fatalf("detach said %q", out)
	}
	select {
	case <-d.done:
		if d.err != nil {
			t.Fatalf("daemon exit after detach: %v", d.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon still running 10s after detach")
	}
	if _, err := os.Stat(w.pin); !os.IsNotExist(err) {
		t.Fatalf("pin dir after detach: %v", err)
	}
	if got := w.send(t, a, 20); got != 20 {
		t.Fatalf("detached: %d of 20 arrived, want all", got)
	}
	w.start(t)
	// The socket answers only after the restore: the first packets drop.
	if got := w.send(t, a, 20); got != 0 {
		t.Fatalf("after start: %d of 20 arrived", got)
	}
	if got := w.send(t, nspairtest.AttackerV6, 20); got != 0 {
		t.Fatalf("after start (v6): %d of 20 arrived", got)
	}
	after := w.list(t)
	if len(after) != len(before) {
		t.Fatalf("before detach %v\nafter start %v", before, after)
	}
	for k, b := range before {
		g, ok := after[k]
		if !ok || g.Jail != b.Jail || (g.Expires == nil) != (b.Expires == nil) {
			t.Fatalf("%s: before %+v, after %+v", k, b, g)
		}
		if b.Expires != nil && *g.Expires != *b.Expires {
			t.Errorf("%s: expiry %s before, %s after", k, *b.Expires, *g.Expires)
		}
	}
}

// TestFaultKill9UnderLoad: bans in flight when the daemon is killed. Every ban
// the daemon acknowledged must be there after a restart.
func TestFaultKill9UnderLoad(t *testing.T) {
	w := newWorld(t)
	d := w.start(t)
	w.mustCLI(t, "ban", nspairtest.AttackerV4.String())
	c := control.NewClient(w.socket)
	defer c.Close()
	acked := make(chan string, 100000)
	stop := make(chan struct{})
	var errs atomicCount
	const workers = 8
	doneW := make(chan struct{}, workers)
	for g := range workers {
		go func() {
			defer func() { doneW <- struct{}{} }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				addr := fmt.Sprintf("2001:db8:%x:%x::1", g+1, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				got, err := c.Ban(ctx, []control.BanItem{{Addr: addr, Jail: "load", For: "1h"}})
				cancel()
				if err != nil {
					errs.add()
					time.Sleep(5 * time.Millisecond)
					continue
				}
				acked <- got[0]
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	d.kill()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	for range workers {
		<-doneW
	}
	close(acked)
	var want []string
	for a := range acked {
		want = append(want, a)
	}
	if len(want) < 20 {
		t.Fatalf("only %d bans acknowledged before the kill: the load was too light to mean anything", len(want))
	}
	// The kernel still enforces while nothing runs.
	if n := w.send(t, nspairtest.AttackerV4, 50); n != 0 {
		t.Fatalf("with the daemon killed, %d of 50 from a banned source arrived", n)
	}
	w.start(t)
	got := w.list(t)
	missing := 0
	for _, a := range want {
		if _, ok := got[a]; !ok {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged ban %s lost", a)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged bans lost across kill -9", missing, len(want))
	}
	t.Logf("%d bans acknowledged before kill -9, all present after restart (%d listed, %d requests failed after the kill)", len(want), len(got), errs.n.Load())
	// Store and kernel agree: a second restart lists the same set.
	w.d.stop(t)
	w.start(t)
	if again := w.list(t); len(again) != len(got) {
		t.Fatalf("second restart lists %d bans, first %d", len(again), len(got))
	}
}

type atomicCount struct{ n atomic.Int64 }

func (a *atomicCount) add() { a.n.Add(1) }

// TestConcurrentClients: 50 clients ban 10,000 addresses and unban half
// of them at once; the final state is exactly the expected set, in the
// kernel and (after a restart) in the store.
func TestConcurrentClients(t *testing.T) {
	w := newWorld(t)
	// A jail bans from a log a writer appends to while the clients run.
	logPath := w.jailLog(t, 2)
	w.start(t)
	const clients, per, logged = 50, 200, 250
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, clients+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		// Each address fails twice (maxretry 2), the second time after
		// the other addresses' first failures.
		for round := range 2 {
			for i := 1; i <= logged; i++ {
				if _, err := f.WriteString(failLine(fmt.Sprintf("198.51.100.%d", i), round*logged+i)); err != nil {
					errc <- err
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := control.NewClient(w.socket)
			defer c.Close()
			ctx := context.Background()
			for i := range per {
				addr := fmt.Sprintf("2001:db8:%x:%x::1", 0x100+g, i)
				got, err := c.Ban(ctx, []control.BanItem{{Addr: addr, Jail: fmt.Sprintf("c%d", g%5), For: "1h"}})
				if err != nil {
					errc <- fmt.Errorf("ban %s: %w", addr, err)
					return
				}
				if i%2 == 1 {
					if _, err := c.Unban(ctx, control.UnbanRequest{Addrs: []string{addr}}); err != nil {
						errc <- fmt.Errorf("unban %s: %w", addr, err)
						return
					}
					continue
				}
				mu.Lock()
				want[got[0]] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for i := 1; i <= logged; i++ {
		want[fmt.Sprintf("198.51.100.%d/32", i)] = true
	}
	// The jail's last bans may still be on their way from the log.
	for deadline := time.Now().Add(10 * time.Second); len(w.list(t)) < len(want) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	check := func(when string) {
		got := w.list(t)
		if len(got) != len(want) {
			t.Fatalf("%s: %d bans listed, want %d", when, len(got), len(want))
		}
		for a := range want {
			if _, ok := got[a]; !ok {
				t.Fatalf("%s: %s missing", when, a)
			}
		}
	}
	check("after the clients")
	w.d.stop(t)
	w.start(t)
	check("after a restart")
}

// TestBadSocketInputKeepsDaemonAndBans sends garbage to a live daemon.
func TestBadSocketInputKeepsDaemonAndBans(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String())
	for _, body := range []string{`{"bans":[{"addr":`, `[]`, strings.Repeat("x", 2<<20), `{"bans":[{"addr":"300.1.2.3"}]}`} {
		resp := rawPost(t, w.socket, "/v1/ban", body)
		if !strings.Contains(resp, `"error"`) {
			t.Errorf("bad body %.40q: reply %q", body, resp)
		}
	}
	if resp := rawPost(t, w.socket, "/v1/rm-rf", "{}"); !strings.Contains(resp, "unknown command") {
		t.Errorf("unknown command: %q", resp)
	}
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("after bad input the ban is gone: %d of 10 arrived", got)
	}
	if _, ok := w.list(t)["192.0.2.2/32"]; !ok {
		t.Fatal("ban missing after bad input")
	}
}

func rawPost(t *testing.T, sock, path, body string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Post("http://x"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("post %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestStatusOutput(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	w.mustCLI(t, "ban", nspairtest.AttackerV4.String(), "--jail", "sshd")
	w.send(t, nspairtest.AttackerV4, 5)
	out := w.mustCLI(t, "status", "--json")
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Backend != "xdp" || st.Mode != "daemon" || st.Bans != 1 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Interfaces) != 1 || st.Interfaces[0].Name != w.p.HostIf {
		t.Fatalf("interfaces %+v, want %s", st.Interfaces, w.p.HostIf)
	}
	if st.Counters["dropped"] < 5 {
		t.Fatalf("dropped counter %d, want >= 5", st.Counters["dropped"])
	}
	found := false
	for _, tb := range st.Tables {
		if tb.Entries == 1 && tb.Capacity > 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no table with the one ban: %+v", st.Tables)
	}
	text := w.mustCLI(t, "status")
	for _, want := range []string{"backend:", "xdp", w.p.HostIf, "Jail list:\tsshd"} {
		if !strings.Contains(text, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}
	js := w.mustCLI(t, "status", "sshd")
	for _, want := range []string{"Status for the jail: sshd", "Currently banned:\t1", "Banned IP list:\t192.0.2.2/32"} {
		if !strings.Contains(js, want) {
			t.Errorf("status sshd lacks %q:\n%s", want, js)
		}
	}
	if code, _, errs := w.cli(t, "status", "nosuchjail"); code != exitUsage || !strings.Contains(errs, `unknown jail "nosuchjail"`) {
		t.Fatalf("status of unknown jail: %d %q", code, errs)
	}
	// Without the daemon the CLI reads the pinned maps itself.
	w.d.stop(t)
	out = w.mustCLI(t, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Mode != "direct" || st.Bans != 1 {
		t.Fatalf("direct status: %v %+v", err, st)
	}
}

// TestDirectModeWithoutDaemon bans and unbans on the pinned maps with no
// daemon; the next daemon finds store and kernel in agreement.
func TestDirectModeWithoutDaemon(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	w.d.stop(t)
	a := nspairtest.AttackerV4
	// On the protected host, as an operator runs it: a direct ban is
	// checked against that host's own addresses (not the test
	// runner's, which may hold the attacker's address).
	hostCLI := func(args ...string) {
		t.Helper()
		var code int
		var errs string
		if err := w.p.Host.Do(func() error { code, _, errs = w.cli(t, args...); return nil }); err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("xdpban %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
	}
	hostCLI("ban", a.String(), "--for", "1h")
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("direct ban: %d of 10 arrived", got)
	}
	hostCLI("ban", "198.51.100.9")
	hostCLI("unban", "198.51.100.9")
	var code int
	var errs string
	w.p.Host.Do(func() error { code, _, errs = w.cli(t, "ban", nspairtest.HostV4.String()); return nil })
	if code == 0 || !strings.Contains(errs, "this host's own address") {
		t.Fatalf("direct ban of the host's own %s: exit %d %q, want it refused", nspairtest.HostV4, code, errs)
	}
	// A jail nothing runs or holds bans under is a typo, not "unbanned 0".
	code, _, errs = w.cli(t, "unban", "--all", "--jail", "nosuch")
	if code != exitUsage || !strings.Contains(errs, `unknown jail "nosuch"`) || !strings.Contains(errs, "the jails are manual") {
		t.Fatalf("direct unban --all --jail nosuch: exit %d %q, want exit 2 naming nosuch and the jails", code, errs)
	}
	w.start(t)
	l := w.list(t)
	if _, ok := l["192.0.2.2/32"]; !ok || len(l) != 1 {
		t.Fatalf("after a direct ban and unban the daemon lists %v", l)
	}
}

// TestDirectModeQueuesForTheFleet: with [fleet] on and no daemon
// running, a ban and an unban made on the pins are queued in the store's
// outbox, so the next start shares them (an unban not shared would come
// back from the bucket).
func TestDirectModeQueuesForTheFleet(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	w.d.stop(t)
	writeTestConfig(t, w.config, "[fleet]\nenabled = true\nservers = nats://192.0.2.1:4222\nnode = bastion-a\n")
	run := func(args ...string) {
		t.Helper()
		var code int
		var errs string
		w.p.Host.Do(func() error { code, _, errs = w.cli(t, args...); return nil })
		if code != 0 {
			t.Fatalf("xdpban %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
	}
	run("ban", "198.51.100.9", "--for", "1h")
	run("ban", "198.51.100.10", "--for", "1h")
	run("unban", "198.51.100.10")
	st, err := store.Open(filepath.Join(w.state, daemon.DBFile), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{} // key -> a ban (value) or a delete
	for _, e := range es {
		got[e.Key] = len(e.Value) > 0
	}
	ban, unban := fleet.Key(netip.MustParsePrefix("198.51.100.9/32")), fleet.Key(netip.MustParsePrefix("198.51.100.10/32"))
	if isBan, ok := got[ban]; !ok || !isBan {
		t.Errorf("outbox %v: want the ban %s queued", got, ban)
	}
	if isBan, ok := got[unban]; !ok || isBan {
		t.Errorf("outbox %v: want the delete %s queued", got, unban)
	}
}

// jailConfig is a jail following logPath with the shipped sshd filter.
func jailConfig(logPath string, maxRetry int) string {
	return fmt.Sprintf("[sshd]\nenabled = false\n\n[testjail]\nenabled = true\nfilter = sshd\nbackend = file\nlogpath = %s\nmaxretry = %d\nfindtime = 1h\nbantime = 1h\n", logPath, maxRetry)
}

// jailLog creates a log with one unrelated line and a jail (testjail)
// that follows it with maxRetry, and returns the log's path.
func (w *world) jailLog(t *testing.T, maxRetry int) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "auth.log")
	appendLines(t, logPath, "startup line\n")
	writeJailConfig(t, w, logPath, maxRetry)
	return logPath
}

func writeJailConfig(t *testing.T, w *world, logPath string, maxRetry int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(jailConfig(logPath, maxRetry)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func failLine(addr string, i int) string {
	return fmt.Sprintf("%s testhost sshd[%d]: Failed password for invalid user u%d from %s port %d ssh2\n",
		time.Now().Format(time.Stamp), 1000+i, i, addr, 40000+i%20000)
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
}

func TestLogFailuresBan(t *testing.T) {
	w := newWorld(t)
	logPath := w.jailLog(t, 3)
	w.start(t)
	a := nspairtest.AttackerV4
	if got := w.send(t, a, 10); got != 10 {
		t.Fatalf("before failures %d of 10 arrived", got)
	}
	appendLines(t, logPath, failLine(a.String(), 1), failLine(a.String(), 2), failLine(a.String(), 3))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if e, ok := w.list(t)["192.0.2.2/32"]; ok {
			if e.Jail != "testjail" {
				t.Fatalf("banned under jail %q", e.Jail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ban 10s after 3 failures; daemon:\n%s", w.d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("banned by the jail: %d of 10 arrived", got)
	}
	out := w.mustCLI(t, "status", "testjail", "--json")
	var js control.JailStatus
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatal(err)
	}
	if js.TotalFailed != 3 || js.CurrentlyBanned != 1 || js.TotalBanned != 1 || len(js.Files) != 1 || js.Files[0] != logPath {
		t.Fatalf("status testjail: %+v", js)
	}
	// The ban is in the ban log in fail2ban's format.
	log, _ := os.ReadFile(w.banlog)
	if !strings.Contains(string(log), "fail2ban.actions [") || !strings.Contains(string(log), "NOTICE  [testjail] Ban 192.0.2.2") {
		t.Fatalf("ban log:\n%s", log)
	}
}

// TestKill9WithLogWriter: a writer appends failures (each address once,
// maxretry 2) while CLI bans are in flight and the daemon is killed. After
// the restart every acknowledged CLI ban is there and no address reached
// two failures: no line was counted twice.
func TestKill9WithLogWriter(t *testing.T) {
	w := newWorld(t)
	logPath := w.jailLog(t, 2)
	d := w.start(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written atomic.Int64
	wg.Add(1)
	go func() { // the log writer: one failure per /64, forever distinct
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			appendLines(t, logPath, failLine(fmt.Sprintf("2001:db8:f:%x::1", i), i))
			written.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	c := control.NewClient(w.socket)
	defer c.Close()
	var mu sync.Mutex
	var acked []string
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				got, err := c.Ban(ctx, []control.BanItem{{Addr: fmt.Sprintf("2001:db8:c%x:%x::1", g, i), Jail: "cli", For: "1h"}})
				cancel()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, got[0])
				mu.Unlock()
			}
		}()
	}
	time.Sleep(800 * time.Millisecond)
	d.kill()
	time.Sleep(200 * time.Millisecond)
	w.start(t)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // let the new daemon read to the end

	got := w.list(t)
	mu.Lock()
	defer mu.Unlock()
	for _, a := range acked {
		if _, ok := got[a]; !ok {
			t.Errorf("acknowledged CLI ban %s lost across kill -9", a)
		}
	}
	for addr, e := range got {
		if e.Jail == "testjail" {
			t.Errorf("%s banned by testjail: a failure line was counted twice across the restart", addr)
		}
	}
	out := w.mustCLI(t, "status", "testjail", "--json")
	var js control.JailStatus
	json.Unmarshal([]byte(out), &js)
	if int64(js.TotalFailed) > written.Load() {
		t.Errorf("restarted daemon counted %d failures of %d written in all", js.TotalFailed, written.Load())
	}
	t.Logf("%d CLI bans acknowledged, %d failure lines written, %d counted by the restarted daemon", len(acked), written.Load(), js.TotalFailed)
}

func TestCorruptDatabaseRecoversFromKernel(t *testing.T) {
	w := newWorld(t)
	d := w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--for", "1h", "--jail", "sshd")
	before := w.list(t)["192.0.2.2/32"]
	d.stop(t)
	db := filepath.Join(w.state, "xdpban.db")
	if err := os.WriteFile(db, []byte(strings.Repeat("\xde\xad", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	d = w.start(t)
	moved, _ := filepath.Glob(db + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("corrupt db not moved aside: %v", moved)
	}
	if !strings.Contains(d.out.String(), "ban database unreadable, moved aside") {
		t.Fatalf("no log line about the corrupt db:\n%s", d.out.String())
	}
	after, ok := w.list(t)["192.0.2.2/32"]
	if !ok || after.Jail != "sshd" || *after.Expires != *before.Expires {
		t.Fatalf("after recovery %+v (ok %v), before %+v", after, ok, before)
	}
	// Imported into the new db: it survives a detach (a reboot) too.
	w.mustCLI(t, "detach")
	<-d.done
	w.start(t)
	if _, ok := w.list(t)["192.0.2.2/32"]; !ok {
		t.Fatal("ban imported from the kernel was not stored in the new db")
	}
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("%d of 10 arrived", got)
	}
}

func TestReloadPicksUpJailChanges(t *testing.T) {
	w := newWorld(t)
	logPath := w.jailLog(t, 100)
	d := w.start(t)
	a := nspairtest.AttackerV4
	appendLines(t, logPath, failLine(a.String(), 1), failLine(a.String(), 2))
	time.Sleep(500 * time.Millisecond)
	if _, ok := w.list(t)["192.0.2.2/32"]; ok {
		t.Fatal("banned with maxretry 100")
	}
	// maxretry 3 now; SIGHUP reloads, the counted failures are kept.
	writeJailConfig(t, w, logPath, 3)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "reload logged", func() bool {
		return strings.Contains(d.out.String(), "configuration reloaded")
	})
	appendLines(t, logPath, failLine(a.String(), 3))
	waitFor(t, 5*time.Second, "ban after the third failure", func() bool {
		_, ok := w.list(t)["192.0.2.2/32"]
		return ok
	})
	// `xdpban reload JAIL` and errors.
	if code, out, errs := w.cli(t, "reload", "testjail"); code != 0 || !strings.Contains(out, "reloaded jail testjail") || errs != "" {
		t.Fatalf("reload testjail: %d %q %q", code, out, errs)
	}
	// A setting the daemon does not use is a warning on stderr, one line
	// each; the reload happened (exit 0) and the ban stays.
	os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(jailConfig(logPath, 3)+"bantme = 2h\nfoo = bar\n"), 0o644)
	code, out, errs := w.cli(t, "reload")
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	if code != 0 || strings.TrimSpace(out) != "reloaded" || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "xdpban: reload: warning: jail testjail: setting not used: ") || !strings.Contains(lines[0], "bantme") ||
		!strings.HasPrefix(lines[1], "xdpban: reload: warning: jail testjail: setting not used: ") || !strings.Contains(lines[1], "foo") {
		t.Fatalf("reload with unknown settings: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, ok := w.list(t)["192.0.2.2/32"]; !ok {
		t.Fatal("ban lost after a reload with warnings")
	}
	if code, _, errs := w.cli(t, "reload", "nosuch"); code != exitUsage || !strings.Contains(errs, `unknown jail "nosuch"`) {
		t.Fatalf("reload nosuch: %d %q", code, errs)
	}
	os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(strings.Replace(jailConfig(logPath, 3), "maxretry = 3", "maxretry = lots", 1)), 0o644)
	code, _, errs = w.cli(t, "reload")
	if code != exitUsage || !strings.Contains(errs, "maxretry") || !strings.Contains(errs, "the running one stays") {
		t.Fatalf("reload with a bad config: %d %q", code, errs)
	}
	// The daemon kept running with the old config and its bans.
	if _, ok := w.list(t)["192.0.2.2/32"]; !ok {
		t.Fatal("ban lost after a failed reload")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDryRunEnforcesNothing(t *testing.T) {
	w := newWorld(t)
	logPath := w.jailLog(t, 2)
	d := w.start(t, "--dry-run")
	a := nspairtest.AttackerV4
	appendLines(t, logPath, failLine(a.String(), 1), failLine(a.String(), 2))
	waitFor(t, 5*time.Second, "the would-ban log line", func() bool {
		return strings.Contains(d.out.String(), "dry run: would ban") && strings.Contains(d.out.String(), "addr=192.0.2.2")
	})
	if got := w.send(t, a, 10); got != 10 {
		t.Fatalf("dry run dropped: %d of 10 arrived", got)
	}
	if _, err := os.Stat(w.pin); !os.IsNotExist(err) {
		t.Fatalf("dry run pinned something at %s: %v", w.pin, err)
	}
	if code, _, errs := w.cli(t, "ban", "192.0.2.2"); code != exitFailure || !strings.Contains(errs, "dry-run") {
		t.Fatalf("ban on a dry-run daemon: %d %q", code, errs)
	}
}

func TestDetachOnExit(t *testing.T) {
	w := newWorld(t)
	d := w.start(t, "--detach-on-exit")
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String())
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("%d of 10 arrived", got)
	}
	d.stop(t)
	if _, err := os.Stat(w.pin); !os.IsNotExist(err) {
		t.Fatalf("pins left after --detach-on-exit: %v", err)
	}
	if got := w.send(t, a, 10); got != 10 {
		t.Fatalf("after detach on exit %d of 10 arrived", got)
	}
	// The ban is still stored: the next start enforces it again.
	w.start(t)
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("after restart %d of 10 arrived", got)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	w := newWorld(t)
	w.p.Host.Run(t, "ip", "link", "set", "lo", "up")
	writeTestConfig(t, w.config, "metrics_listen = 127.0.0.1:9798\n")
	w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--jail", "sshd")
	w.send(t, a, 7)
	body := scrapeMetrics(t, w)
	for _, want := range []string{
		`xdpban_bans_active{jail="sshd"} 1`,
		`xdpban_bans_total{jail="sshd"} 1`,
		`xdpban_dropped_packets_total{backend="xdp"} 7`,
		`xdpban_ban_latency_seconds_count 1`,
		`xdpban_backend_up 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

func TestDefaultRouteInterfaces(t *testing.T) {
	w := newWorld(t)
	w.p.Host.Run(t, "ip", "route", "add", "default", "via", nspairtest.AttackerV4.String(), "dev", w.p.HostIf)
	var got []string
	err := w.p.Host.Do(func() error {
		var err error
		got, err = defaultRouteInterfaces()
		return err
	})
	if err != nil || len(got) != 1 || got[0] != w.p.HostIf {
		t.Fatalf("defaultRouteInterfaces = %v, %v; want [%s]", got, err, w.p.HostIf)
	}
	// The attacker namespace has no default route: a clear error.
	err = w.p.Attacker.Do(func() error {
		_, err := defaultRouteInterfaces()
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "--iface") {
		t.Fatalf("no default route: %v", err)
	}
}

// cliIn runs xdpban as a process inside the host namespace: direct mode
// may adopt an iptables chain, which must never be the root namespace's.
func (w *world) cliIn(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + w.p.Host.Path(), "--", os.Args[0]}, append(w.paths(), args...)...)...)
	cmd.Env = append(os.Environ(), "XDPBAN_TEST_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestNoDaemonNoPins(t *testing.T) {
	w := newWorld(t)
	code, out := w.cliIn(t, "list")
	if code != exitFailure || !strings.Contains(out, "no daemon answers on") || !strings.Contains(out, "xdpban run") {
		t.Fatalf("list without daemon or pins: exit %d, %q", code, out)
	}
	code, out = w.cliIn(t, "detach")
	if code != exitOK || !strings.Contains(out, "nothing attached") {
		t.Fatalf("detach with nothing attached: exit %d, %q", code, out)
	}
	code, out = w.cliIn(t, "reload")
	if code != exitFailure || !strings.Contains(out, "no daemon answers") {
		t.Fatalf("reload without daemon: exit %d, %q", code, out)
	}
}

// TestIPTablesBackend: the same CLI over the netfilter fallback, through
// the daemon and, with the daemon stopped, on the chain and sets directly.
func TestIPTablesBackend(t *testing.T) {
	w := newWorld(t)
	d := w.start(t, "--backend", "iptables")
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--jail", "sshd")
	if got := w.send(t, a, 20); got != 0 {
		t.Fatalf("iptables ban: %d of 20 arrived", got)
	}
	out := w.mustCLI(t, "status", "--json")
	var st control.Status
	json.Unmarshal([]byte(out), &st)
	if st.Backend != "iptables" || st.Bans != 1 {
		t.Fatalf("status %+v", st)
	}
	d.stop(t)
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("daemon stopped: %d of 10 arrived", got)
	}
	code, out := w.cliIn(t, "list", "--json")
	if code != 0 || !strings.Contains(out, `"addr": "192.0.2.2/32"`) || !strings.Contains(out, `"jail": "sshd"`) {
		t.Fatalf("direct list on iptables: %d %s", code, out)
	}
	if code, out := w.cliIn(t, "unban", a.String()); code != 0 {
		t.Fatalf("direct unban on iptables: %d %s", code, out)
	}
	if got := w.send(t, a, 10); got != 10 {
		t.Fatalf("after direct unban %d of 10 arrived", got)
	}
	if code, out := w.cliIn(t, "ban", "198.51.100.7"); code != 0 {
		t.Fatalf("direct ban on iptables: %d %s", code, out)
	}
	code, out = w.cliIn(t, "detach")
	if code != 0 || !strings.Contains(out, "removed the iptables chain") {
		t.Fatalf("direct detach on iptables: %d %s", code, out)
	}
	if rules := w.p.Host.Run(t, "iptables", "-S"); strings.Contains(rules, "xdpban") {
		t.Fatalf("rules left after detach:\n%s", rules)
	}
	// The next daemon restores the stored ban (the direct ban), not the
	// one lifted directly.
	w.start(t, "--backend", "iptables")
	l := w.list(t)
	if _, ok := l["198.51.100.7/32"]; !ok || len(l) != 1 {
		t.Fatalf("after restart: %v", l)
	}
}

// TestNFTablesBackend is TestIPTablesBackend on nftables: the daemon
// enforces there, the table keeps enforcing while it is down, the CLI
// works on the table directly, and detach deletes it.
func TestNFTablesBackend(t *testing.T) {
	w := newWorld(t)
	d := w.start(t, "--backend", "nftables")
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--jail", "sshd")
	if got := w.send(t, a, 20); got != 0 {
		t.Fatalf("nftables ban: %d of 20 arrived", got)
	}
	out := w.mustCLI(t, "status", "--json")
	var st control.Status
	json.Unmarshal([]byte(out), &st)
	if st.Backend != "nftables" || st.Bans != 1 {
		t.Fatalf("status %+v", st)
	}
	d.stop(t)
	if got := w.send(t, a, 10); got != 0 {
		t.Fatalf("daemon stopped: %d of 10 arrived", got)
	}
	code, out := w.cliIn(t, "list", "--json")
	if code != 0 || !strings.Contains(out, `"addr": "192.0.2.2/32"`) || !strings.Contains(out, `"jail": "sshd"`) || !strings.Contains(out, `"packets": 30`) {
		t.Fatalf("direct list on nftables: %d %s", code, out)
	}
	if code, out := w.cliIn(t, "unban", a.String()); code != 0 {
		t.Fatalf("direct unban on nftables: %d %s", code, out)
	}
	if got := w.send(t, a, 10); got != 10 {
		t.Fatalf("after direct unban %d of 10 arrived", got)
	}
	if code, out := w.cliIn(t, "ban", "198.51.100.7"); code != 0 {
		t.Fatalf("direct ban on nftables: %d %s", code, out)
	}
	code, out = w.cliIn(t, "detach")
	if code != 0 || !strings.Contains(out, "removed the nftables table") {
		t.Fatalf("direct detach on nftables: %d %s", code, out)
	}
	if tables := w.p.Host.Run(t, "nft", "list", "tables"); strings.Contains(tables, "xdpban") {
		t.Fatalf("table left after detach:\n%s", tables)
	}
	w.start(t, "--backend", "nftables")
	l := w.list(t)
	if _, ok := l["198.51.100.7/32"]; !ok || len(l) != 1 {
		t.Fatalf("after restart: %v", l)
	}
}

// TestBanTimeIncrementAcrossRestart: the second ban of an address lasts
// twice the first (bantime.increment), from the history in the store,
// which survives a restart.
func TestBanTimeIncrementAcrossRestart(t *testing.T) {
	w := newWorld(t)
	logPath := filepath.Join(t.TempDir(), "auth.log")
	appendLines(t, logPath, "startup\n")
	conf := jailConfig(logPath, 2) + "bantime.increment = true\n"
	os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(conf), 0o644)
	w.start(t)
	a := nspairtest.AttackerV4.String()
	left := func() time.Duration {
		var e control.Entry
		waitFor(t, 5*time.Second, "the jail's ban", func() bool {
			var ok bool
			e, ok = w.list(t)["192.0.2.2/32"]
			return ok
		})
		exp, _ := time.Parse(time.RFC3339, *e.Expires)
		return time.Until(exp)
	}
	appendLines(t, logPath, failLine(a, 1), failLine(a, 2))
	if l := left(); l < 58*time.Minute || l > time.Hour {
		t.Fatalf("first ban: %v left, want about 1h", l)
	}
	w.mustCLI(t, "unban", a)
	w.d.stop(t)
	w.start(t)
	appendLines(t, logPath, failLine(a, 3), failLine(a, 4))
	if l := left(); l < 118*time.Minute || l > 2*time.Hour {
		t.Fatalf("second ban: %v left, want about 2h (bantime doubled from the stored history)", l)
	}
}
