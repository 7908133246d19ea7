package control

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	pathpkg "path"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/internal/bans"
)

// FuzzRequests: any body on any endpoint gets a JSON answer with a 2xx,
// 4xx or 501 status; the server never panics and bad input never reaches
// the handler as a ban.
func FuzzRequests(f *testing.F) {
	f.Add("/v1/ban", `{"bans":[{"addr":"192.0.2.1","jail":"j","for":"1h"}]}`)
	f.Add("/v1/ban", `{"bans":[{"addr":`)
	f.Add("/v1/unban", `{"all":true}`)
	f.Add("/v1/reload", `{"jail":"sshd"}`)
	f.Add("/v1/nope", `{}`)
	h := &memHandler{bans: map[netip.Prefix]bans.Ban{}}
	s := &Server{h: h, log: slog.New(slog.NewTextHandler(io.Discard, nil)), allow: func(uint32) bool { return true }}
	routes := s.routes()
	f.Fuzz(func(t *testing.T, path, body string) {
		// Unclean paths get ServeMux's redirect before any handler runs.
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t?#%") || pathpkg.Clean(path) != path {
			return
		}
		if _, err := url.Parse("http://x" + path); err != nil {
			return // not a request a client can send
		}
		req := httptest.NewRequest(http.MethodPost, "http://x"+path, strings.NewReader(body))
		req = req.WithContext(context.WithValue(req.Context(), ctxKey{}, peer{}))
		rec := httptest.NewRecorder()
		routes.ServeHTTP(rec, req)
		if c := rec.Code; !(c >= 200 && c < 300 || c >= 400 && c < 500 || c == 501) {
			t.Fatalf("POST %s %q: status %d", path, body, c)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("POST %s: content type %q", path, ct)
		}
	})
}
