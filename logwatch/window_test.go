package logwatch

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestWindowBansAtMaxRetryWithinFindTime(t *testing.T) {
	w := NewWindow(3, 10*time.Minute, 0)
	k := pfx("192.0.2.7/32")
	for i := 0; i < 2; i++ {
		if h := w.Add(k, t0.Add(time.Duration(i)*time.Minute), t0.Add(5*time.Minute), "l"); h != nil {
			t.Fatalf("failure %d banned early: %+v", i+1, h)
		}
	}
	h := w.Add(k, t0.Add(2*time.Minute), t0.Add(5*time.Minute), "third")
	if h == nil || h.Failures != 3 || h.Lines[2] != "third" {
		t.Fatalf("third failure in window: got %+v, want a hit with 3 failures", h)
	}
	if n := w.Failures(k); n != 0 {
		t.Fatalf("window not reset after the ban: %d failures left", n)
	}
	// After the reset it takes maxretry new failures again.
	if h := w.Add(k, t0.Add(3*time.Minute), t0.Add(5*time.Minute), "l"); h != nil {
		t.Fatalf("a single failure after a ban banned again")
	}
}

func TestWindowSlides(t *testing.T) {
	w := NewWindow(3, 10*time.Minute, 0)
	k := pfx("2001:db8::/64")
	// Failures 6 minutes apart: never 3 within 10 minutes.
	for i := 0; i < 10; i++ {
		at := t0.Add(time.Duration(i*6) * time.Minute)
		if h := w.Add(k, at, at, "l"); h != nil {
			t.Fatalf("failure %d: banned although never 3 failures within findtime", i)
		}
	}
	if n := w.Failures(k); n != 2 {
		t.Fatalf("failures in window = %d, want 2", n)
	}
}

func TestWindowOldLinesNeverBan(t *testing.T) {
	w := NewWindow(2, 10*time.Minute, 0)
	k := pfx("198.51.100.1/32")
	now := t0.Add(time.Hour)
	for i := 0; i < 50; i++ {
		if h := w.Add(k, t0.Add(time.Duration(i)*time.Second), now, "old"); h != nil {
			t.Fatalf("a line older than findtime banned: %+v", h)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("old lines were tracked: %d entries", w.Len())
	}
	// Lines from while the daemon was down but inside findtime count.
	w.Add(k, now.Add(-9*time.Minute), now, "recent")
	if h := w.Add(k, now.Add(-8*time.Minute), now, "recent"); h == nil {
		t.Fatal("two failures inside findtime (logged while down) did not ban")
	}
}

func TestWindowFutureTimeIsClampedToNow(t *testing.T) {
	w := NewWindow(2, time.Minute, 0)
	k := pfx("192.0.2.1/32")
	w.Add(k, t0.Add(24*time.Hour), t0, "future")
	// Two minutes later the clamped failure has left the window.
	if h := w.Add(k, t0.Add(2*time.Minute), t0.Add(2*time.Minute), "l"); h != nil {
		t.Fatal("a failure stamped in the future stayed in the window past findtime")
	}
}

func TestWindowBoundedUnderDistributedAttack(t *testing.T) {
	const bound = 10_000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	w := NewWindow(5, time.Hour, bound)
	attack := func(n, base int) {
		for i := 0; i < n; i++ {
			v := uint32(base + i)
			a := netip.AddrFrom4([4]byte{198, byte(v >> 16), byte(v >> 8), byte(v)})
			w.Add(netip.PrefixFrom(a, 32), t0, t0, "Nov 24 12:00:00 web sshd[1]: Failed password for root from x port 22 ssh2")
		}
	}
	attack(bound, 0)
	after1 := heap()
	// Ten times the bound from fresh addresses must not grow memory.
	attack(10*bound, bound)
	after10 := heap()
	if w.Len() != bound {
		t.Fatalf("tracked %d addresses, bound is %d", w.Len(), bound)
	}
	if got := w.Evicted(); got != 10*bound {
		t.Fatalf("evicted %d, want %d", got, 10*bound)
	}
	if after10 > after1+after1/2 {
		t.Fatalf("heap grew from %d to %d bytes after 10x the bound", after1, after10)
	}
	// The most recent addresses are the ones kept.
	last := uint32(11*bound - 1)
	a := netip.AddrFrom4([4]byte{198, byte(last >> 16), byte(last >> 8), byte(last)})
	if w.Failures(netip.PrefixFrom(a, 32)) != 1 {
		t.Fatal("the most recent address was evicted instead of the oldest")
	}
	runtime.KeepAlive(w)
}

func TestWindowReconfigureKeepsCounts(t *testing.T) {
	w := NewWindow(5, time.Hour, 0)
	k := pfx("192.0.2.9/32")
	w.Add(k, t0, t0, "a")
	w.Add(k, t0, t0, "b")
	w.Reconfigure(3, time.Hour, 0)
	if h := w.Add(k, t0, t0, "c"); h == nil || h.Failures != 3 {
		t.Fatalf("after lowering maxretry to 3 the third failure did not ban: %+v", h)
	}
}

func TestWindowSweep(t *testing.T) {
	w := NewWindow(5, time.Minute, 0)
	w.Add(pfx("192.0.2.1/32"), t0, t0, "")
	w.Add(pfx("192.0.2.2/32"), t0.Add(50*time.Second), t0.Add(50*time.Second), "")
	if n := w.Sweep(t0.Add(70 * time.Second)); n != 1 {
		t.Fatalf("swept %d, want 1 (only 192.0.2.1 left the window)", n)
	}
	if w.Len() != 1 || w.Failures(pfx("192.0.2.2/32")) != 1 {
		t.Fatal("sweep removed a fresh entry")
	}
}

func BenchmarkWindowAdd(b *testing.B) {
	w := NewWindow(5, time.Hour, 100_000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v := uint32(i % 200_000)
		a := netip.AddrFrom4([4]byte{198, byte(v >> 16), byte(v >> 8), byte(v)})
		w.Add(netip.PrefixFrom(a, 32), t0, t0, "line")
	}
}

// TestWindowBoundsKeptLines: long hostile lines evict the least recently
// failing addresses once the kept lines pass their budget, whatever
// maxtracked allows.
func TestWindowBoundsKeptLines(t *testing.T) {
	defer func(old int) { maxLineBytes = old }(maxLineBytes)
	maxLineBytes = 10 * maxKeptLine
	w := NewWindow(5, time.Hour, 1000)
	long := strings.Repeat("x", 5000) // kept as maxKeptLine bytes
	for i := 0; i < 50; i++ {
		w.Add(netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32), t0, t0, long)
	}
	if w.Len() != 10 || w.Evicted() != 40 || w.lineBytes > maxLineBytes {
		t.Fatalf("tracked %d, evicted %d, %d line bytes kept; want 10, 40, at most %d", w.Len(), w.Evicted(), w.lineBytes, maxLineBytes)
	}
	if w.Failures(netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, 49}), 32)) != 1 {
		t.Fatal("the most recent address was evicted")
	}
	// A ban gives its lines' bytes back.
	k := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, 49}), 32)
	for i := 0; i < 4; i++ {
		w.Add(k, t0, t0, "short")
	}
	if w.Failures(k) != 0 || w.lineBytes != w.Len()*maxKeptLine {
		t.Fatalf("%d line bytes kept after the ban for %d addresses, want %d", w.lineBytes, w.Len(), w.Len()*maxKeptLine)
	}
}
