package loader

import (
	"context"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// TestTableOfMatchesStatus: the table TableOf names for each ban is the
// one whose walk counts it, so a daemon filling Entries from its mirror
// reports what a walk of the kernel would; StatusUncounted leaves the ban
// tables to the caller and still counts rl_buckets.
func TestTableOfMatchesStatus(t *testing.T) {
	x := loadDetached(t, Options{})
	ctx := context.Background()
	var _ bans.TableFiller = x
	bs := []bans.Ban{
		ban("192.0.2.1", "a", time.Hour), ban("192.0.2.2", "a", 0), ban("198.51.100.0/24", "b", 0),
		ban("203.0.113.0/28", "b", time.Hour), ban("2001:db8:1::7", "a", 0), ban("2001:db8:2::/64", "a", 0),
		ban("2001:db8::/48", "b", 0), ban("2001:db8:3:4:5::/80", "b", 0),
	}
	mustAdd(t, x, bs...)
	mirror := map[string]int{}
	for _, b := range bs {
		mirror[x.TableOf(b.Prefix)]++
	}
	// The /80 is widened to its /64 like a single address.
	want := map[string]int{"ban_v4": 2, "ban_v4_net": 2, "ban_v6": 3, "ban_v6_net": 1}
	st, err := x.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	un, err := x.StatusUncounted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(un.Tables) != len(st.Tables) {
		t.Fatalf("uncounted tables %+v, counted %+v", un.Tables, st.Tables)
	}
	for i, tb := range st.Tables {
		u := un.Tables[i]
		if u.Name != tb.Name || u.Capacity != tb.Capacity || u.Capacity == 0 {
			t.Errorf("table %d: uncounted %+v, counted %+v", i, u, tb)
		}
		if tb.Name == xdpbanMapRlBuckets {
			if u.Entries != tb.Entries {
				t.Errorf("rl_buckets: uncounted %d entries, counted %d", u.Entries, tb.Entries)
			}
			continue
		}
		if tb.Entries != want[tb.Name] || mirror[tb.Name] != tb.Entries || u.Entries != -1 {
			t.Errorf("table %s: walk %d, by TableOf %d, uncounted %d; want %d, %d, -1", tb.Name, tb.Entries, mirror[tb.Name], u.Entries, want[tb.Name], want[tb.Name])
		}
	}
}
