package daemon

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

func dec(a string) bans.Decision {
	return bans.Decision{Jail: "j", Addr: netip.MustParseAddr(a)}
}

func TestApplyPipeline(t *testing.T) {
	var mu sync.Mutex
	var order []string
	gates := map[string]chan struct{}{}
	started := make(chan string, 16)
	gate := func(a string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if gates[a] == nil {
			gates[a] = make(chan struct{})
		}
		return gates[a]
	}
	pl := newApplyPipeline(2, func(d bans.Decision) netip.Prefix { return netip.PrefixFrom(d.Addr, 32) },
		func(b []bans.Decision) {
			a := b[0].Addr.String()
			started <- a
			<-gate(a) // a commit that does not end until told
			mu.Lock()
			order = append(order, a)
			mu.Unlock()
		})
	// A slow batch does not hold up the next one on another prefix.
	pl.submit([]bans.Decision{dec("192.0.2.1")})
	pl.submit([]bans.Decision{dec("192.0.2.2")})
	for range 2 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("a batch waited for the other batch in flight")
		}
	}
	// Full (2 in flight): the third waits for a slot, and a batch on a
	// prefix in flight waits for that batch.
	third := make(chan struct{})
	go func() {
		pl.submit([]bans.Decision{dec("192.0.2.1"), dec("192.0.2.3")})
		close(third)
	}()
	select {
	case <-third:
		t.Fatal("a third batch started with two in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(gate("192.0.2.2"))
	select {
	case a := <-started:
		t.Fatalf("batch %s started while 192.0.2.1 was still being applied", a)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate("192.0.2.1"))
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("batch never started after its prefix was free")
	}
	pl.wait()
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || order[0] != "192.0.2.2" || order[1] != "192.0.2.1" || order[2] != "192.0.2.1" {
		t.Fatalf("applied in order %v; want 192.0.2.2, then 192.0.2.1 twice", order)
	}
}
