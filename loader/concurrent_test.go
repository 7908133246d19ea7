package loader

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentUse hammers one backend from several goroutines (the
// daemon's sweeper, the control socket, the log watchers) and checks the
// trie fill counts the kernel relies on still match the tries, and that
// every prefix ban left in place is enforced.
func TestConcurrentUse(t *testing.T) {
	x := loadDetached(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				p4 := pfx(fmt.Sprintf("198.51.100.%d/32", g*50+i)) // exact table
				n4 := pfx(fmt.Sprintf("203.0.113.%d/31", (g*50+i)%128*2))
				n6 := pfx(fmt.Sprintf("2001:db8:%x::/48", g*100+i))
				if err := x.Add(ctx, ban(p4.String(), "j", time.Hour), ban(n4.String(), fmt.Sprint("jail", g), time.Hour), ban(n6.String(), "j", time.Hour)); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					if _, err := x.Delete(ctx, n4, n6); err != nil {
						errs <- err
						return
					}
				}
				if i%10 == 0 {
					if _, err := x.List(ctx); err != nil {
						errs <- err
						return
					}
					if _, err := x.Expire(ctx, time.Now()); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, err := x.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m xdpbanMeta
	if err := x.meta.Lookup(uint32(0), &m); err != nil {
		t.Fatal(err)
	}
	fill := map[string]int{}
	for _, tb := range st.Tables {
		fill[tb.Name] = tb.Entries
	}
	if int(m.V4NetEntries) != fill["ban_v4_net"] || int(m.V6NetEntries) != fill["ban_v6_net"] {
		t.Fatalf("trie counts %d/%d, tries hold %d/%d", m.V4NetEntries, m.V6NetEntries, fill["ban_v4_net"], fill["ban_v6_net"])
	}
	if fill["ban_v4"] != 200 || fill["ban_v6_net"] != 100 {
		t.Fatalf("fill %v, want 200 exact v4 and 100 v6 prefixes", fill)
	}
	// Odd i kept their /31: 203.0.113.2 belongs to g=0,i=1.
	if got := run(t, x, udp4(addr("203.0.113.3"))); got != xdpDrop {
		t.Errorf("kept prefix 203.0.113.2/31 not enforced")
	}
	if got := run(t, x, udp6(addr("2001:db8:1::1"))); got != xdpDrop {
		t.Errorf("kept prefix 2001:db8:1::/48 not enforced")
	}
}
