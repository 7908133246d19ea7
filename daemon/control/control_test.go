package control

import (
	"bytes"
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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// memHandler is an in-memory daemon: enough to check what crosses the
// socket, not the daemon's own logic (tested in daemon).
type memHandler struct {
	mu       sync.Mutex
	bans     map[netip.Prefix]bans.Ban
	statuses int
	// warns is what Reload returns, per jail asked ("" for all).
	warns map[string][]string
	// entered, when set, is sent to as a Ban starts, which then waits for
	// release to close: a request held in progress.
	entered chan struct{}
	release chan struct{}
}

func (h *memHandler) Ban(_ context.Context, items []BanItem) ([]bans.Ban, error) {
	if h.entered != nil {
		h.entered <- struct{}{}
		<-h.release
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []bans.Ban
	for _, it := range items {
		p, err := bans.Widen{}.Parse(it.Addr)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		b := bans.Ban{Prefix: p, Jail: it.Jail}
		h.bans[p] = b
		out = append(out, b)
	}
	return out, nil
}

func (h *memHandler) Unban(_ context.Context, req UnbanRequest) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.All {
		n := len(h.bans)
		clear(h.bans)
		return n, nil
	}
	n := 0
	for _, a := range req.Addrs {
		p, err := bans.Widen{}.Parse(a)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		if _, ok := h.bans[p]; ok {
			delete(h.bans, p)
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: %w", strings.Join(req.Addrs, ", "), bans.ErrNotBanned)
	}
	return n, nil
}

func (h *memHandler) List(context.Context) ([]bans.Ban, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []bans.Ban
	for _, b := range h.bans {
		out = append(out, b)
	}
	return out, nil
}

func (h *memHandler) Status(context.Context) (Status, error) {
	h.mu.Lock()
	h.statuses++
	h.mu.Unlock()
	return Status{Status: bans.Status{Backend: "mem"}, Mode: "daemon", Bans: len(h.bans)}, nil
}

func (h *memHandler) JailStatus(_ context.Context, jail string) (JailStatus, error) {
	if jail != "sshd" {
		return JailStatus{}, fmt.Errorf("%w %q: see 'xdpban status' for the jails", ErrUnknownJail, jail)
	}
	return JailStatus{Name: jail, TotalFailed: 3}, nil
}

func (h *memHandler) Reload(_ context.Context, jail string) ([]string, error) {
	if jail == "nope" {
		return nil, fmt.Errorf("%w %q: not an enabled jail", ErrUnknownJail, jail)
	}
	return h.warns[jail], nil
}
func (h *memHandler) Detach(context.Context) error { return nil }

// TestReloadWarnings: a reload's warnings reach the client in order, the
// key is there (an empty list, never null) when there are none, and a
// failed reload is an error, not warnings.
func TestReloadWarnings(t *testing.T) {
	path, h, _ := serve(t)
	h.warns = map[string][]string{"sshd": {"jail sshd: setting not used: jail.local:3: bantime.rndtime: fail2ban-only", "second"}}
	c := NewClient(path)
	defer c.Close()
	ctx := context.Background()
	got, err := c.Reload(ctx, "sshd")
	if err != nil || strings.Join(got, "|") != strings.Join(h.warns["sshd"], "|") {
		t.Fatalf("Reload(sshd) = %q, %v; want %q", got, err, h.warns["sshd"])
	}
	if got, err := c.Reload(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("Reload() = %q, %v; want no warnings", got, err)
	}
	if _, err := c.Reload(ctx, "nope"); !errors.Is(err, ErrUnknownJail) {
		t.Fatalf("Reload(nope) = %v, want ErrUnknownJail", err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := hc.Post("http://xdpban/v1/reload", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(raw)) != `{"warnings":[]}` {
		t.Fatalf("reload without warnings: %d %s, want 200 {\"warnings\":[]}", resp.StatusCode, raw)
	}
}

func serve(t *testing.T) (string, *memHandler, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "xdpban.sock")
	h := &memHandler{bans: map[netip.Prefix]bans.Ban{}}
	s, err := Listen(path, h, slog.New(slog.NewTextHandler(io.Discard, nil)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return path, h, s
}

func TestRoundTrip(t *testing.T) {
	path, h, _ := serve(t)
	c := NewClient(path)
	defer c.Close()
	ctx := context.Background()
	got, err := c.Ban(ctx, []BanItem{{Addr: "192.0.2.7", Jail: "manual", For: "1h"}, {Addr: "2001:db8::7", Jail: "manual"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "192.0.2.7/32 2001:db8::/64" {
		t.Fatalf("banned %v", got)
	}
	if len(h.bans) != 2 {
		t.Fatalf("handler holds %d bans", len(h.bans))
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if _, err := c.Ban(ctx, []BanItem{{Addr: "300.1.2.3"}}); !errors.Is(err, ErrBadRequest) || !strings.HasPrefix(err.Error(), `invalid address "300.1.2.3"`) {
		t.Fatalf("bad address: err = %v", err)
	}
	if _, err := c.Unban(ctx, UnbanRequest{Addrs: []string{"203.0.113.9"}}); !errors.Is(err, bans.ErrNotBanned) {
		t.Fatalf("unban of unbanned: %v", err)
	}
	if n, err := c.Unban(ctx, UnbanRequest{All: true}); err != nil || n != 2 {
		t.Fatalf("unban all = %d, %v", n, err)
	}
	if _, err := c.JailStatus(ctx, "nope"); !errors.Is(err, ErrUnknownJail) {
		t.Fatalf("unknown jail: %v", err)
	}
	if js, err := c.JailStatus(ctx, "sshd"); err != nil || js.TotalFailed != 3 {
		t.Fatalf("JailStatus = %+v, %v", js, err)
	}
}

func TestSocketModes(t *testing.T) {
	path, _, _ := serve(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	di, _ := os.Stat(filepath.Dir(path))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v, want 0700", di.Mode().Perm())
	}
}

func TestNoDaemon(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if err := c.Ping(context.Background()); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("Ping without daemon = %v, want ErrNoDaemon", err)
	}
}

func TestStaleSocketReplacedLiveOneRefused(t *testing.T) {
	path, _, _ := serve(t)
	if _, err := Listen(path, &memHandler{}, nil, Limits{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live socket = %v, want ErrInUse", err)
	}
	// A socket file nobody listens on (a daemon killed with -9).
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s, err := Listen(stale, &memHandler{bans: map[netip.Prefix]bans.Ban{}}, nil, Limits{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	go s.Serve()
	defer s.Shutdown(context.Background())
	if err := NewClient(stale).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSocketPathNamingAFileIsLeftAlone(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "jail.local"), dir} {
		if path != dir {
			if err := os.WriteFile(path, []byte("[sshd]\nenabled = true\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Listen(path, &memHandler{}, nil, Limits{})
		if !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Listen on %s: %v, want ErrBadPath naming it", path, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s was removed: %v", path, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "jail.local")); string(b) != "[sshd]\nenabled = true\n" {
		t.Fatalf("file content changed: %q", b)
	}
}

// raw sends a hand-made HTTP request and returns status and body.
func raw(t *testing.T, path, method, url string, body io.Reader) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	req, _ := http.NewRequest(method, "http://x"+url, body)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadInputRefusedDaemonKeepsServing(t *testing.T) {
	path, h, _ := serve(t)
	big := `{"bans":[` + strings.Repeat(`{"addr":"192.0.2.1","jail":"j","for":"1h"},`, MaxBody/40) + `{"addr":"192.0.2.1"}]}`
	cases := []struct {
		name, method, url, body string
		code                    int
		want                    string
	}{
		{"malformed", "POST", "/v1/ban", `{"bans":[{"addr":`, 400, "malformed JSON"},
		{"not json", "POST", "/v1/ban", "ban 192.0.2.1", 400, "malformed JSON"},
		{"unknown field", "POST", "/v1/ban", `{"bans":[{"adr":"192.0.2.1"}]}`, 400, "unknown field"},
		{"trailing", "POST", "/v1/ban", `{"bans":[{"addr":"192.0.2.1"}]} {}`, 400, "trailing data"},
		{"empty", "POST", "/v1/ban", `{"bans":[]}`, 400, "no bans"},
		{"bad addr", "POST", "/v1/ban", `{"bans":[{"addr":"10.0.0.0/33"}]}`, 400, `invalid CIDR \"10.0.0.0/33\"`},
		{"too big", "POST", "/v1/ban", big, 413, "over 1048576 bytes"},
		{"unknown command", "POST", "/v1/format-disk", `{}`, 404, "unknown command"},
		{"wrong method", "GET", "/v1/ban", "", 404, "unknown command"},
		{"nothing to unban", "POST", "/v1/unban", `{}`, 400, "nothing to unban"},
	}
	for _, c := range cases {
		code, body := raw(t, path, c.method, c.url, strings.NewReader(c.body))
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d containing %q", c.name, code, body, c.code, c.want)
		}
	}
	if len(h.bans) != 0 {
		t.Fatalf("bad requests banned something: %v", h.bans)
	}
	if _, err := NewClient(path).Ban(context.Background(), []BanItem{{Addr: "192.0.2.9", Jail: "j"}}); err != nil {
		t.Fatalf("daemon stopped serving after bad input: %v", err)
	}
}

// TestHelperPeer is the non-root client of TestNonRootPeerRefused; it
// only runs in the child process.
func TestHelperPeer(t *testing.T) {
	path := os.Getenv("XDPBAN_CONTROL_HELPER_SOCKET")
	if path == "" {
		t.Skip("helper process only")
	}
	_, err := NewClient(path).Ban(context.Background(), []BanItem{{Addr: "192.0.2.66", Jail: "j"}})
	fmt.Printf("uid=%d err=%v forbidden=%v\n", os.Getuid(), err, errors.Is(err, ErrForbidden))
}

func TestNonRootPeerRefused(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to run a client as another uid, and CI is root")
		}
		t.Skip("needs root to run a client as another uid")
	}
	path, h, _ := serve(t)
	// Open the socket up so only SO_PEERCRED stands in the way.
	os.Chmod(filepath.Dir(path), 0o777)
	os.Chmod(path, 0o777)
	dir, err := os.MkdirTemp("", "xdpban-control-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	// The test binary's own directory is private to root: copy it where
	// nobody can execute it.
	bin := filepath.Join(dir, "control.test")
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(filepath.Dir(path)), filepath.Dir(filepath.Dir(filepath.Dir(path)))} {
		os.Chmod(p, 0o755) // t.TempDir's parents, so nobody can reach the socket
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperPeer$", "-test.v")
	cmd.Env = append(os.Environ(), "XDPBAN_CONTROL_HELPER_SOCKET="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); cmd.Process.Kill() }()
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "uid=65534") || !strings.Contains(out.String(), "forbidden=true") {
		t.Fatalf("non-root peer was not refused:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "uid 65534 may not control xdpban") {
		t.Fatalf("refusal does not say why:\n%s", out.String())
	}
	if len(h.bans) != 0 {
		t.Fatalf("non-root peer banned %v", h.bans)
	}
}

// Ping (every CLI command's first request) does not ask for the status,
// which walks the kernel maps; against a daemon without /v1/ping it
// falls back to the status.
func TestPingSkipsStatus(t *testing.T) {
	path, h, _ := serve(t)
	c := NewClient(path)
	defer c.Close()
	for range 3 {
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if h.statuses != 0 {
		t.Fatalf("3 pings asked the handler for its status %d times", h.statuses)
	}

	old := filepath.Join(t.TempDir(), "old.sock")
	ln, err := net.Listen("unix", old)
	if err != nil {
		t.Fatal(err)
	}
	var statusAsked bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" {
			statusAsked = true
			io.WriteString(w, `{"backend":"xdp","mode":"daemon"}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"unknown command","kind":"bad_request"}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	oc := NewClient(old)
	defer oc.Close()
	if err := oc.Ping(context.Background()); err != nil || !statusAsked {
		t.Fatalf("ping of a daemon without /v1/ping = %v (status asked: %v)", err, statusAsked)
	}
}
