package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
)

// ErrInUse: another daemon answers on the socket.
var ErrInUse = errors.New("control socket in use by a running daemon")

// ErrBadPath: the socket path names something else.
var ErrBadPath = errors.New("not a socket")

// Server serves a Handler on a unix socket.
type Server struct {
	h    Handler
	log  *slog.Logger
	ln   net.Listener
	path string
	srv  *http.Server
	t    *tracker
	// allow decides which peer uids may talk to the daemon: root and the
	// daemon's own uid.
	allow func(uid uint32) bool
}

type ctxKey struct{}

type peer struct {
	uid, pid int
	err      error
}

// Listen creates the socket (its directory 0700 when created here, the
// socket 0600) and returns a server ready to Serve, its connections
// bounded by lim. A stale socket file left by a killed daemon is
// replaced; a live one is ErrInUse.
func Listen(path string, h Handler, log *slog.Logger, lim Limits) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control socket directory %s: %w", dir, err)
		}
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != os.ModeSocket {
			// Never delete what is not ours: a mistyped --socket
			// could name a configuration file.
			return nil, fmt.Errorf("control socket %s: %w: the path exists and is not a socket: choose another --socket (or socket = in [xdpban])", path, ErrBadPath)
		}
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: %w: stop it first or use another --socket", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	}
	// The socket is created with the umask's mode: tighten the umask for
	// the bind so there is no window where it is group/world connectable.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod control socket %s: %w", path, err)
	}
	self := uint32(os.Getuid())
	lim = lim.withDefaults()
	t := newTracker(lim.MaxConns, log)
	s := &Server{
		h: h, log: log, ln: limitListener{ln, t}, path: path, t: t,
		allow: func(uid uint32) bool { return uid == 0 || uid == self },
	}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ConnState:         t.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return withConn(context.WithValue(ctx, ctxKey{}, peerOf(c)), t.conn(c))
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// ConnStats reports the socket's open connections and those closed or
// turned away to stay within Limits.MaxConns.
func (s *Server) ConnStats() ConnStats { return s.t.snapshot() }

// Path is the socket path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	return nil
}

// Shutdown stops accepting, waits for requests in flight (bounded by
// ctx) and removes the socket file.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.ln.Close() // not yet served: Shutdown does not know it
	os.Remove(s.path)
	return err
}

func peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{err: errors.New("not a unix connection")}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{err: err}
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{err: err}
	}
	if cerr != nil {
		return peer{err: cerr}
	}
	return peer{uid: int(cred.Uid), pid: int(cred.Pid)}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ban", s.ban)
	mux.HandleFunc("POST /v1/import", s.importBans)
	mux.HandleFunc("POST /v1/unban", s.unban)
	mux.HandleFunc("GET /v1/list", s.list)
	mux.HandleFunc("GET /v1/status", s.status)
	// Every CLI command pings first; status walks the kernel maps, which
	// takes most of a second at a million bans.
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, struct{}{}) })
	mux.HandleFunc("GET /v1/status/{jail}", s.jailStatus)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.HandleFunc("POST /v1/detach", s.detach)
	mux.HandleFunc("GET /v1/drops", s.drops) // drops.go: `xdpban watch`
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Errorf("%w: unknown command %s %s: see 'xdpban help'", ErrBadRequest, r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(ctxKey{}).(peer)
		if p.err != nil || !s.allow(uint32(p.uid)) {
			s.log.Warn("control socket: peer refused", "uid", p.uid, "pid", p.pid, "err", p.err)
			writeErr(w, http.StatusForbidden, fmt.Errorf("%w: uid %d may not control xdpban: run as root", ErrForbidden, p.uid))
			return
		}
		if isBusy(r) {
			w.Header().Set("Connection", "close")
			writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("%w (all %d connections are in requests): retry shortly, or raise socket_max_connections in [xdpban]", ErrBusy, s.t.max))
			return
		}
		limit := int64(MaxBody)
		if r.URL.Path == "/v1/import" {
			limit = ImportMaxBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		mux.ServeHTTP(w, r)
	})
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors, so a typo in a hand-written request is not silently ignored.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: request body over %d bytes: send fewer bans per request", ErrBadRequest, MaxBody))
			return false
		}
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%w: malformed JSON request: %v", ErrBadRequest, err))
		return false
	}
	if dec.More() {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%w: malformed JSON request: trailing data after the object", ErrBadRequest))
		return false
	}
	return true
}

func (s *Server) ban(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Bans) == 0 {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%w: no bans in request", ErrBadRequest))
		return
	}
	if req.Check {
		resp := BanResponse{Banned: []string{}}
		if ch, ok := s.h.(Checker); ok {
			n, err := ch.CheckBan(r.Context(), req.Bans, req.Pending)
			if err != nil {
				s.fail(w, "ban", err)
				return
			}
			resp.New = n
		}
		writeJSON(w, resp)
		return
	}
	bs, err := s.h.Ban(r.Context(), req.Bans)
	if err != nil {
		s.fail(w, "ban", err)
		return
	}
	resp := BanResponse{Banned: make([]string, len(bs))}
	for i, b := range bs {
		resp.Banned[i] = b.Prefix.String()
	}
	writeJSON(w, resp)
}

func (s *Server) importBans(w http.ResponseWriter, r *http.Request) {
	im, ok := s.h.(Importer)
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Errorf("%w: this daemon takes no imports: send the bans with POST /v1/ban", ErrBadRequest))
		return
	}
	q := r.URL.Query()
	req := ImportRequest{Jail: q.Get("jail"), For: q.Get("for"), Force: q.Get("force") == "1", Size: max(r.ContentLength, 0)}
	resp, err := im.Import(r.Context(), req, r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: import over %d bytes: split the file", ErrBadRequest, ImportMaxBody))
			return
		}
		s.fail(w, "import", err)
		return
	}
	writeJSON(w, resp)
}

func (s *Server) unban(w http.ResponseWriter, r *http.Request) {
	var req UnbanRequest
	if !decode(w, r, &req) {
		return
	}
	if !req.All && len(req.Addrs) == 0 {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%w: nothing to unban: name addresses or set all", ErrBadRequest))
		return
	}
	n, err := s.h.Unban(r.Context(), req)
	if err != nil {
		s.fail(w, "unban", err)
		return
	}
	writeJSON(w, UnbanResponse{Removed: n})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	bs, err := s.h.List(r.Context())
	if err != nil {
		s.fail(w, "list", err)
		return
	}
	out := make([]Entry, len(bs))
	for i, b := range bs {
		out[i] = EntryOf(b)
	}
	writeJSON(w, out)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.h.Status(r.Context())
	if err != nil {
		s.fail(w, "status", err)
		return
	}
	writeJSON(w, st)
}

func (s *Server) jailStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.h.JailStatus(r.Context(), r.PathValue("jail"))
	if err != nil {
		s.fail(w, "status", err)
		return
	}
	writeJSON(w, st)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	var req ReloadRequest
	if !decode(w, r, &req) {
		return
	}
	warns, err := s.h.Reload(r.Context(), req.Jail)
	if err != nil {
		s.fail(w, "reload", err)
		return
	}
	if warns == nil {
		warns = []string{}
	}
	writeJSON(w, ReloadResponse{Warnings: warns})
}

func (s *Server) detach(w http.ResponseWriter, r *http.Request) {
	if err := s.h.Detach(r.Context()); err != nil {
		s.fail(w, "detach", err)
		return
	}
	writeJSON(w, struct{}{})
}

func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, bans.ErrNotBanned), errors.Is(err, ErrUnknownJail):
		code = http.StatusNotFound
	case errors.Is(err, bans.ErrFull):
		code = http.StatusInsufficientStorage
	case errors.Is(err, bans.ErrUnsupported):
		code = http.StatusNotImplemented
	}
	if code == http.StatusInternalServerError {
		s.log.Error("control request failed", "op", what, "err", err)
	}
	writeErr(w, code, err)
}

func kindOf(err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrUnknownJail):
		return "unknown_jail"
	case errors.Is(err, ErrBadRequest):
		return "bad_request"
	case errors.Is(err, bans.ErrNotBanned):
		return "not_banned"
	case errors.Is(err, bans.ErrFull):
		return "full"
	case errors.Is(err, bans.ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrBusy):
		return "busy"
	}
	return ""
}

func writeErr(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	eb := errorBody{Error: err.Error(), Kind: kindOf(err)}
	var bad *BadLinesError
	if errors.As(err, &bad) {
		eb.Lines, eb.Total = bad.Lines, bad.Total
	}
	json.NewEncoder(w).Encode(eb)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
