package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/internal/bans"
)

// banHandler is a daemon stand-in that bans what it is asked, as the
// daemon parses it.
type banHandler struct{ watchHandler }

func (banHandler) Ban(_ context.Context, items []control.BanItem) ([]bans.Ban, error) {
	return daemon.ParseItems(items, bans.Widen{}, time.Now(), daemon.ItemRules{})
}

// A ban names the prefix banned and, when that is not what was typed,
// says how it was normalised.
func TestBanSaysWhenNormalised(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "xdpban.sock")
	srv, err := control.Listen(sock, banHandler{watchHandler{hub: drops.NewHub()}}, slog.New(slog.NewTextHandler(io.Discard, nil)), control.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ban", "10.1.2.3/8"}, "banned 10.0.0.0/8 (normalised from 10.1.2.3/8: host bits cleared) in jail manual for 1h\n"},
		{[]string{"ban", "198.51.100.7"}, "banned 198.51.100.7/32 in jail manual for 1h\n"},
		{[]string{"ban", "2001:db8::7", "--for", "0"}, "banned 2001:db8::/64 (normalised from 2001:db8::7: widened to /64) in jail manual permanently\n"},
		{[]string{"ban", "198.51.100.7", "203.0.113.9/24", "2001:db8::/48"}, "banned 3 addresses in jail manual for 1h (1 normalised: --json lists the prefixes banned)\n"},
		{[]string{"ban", "198.51.100.7", "203.0.113.0/24"}, "banned 2 addresses in jail manual for 1h\n"},
	} {
		code, out, errs := cli(t, "", append([]string{"--socket", sock}, c.args...)...)
		if code != 0 || out != c.want {
			t.Errorf("xdpban %s: exit %d, stdout %q (stderr %q), want %q", strings.Join(c.args, " "), code, out, errs, c.want)
		}
	}
}
