package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/xdpban/xdpban/internal/bans"
)

// Client talks to a daemon's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path. It does not connect:
// the first call does, and fails with ErrNoDaemon if nobody listens.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 64,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Ping reports whether a daemon answers (nil) or ErrNoDaemon.
func (c *Client) Ping(ctx context.Context) error {
	err := c.do(ctx, http.MethodGet, "/v1/ping", nil, nil)
	if errors.Is(err, ErrBadRequest) {
		// A daemon from before /v1/ping (the CLI was upgraded first).
		var st Status
		return c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	}
	return err
}

// Ban asks the daemon to ban items; it returns the canonical prefixes
// once they are enforced and stored durably.
func (c *Client) Ban(ctx context.Context, items []BanItem) ([]string, error) {
	var resp BanResponse
	if err := c.do(ctx, http.MethodPost, "/v1/ban", BanRequest{Bans: items}, &resp); err != nil {
		return nil, err
	}
	return resp.Banned, nil
}

// CheckBan asks whether items, with pending more new bans per table, fit
// (bans.ErrFull when not), banning nothing; it returns the new bans of
// items per table (BanRequest.Check).
func (c *Client) CheckBan(ctx context.Context, items []BanItem, pending map[string]int) (map[string]int, error) {
	var resp BanResponse
	if err := c.do(ctx, http.MethodPost, "/v1/ban", BanRequest{Bans: items, Check: true, Pending: pending}, &resp); err != nil {
		return nil, err
	}
	return resp.New, nil
}

// Unban lifts bans and returns how many.
func (c *Client) Unban(ctx context.Context, req UnbanRequest) (int, error) {
	var resp UnbanResponse
	if err := c.do(ctx, http.MethodPost, "/v1/unban", req, &resp); err != nil {
		return 0, err
	}
	return resp.Removed, nil
}

// List returns the active bans.
func (c *Client) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := c.do(ctx, http.MethodGet, "/v1/list", nil, &out)
	return out, err
}

// Status returns the daemon status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// JailStatus returns one jail's status.
func (c *Client) JailStatus(ctx context.Context, jail string) (JailStatus, error) {
	var st JailStatus
	err := c.do(ctx, http.MethodGet, "/v1/status/"+url.PathEscape(jail), nil, &st)
	return st, err
}

// Reload reloads the configuration (one jail when jail is set) and
// returns the daemon's warnings about it.
func (c *Client) Reload(ctx context.Context, jail string) ([]string, error) {
	var r ReloadResponse
	if err := c.do(ctx, http.MethodPost, "/v1/reload", ReloadRequest{Jail: jail}, &r); err != nil {
		return nil, err
	}
	return r.Warnings, nil
}

// Detach asks the daemon to remove all enforcement it installed.
func (c *Client) Detach(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/detach", struct{}{}, nil)
}

// RemoteError is an error the daemon answered with.
type RemoteError struct {
	Status int
	Msg    string
	kind   error
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.kind }

var kinds = map[string]error{
	"bad_request":  ErrBadRequest,
	"not_banned":   bans.ErrNotBanned,
	"unknown_jail": ErrUnknownJail,
	"forbidden":    ErrForbidden,
	"unsupported":  bans.ErrUnsupported,
	"full":         bans.ErrFull,
	"busy":         ErrBusy,
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body, ctype = bytes.NewReader(buf), "application/json"
	}
	return c.send(ctx, method, path, ctype, body, out)
}

// ErrNoImport: the daemon answering is older than POST /v1/import.
var ErrNoImport = errors.New("daemon takes no imports")

// Import sends a file of bans (one address or CIDR a line) in one
// request and returns how many were banned, once all are enforced and
// stored. ErrNoImport from an older daemon: send them with Ban.
func (c *Client) Import(ctx context.Context, req ImportRequest, body io.Reader) (int, error) {
	q := url.Values{}
	q.Set("jail", req.Jail)
	q.Set("for", req.For)
	if req.Force {
		q.Set("force", "1")
	}
	var resp ImportResponse
	err := c.send(ctx, http.MethodPost, "/v1/import?"+q.Encode(), "text/plain", body, &resp)
	if err != nil && strings.Contains(err.Error(), "unknown command POST /v1/import") {
		return 0, ErrNoImport
	}
	return resp.Banned, err
}

func (c *Client) send(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://xdpban"+path, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if isNoDaemon(err) {
			return fmt.Errorf("%w: nothing listens on %s", ErrNoDaemon, c.path)
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: cannot connect to %s: run as root", ErrForbidden, c.path)
		}
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read daemon reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return remoteError(resp.StatusCode, raw) // drops.go
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode daemon reply: %w", err)
	}
	return nil
}

func isNoDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
