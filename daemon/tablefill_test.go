package daemon

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// fillBackend is a backend whose tables the daemon fills itself, like
// loader.XDP: a walk (Status) is an error here, so a status that walks
// fails the test.
type fillBackend struct {
	*memBackend
}

func (fillBackend) Status(context.Context) (bans.Status, error) {
	return bans.Status{}, errors.New("status walked the tables")
}

func (fillBackend) StatusUncounted(context.Context) (bans.Status, error) {
	return bans.Status{Backend: "fill", Tables: []bans.TableStatus{
		{Name: "v4", Entries: -1, Capacity: 100}, {Name: "v6", Entries: -1, Capacity: 100},
		{Name: "buckets", Entries: 7, Capacity: 10},
	}}, nil
}

func (fillBackend) TableOf(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "v4"
	}
	return "v6"
}

// TestStatusFillsTablesFromMirror: behind enforce's wrapper (as the
// daemon's command opens it), status takes table fill from the mirror
// and the backend's other tables as they are, without a walk.
func TestStatusFillsTablesFromMirror(t *testing.T) {
	be, _, err := enforce.Open(context.Background(), config.Daemon{Backend: "xdp"}, enforce.Options{
		OpenXDP: func(context.Context, config.Daemon) (bans.Backend, error) { return fillBackend{newMem()}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	d := runWith(t, be)
	ctx := context.Background()
	if _, err := d.Ban(ctx, []control.BanItem{{Addr: "192.0.2.1"}, {Addr: "198.51.100.0/24"}, {Addr: "2001:db8::7"}}); err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tb := range st.Tables {
		got[tb.Name] = tb.Entries
	}
	if got["v4"] != 2 || got["v6"] != 1 || got["buckets"] != 7 || len(got) != 3 || st.Bans != 3 {
		t.Fatalf("status tables %+v (bans %d), want v4 2, v6 1, buckets 7", st.Tables, st.Bans)
	}
	// The reason the daemon was given (runWith's) replaces the wrapper's.
	if st.Reason != "test" {
		t.Errorf("status reason %q, want test", st.Reason)
	}
}
