package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/internal/bans"
)

// TestHelperHolder is the connection holder of TestHeldConnectionsLeave
// the CLI an answer: it opens XDPBAN_CONTROL_HOLD connections to the
// socket, sends nothing, reports how many it holds and keeps them until
// its stdin closes. A separate process, so the daemon's file descriptor
// limit is not shared with the holder's.
func TestHelperHolder(t *testing.T) {
	path := os.Getenv("XDPBAN_CONTROL_HOLD_SOCKET")
	if path == "" {
		t.Skip("helper process only")
	}
	n, _ := strconv.Atoi(os.Getenv("XDPBAN_CONTROL_HOLD"))
	var held []net.Conn
	failed := 0
	for range n {
		c, err := net.DialTimeout("unix", path, 2*time.Second)
		if err != nil {
			failed++
			continue
		}
		held = append(held, c)
	}
	fmt.Printf("held=%d failed=%d\n", len(held), failed)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range held {
		c.Close()
	}
}

// helper starts this test binary running the helper test run with env
// and returns once it printed a line starting with ready (returned);
// it is stopped (stdin closed) when the test ends.
func helper(t *testing.T, run, ready string, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), ready) {
				line <- sc.Text()
				break
			}
		}
		io.Copy(io.Discard, stdout)
		close(line)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatalf("%s exited before it was ready", run)
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready in 60 s", run)
	}
	return ""
}

// TestHelperServer is the daemon of TestHeldConnectionsLeaveTheCLIAnAnswer:
// it serves a memHandler on XDPBAN_CONTROL_SERVE_SOCKET with at most 256
// open files (a daemon has a file limit too; what held connections take
// from it is what the CLI is left) until its stdin closes.
func TestHelperServer(t *testing.T) {
	path := os.Getenv("XDPBAN_CONTROL_SERVE_SOCKET")
	if path == "" {
		t.Skip("helper process only")
	}
	lim := syscall.Rlimit{Cur: 256, Max: 256}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(path, &memHandler{bans: map[netip.Prefix]bans.Ban{}}, slog.New(slog.NewTextHandler(io.Discard, nil)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	fmt.Println("serving")
	io.Copy(io.Discard, os.Stdin)
	s.Shutdown(context.Background())
}

// TestHelperCLI is the CLI of TestHeldConnectionsLeaveTheCLIAnAnswer,
// a process of its own as the real one is: it pings, asks the status and
// prints the outcome.
func TestHelperCLI(t *testing.T) {
	path := os.Getenv("XDPBAN_CONTROL_CLI_SOCKET")
	if path == "" {
		t.Skip("helper process only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(path)
	defer c.Close()
	start := time.Now()
	err := c.Ping(ctx)
	if err == nil {
		_, err = c.Status(ctx)
	}
	fmt.Printf("cli took=%v\n", time.Since(start).Round(time.Millisecond))
	fmt.Printf("cli err=%v\n", err)
}

func cli(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCLI$")
	cmd.Env = append(os.Environ(), "XDPBAN_CONTROL_CLI_SOCKET="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cli process: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "cli took=") {
			t.Logf("the CLI's ping and status %s", strings.TrimPrefix(l, "cli "))
		}
		if strings.HasPrefix(l, "cli err=") {
			return strings.TrimPrefix(l, "cli err=")
		}
	}
	t.Fatalf("cli process said nothing:\n%s", out)
	return ""
}

// TestHeldConnectionsLeaveTheCLIAnAnswer: more idle connections than
// the daemon has file descriptors for (22,000 did it on a real host) must
// not lock the CLI out.
func TestHeldConnectionsLeaveTheCLIAnAnswer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xdpban.sock")
	helper(t, "TestHelperServer", "serving", "XDPBAN_CONTROL_SERVE_SOCKET="+path)
	got := helper(t, "TestHelperHolder", "held=", "XDPBAN_CONTROL_HOLD_SOCKET="+path, "XDPBAN_CONTROL_HOLD=600")
	if err := cli(t, path); err != "<nil>" {
		t.Fatalf("with 600 idle connections held (%s), the CLI got: %s", got, err)
	}
}

func serveLimits(t *testing.T, h Handler, lim Limits) (string, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xdpban.sock")
	s, err := Listen(path, h, slog.New(slog.NewTextHandler(io.Discard, nil)), lim)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return path, s
}

// closedByServer waits (at most 10 s, far past any timeout under test)
// for the daemon to close c, reading and discarding what it sends.
func closedByServer(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return nil // EOF
	}
	return err
}

func dialN(t *testing.T, path string, n int) []net.Conn {
	t.Helper()
	cs := make([]net.Conn, n)
	for i := range cs {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	return cs
}

// Past MaxConns a new connection closes the longest-idle one: 40 silent
// connections against a limit of 8 leave the CLI its answer, the oldest
// are the ones closed, and the daemon never holds more than the limit.
func TestConnLimitClosesLongestIdle(t *testing.T) {
	h := &memHandler{bans: map[netip.Prefix]bans.Ban{}}
	path, s := serveLimits(t, h, Limits{MaxConns: 8})
	held := dialN(t, path, 40)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(path)
	defer c.Close()
	if _, err := c.Ban(ctx, []BanItem{{Addr: "192.0.2.40", Jail: "j"}}); err != nil {
		t.Fatalf("ban with 40 idle connections held against a limit of 8: %v", err)
	}
	st := s.ConnStats()
	if st.Open > 8 || st.Evicted < 40+1-8 || st.Busy != 0 || st.Refused != 0 {
		t.Fatalf("conn stats %+v, want at most 8 open and at least %d evicted", st, 40+1-8)
	}
	checkCollector(t, s, st)
	for i, hc := range held[:40+1-8] {
		if err := closedByServer(hc); err != nil {
			t.Fatalf("held connection %d (of the oldest) not closed: %v", i, err)
		}
	}
	// The newest held ones are still served.
	last := held[len(held)-1]
	if _, err := io.WriteString(last, "GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	last.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(last), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("newest held connection: %v, %v; want 200", resp, err)
	}
}

// Silent, kept-alive and slowly-writing connections are closed by the
// daemon after their timeout.
func TestIdleAndSlowConnectionsTimeOut(t *testing.T) {
	path, s := serveLimits(t, &memHandler{bans: map[netip.Prefix]bans.Ban{}},
		Limits{ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	cs := dialN(t, path, 3)
	silent, kept, slow := cs[0], cs[1], cs[2]

	io.WriteString(kept, "GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
	kept.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(kept)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ping: %v, %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		io.WriteString(slow, "GET /v1/ping HTTP/1.1\r\n")
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := io.WriteString(slow, "X"); err != nil {
				return // closed by the daemon
			}
		}
	}()
	for name, c := range map[string]net.Conn{"silent": silent, "kept-alive": kept, "slow header": slow} {
		if err := closedByServer(c); err != nil {
			t.Errorf("%s connection not closed by the daemon: %v", name, err)
		}
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("kept-alive connection still open")
	}
	for deadline := time.Now().Add(10 * time.Second); s.ConnStats().Open != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("daemon still counts %d open connections after closing them all", s.ConnStats().Open)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With every connection in a request, a new one is answered busy, not
// left waiting, and the requests in progress are not cut: their clients
// could not tell whether they took effect.
func TestConnLimitBusyNeverCutsRequests(t *testing.T) {
	h := &memHandler{bans: map[netip.Prefix]bans.Ban{}, entered: make(chan struct{}), release: make(chan struct{})}
	path, s := serveLimits(t, h, Limits{MaxConns: 2})
	errc := make(chan error, 2)
	for i := range 2 {
		go func() {
			c := NewClient(path)
			defer c.Close()
			_, err := c.Ban(context.Background(), []BanItem{{Addr: fmt.Sprintf("192.0.2.%d", i+1), Jail: "j"}})
			errc <- err
		}()
	}
	<-h.entered
	<-h.entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(path)
	defer c.Close()
	err := c.Ping(ctx)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "control socket busy (all 2 connections are in requests): retry") {
		t.Fatalf("ping with both connections in requests: %v, want ErrBusy saying why", err)
	}
	close(h.release)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("a ban in progress was cut: %v", err)
		}
	}
	if len(h.bans) != 2 {
		t.Fatalf("%d bans, want 2", len(h.bans))
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping once the requests are done: %v", err)
	}
	if st := s.ConnStats(); st.Busy != 1 || st.Refused != 0 {
		t.Fatalf("conn stats %+v, want one busy answer", st)
	}
}

// A watch stream outlives the request timeouts (a write timeout would
// end it), and yields its connection to a new one at the limit.
func TestWatchStreamOutlivesReadTimeoutYieldsAtLimit(t *testing.T) {
	h := &dropHandler{memHandler: memHandler{bans: map[netip.Prefix]bans.Ban{}}, hub: drops.NewHub()}
	path, s := serveLimits(t, h, Limits{MaxConns: 1, ReadTimeout: 50 * time.Millisecond, ReadHeaderTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wc := NewClient(path)
	defer wc.Close()
	got := make(chan drops.Event, 1)
	done := make(chan error, 1)
	go func() {
		done <- wc.WatchDrops(ctx, "", func(ev drops.Event) error { got <- ev; return nil })
	}()
	for h.hub.Subscribers() == 0 {
		if ctx.Err() != nil {
			t.Fatal("watch never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(10 * 50 * time.Millisecond) // ten read timeouts
	ev := drops.Event{Src: netip.MustParseAddr("192.0.2.5"), Iface: "veth0"}
	h.hub.Publish(ev)
	select {
	case e := <-got:
		if e.Src != ev.Src {
			t.Fatalf("streamed %+v", e)
		}
	case err := <-done:
		t.Fatalf("the watch stream ended after the read timeout: %v", err)
	case <-ctx.Done():
		t.Fatal("no event through the watch stream")
	}
	c := NewClient(path)
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping with a watch stream holding the only connection: %v", err)
	}
	select {
	case err := <-done: // the stream's connection was closed for the ping
		if err == nil || !strings.Contains(err.Error(), "the daemon closed it") || !strings.Contains(err.Error(), "run watch again") {
			t.Fatalf("the evicted stream ended with %v, want it to say the daemon closed it", err)
		}
	case <-ctx.Done():
		t.Fatal("the watch stream kept its connection")
	}
	if st := s.ConnStats(); st.Evicted != 1 || st.Busy != 0 {
		t.Fatalf("conn stats %+v, want the stream evicted", st)
	}
}

// checkCollector: the metrics say what ConnStats says, and pass promlint.
func checkCollector(t *testing.T, s *Server, st ConnStats) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			if m.GetCounter() != nil {
				got[name] = m.GetCounter().GetValue()
			} else {
				got[name] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"xdpban_control_connections":                       float64(st.Open),
		"xdpban_control_connections_limited_total/evicted": float64(st.Evicted),
		"xdpban_control_connections_limited_total/busy":    float64(st.Busy),
		"xdpban_control_connections_limited_total/refused": float64(st.Refused),
	}
	// Open may have moved since st was taken; the counters only grow
	// with new connections, and there are none.
	delete(got, "xdpban_control_connections")
	delete(want, "xdpban_control_connections")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
