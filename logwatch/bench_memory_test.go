package logwatch

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// BenchmarkWindowMillionAddresses: a jail follows a log of 1,000,000
// failures from as many distinct /64s, each below maxretry (the attack
// that took the daemon to 532 MB), at the default maxtracked and, as the
// peer in the same run, with maxtracked = 1,000,000 and no bound on the
// kept lines (no eviction: the old behaviour). Reports the process's peak RSS while the jail read the log
// (VmHWM, reset before each run), the live heap after, the addresses
// tracked and evicted. Run: go test -run '^$' -bench WindowMillionAddresses
// -benchtime 1x ./logwatch
func BenchmarkWindowMillionAddresses(b *testing.B) {
	const n = 1_000_000
	log := filepath.Join(b.TempDir(), "auth.log")
	f, err := os.Create(log)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now().UTC().Format(time.RFC3339)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "%s host sshd[%d]: fail from 2001:db8:%x:%x::1 port %d ssh2 (Failed password for invalid user admin)\n",
			now, 1000+i%30000, i>>16, i&0xffff, 1024+i%60000)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()

	for _, c := range []struct {
		name string
		max  int
	}{{"maxtracked=default", 0}, {"peer=maxtracked-1M", n}} {
		b.Run(c.name, func(b *testing.B) {
			var hwm, heap float64
			var st JailStats
			for b.Loop() {
				runtime.GC()
				debug.FreeOSMemory()
				if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
					b.Skipf("cannot reset the peak RSS: %v", err)
				}
				out := make(chan bans.Decision, 16)
				e := NewEngine(EngineOptions{Out: out, Rescan: time.Hour})
				j := testJail(log)
				j.MaxRetry, j.FindTime = 5, time.Hour
				if c.max > 0 {
					defer func(old int) { maxLineBytes = old }(maxLineBytes)
					maxLineBytes = math.MaxInt
				}
				if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: newFake, MaxTracked: c.max}); err != nil {
					b.Fatal(err)
				}
				for {
					st, _ = e.Stats("sshd")
					if len(st.Sources) == 1 && st.Sources[0].LinesRead >= n {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				hwm = procStatusMiB(b, "VmHWM")
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap = float64(ms.HeapAlloc) / (1 << 20)
				e.StopAll()
			}
			b.ReportMetric(hwm, "peak-RSS-MiB")
			b.ReportMetric(heap, "heap-MiB")
			b.ReportMetric(float64(st.CurrentlyFailed), "tracked")
			b.ReportMetric(float64(st.Evicted), "evicted")
		})
	}
}

// procStatusMiB reads a kB figure of /proc/self/status in MiB.
func procStatusMiB(b *testing.B, key string) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", key)
	return 0
}
