package loader

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// onCPU runs f on a thread bound to cpu, so the kernel takes LRU nodes
// from that CPU's free list.
func onCPU(t *testing.T, cpu int, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Errorf("bind to cpu %d: %v", cpu, err)
			return
		}
		f()
	}()
	<-done
}

// TestFaultLRUEviction measures what the kernel does with a 1,024-entry
// ban_v6 written from every CPU at once, straight to the map (no limit):
// 1,024 and 2,001 entries. Then it checks the guarantee Limits gives:
// filled to its limit from every CPU, nothing is evicted.
func TestFaultLRUEviction(t *testing.T) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	online := runtime.NumCPU()
	fillFrom := func(x *XDP, n int) int {
		var wg sync.WaitGroup
		for c := 0; c < online; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				onCPU(t, c, func() {
					for i := c; i < n; i += online {
						k := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 5, byte(i >> 8), byte(i)}).As16()
						if err := x.tbl[tV6].Update(k, xdpbanBanEntry{JailId: 1}, ebpf.UpdateAny); err != nil {
							t.Errorf("update: %v", err)
							return
						}
					}
				})
			}()
		}
		wg.Wait()
		got := 0
		if err := x.walk(tV6, func(entry) error { got++; return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	sizes := MapSizes{V4: 1024, V6: 1024, V4Net: 64, V6Net: 64}
	var report []string
	for _, n := range []int{1024, 2001} {
		x := loadDetached(t, Options{MapSizes: sizes})
		report = append(report, fmt.Sprintf("%d written, %d kept", n, fillFrom(x, n)))
		x.Detach()
	}
	x := loadDetached(t, Options{MapSizes: sizes})
	limit := x.limit(tV6)
	got := fillFrom(x, limit)
	t.Logf("ban_v6 of 1024 entries, %d possible CPUs, written from %d at once: %s; limit %d: %d kept", cpus, online, report, limit, got)
	if got != limit {
		t.Fatalf("filled to its limit %d, the map kept %d: the kernel evicted below the limit", limit, got)
	}
}
