package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/internal/bans"
)

// DropWatcher is implemented by a Handler whose backend reports drop
// events (XDP). GET /v1/drops[?addr=ADDR|CIDR] streams them as NDJSON,
// one drops JSON object per line, until the client goes away or the
// channel is closed. A Handler without it answers 501 (unsupported).
type DropWatcher interface {
	// WatchDrops returns the events whose source is inside filter (the
	// zero prefix: all); the channel is closed when ctx ends or the
	// daemon stops. It must not block the event source (drops.Hub).
	WatchDrops(ctx context.Context, filter netip.Prefix) (<-chan drops.Event, error)
}

func (s *Server) drops(w http.ResponseWriter, r *http.Request) {
	dw, ok := s.h.(DropWatcher)
	if !ok {
		s.fail(w, "watch", fmt.Errorf("%w: this daemon's backend does not report drops (XDP only)", bans.ErrUnsupported))
		return
	}
	filter, err := drops.ParseFilter(r.URL.Query().Get("addr"))
	if err != nil {
		s.fail(w, "watch", fmt.Errorf("%w: %w", ErrBadRequest, err))
		return
	}
	ch, err := dw.WatchDrops(r.Context(), filter)
	if err != nil {
		s.fail(w, "watch", err)
		return
	}
	// A stream has no time limit (net/http lifts the read deadline once
	// the request is read, and there is no write timeout): it is bounded
	// by Limits.MaxConns instead, which closes the oldest stream when a
	// new connection needs room.
	s.t.streaming(r)
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if fl != nil {
		fl.Flush() // the client learns the stream is open before any drop
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(ev) != nil {
				return
			}
			// Flush per event unless more are already waiting.
			if fl != nil && len(ch) == 0 {
				fl.Flush()
			}
		}
	}
}

// WatchDrops streams the daemon's drop events whose source is inside
// filter (ADDR|CIDR, "" for all) to fn until ctx ends, the daemon closes
// the stream (nil) or fn returns an error (returned).
func (c *Client) WatchDrops(ctx context.Context, filter string, fn func(drops.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://xdpban/v1/drops?addr="+url.QueryEscape(filter), nil)
	if err != nil {
		return err
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
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return remoteError(resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		var ev drops.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decode drop event %.80q: %w", sc.Bytes(), err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// Cut mid-stream, not ended: a daemon that stops ends it.
			return fmt.Errorf("drop stream from %s: %w: the daemon closed it (killed, or it needed the connection for a new one past socket_max_connections); run watch again", c.path, err)
		}
		return fmt.Errorf("drop stream from %s: %w", c.path, err)
	}
	return nil
}

// remoteError rebuilds the error a daemon answered with.
func remoteError(status int, raw []byte) error {
	var eb errorBody
	if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
		eb.Error = strings.TrimSpace(string(raw))
	}
	if len(eb.Lines) > 0 {
		return &BadLinesError{Lines: eb.Lines, Total: max(eb.Total, len(eb.Lines))}
	}
	re := &RemoteError{Status: status, Msg: eb.Error, kind: kinds[eb.Kind]}
	if re.kind != nil {
		// The sentinel travels as Kind; keep only the explanation.
		re.Msg = strings.TrimPrefix(re.Msg, re.kind.Error()+": ")
	}
	return re
}
