package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// limitedMem is the in-memory backend with one table of limit bans.
type limitedMem struct {
	*memBackend
	limit int
}

func (b *limitedMem) StatusUncounted(context.Context) (bans.Status, error) { return bans.Status{}, nil }
func (b *limitedMem) TableOf(netip.Prefix) string                          { return "mem" }
func (b *limitedMem) Limits() map[string]bans.TableLimit {
	return map[string]bans.TableLimit{"mem": {Limit: b.limit, Setting: "map_size_mem"}}
}
func (b *limitedMem) Holds(p netip.Prefix) (bool, error) { _, ok := b.has(p); return ok, nil }
func (b *limitedMem) Status(ctx context.Context) (bans.Status, error) {
	bs, _ := b.List(ctx)
	return bans.Status{Tables: []bans.TableStatus{{Name: "mem", Entries: len(bs), Capacity: b.limit}}}, nil
}

func TestBanRefusedWholeWhenTableFull(t *testing.T) {
	f := newFixture(t)
	lm := &limitedMem{memBackend: f.be, limit: 3}
	f.core.Backend = lm
	ctx := context.Background()
	ban := func(ss ...string) error {
		var bs []bans.Ban
		for _, s := range ss {
			bs = append(bs, bans.Ban{Prefix: pfx(s), Jail: "j", Expires: f.now.Add(time.Hour)})
		}
		return f.core.Ban(ctx, bs)
	}
	if err := ban("192.0.2.1/32", "192.0.2.2/32"); err != nil {
		t.Fatal(err)
	}
	err := ban("192.0.2.3/32", "192.0.2.4/32")
	if !errors.Is(err, bans.ErrFull) || !strings.Contains(err.Error(), "map_size_mem") || !strings.Contains(err.Error(), "mem holds 2 of the 3") {
		t.Fatalf("ban past the limit: %v", err)
	}
	if _, ok := f.be.has(pfx("192.0.2.3/32")); ok {
		t.Fatalf("a refused batch was partly enforced")
	}
	// Re-banning what is banned takes no room; one more new fits.
	if err := ban("192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"); err != nil {
		t.Fatalf("ban up to the limit: %v", err)
	}
	if _, err := f.core.CheckRoom([]bans.Ban{{Prefix: pfx("192.0.2.9/32")}}, nil); !errors.Is(err, bans.ErrFull) {
		t.Fatalf("CheckRoom on a full table: %v", err)
	}
	// Lost behind the daemon's back: Ensure and Reconcile put them back.
	f.be.Delete(ctx, pfx("192.0.2.1/32"), pfx("192.0.2.2/32"))
	cur, _ := f.core.Lookup(pfx("192.0.2.1/32"))
	if back, err := f.core.Ensure(ctx, cur); err != nil || !back {
		t.Fatalf("Ensure of a lost ban: %v %v", back, err)
	}
	// Unforced, it counts first: the count differs, so it lists.
	if n, err := f.core.Reconcile(ctx, false); err != nil || n != 1 {
		t.Fatalf("Reconcile: %d, %v; want 1 put back", n, err)
	}
	if n, err := f.core.Reconcile(ctx, false); err != nil || n != 0 {
		t.Fatalf("Reconcile with nothing lost: %d, %v", n, err)
	}
	for i := 1; i <= 3; i++ {
		if _, ok := f.be.has(pfx(fmt.Sprintf("192.0.2.%d/32", i))); !ok {
			t.Fatalf("192.0.2.%d not back in the backend", i)
		}
	}
}
