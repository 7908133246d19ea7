package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// Ban latency end to end (issue 3): the daemon follows a log, the
// attacker streams datagrams, maxretry failures are appended, and the
// time from the append of the line that crosses the threshold to the
// first datagram dropped is measured from the outside by a
// nspairtest.Probe. "First dropped" is the first datagram of the final
// unbroken run that never reached the host socket; every run also checks
// that the ban's XDP entry counted exactly those datagrams, so the cut
// really is the XDP drop and not loss.

const (
	latencyPort     = 7010
	latencyMaxRetry = 3
	// probeInterval paces the stream; the figure overstates the
	// latency by at most one (real) interval.
	probeInterval = 100 * time.Microsecond
)

// latencySource is the attacker address of run i: documentation
// addresses outside the pair's own 192.0.2.0/24.
func latencySource(t testing.TB, i int) netip.Addr {
	if i >= 2*254 {
		t.Fatalf("run %d: only %d documentation addresses for latency runs", i, 2*254)
	}
	if i < 254 {
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
	}
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(i - 254 + 1)})
}

// latencyLoad is what else the daemon is doing while a run is timed.
type latencyLoad int

const (
	quietLog latencyLoad = iota
	// busyLog: the jail's log takes 1,000 other lines/s (cron, sudo):
	// the follower is always reading.
	busyLog
	// banStorm: a second jail on a log of its own bans ~330 addresses/s:
	// the decision path and the store are always committing.
	banStorm
)

var latencyLoads = []struct {
	name string
	load latencyLoad
}{{"quiet_log", quietLog}, {"busy_log", busyLog}, {"ban_storm", banStorm}}

// startLatencyWorld starts a daemon with one jail (shipped sshd filter,
// maxretry latencyMaxRetry) on a scratch log, and the storm jail on
// another, and puts the load on. It returns the jail's log and the
// load's stop.
func startLatencyWorld(t *testing.T, w *world, load latencyLoad) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	logPath, stormLog := filepath.Join(dir, "auth.log"), filepath.Join(dir, "storm.log")
	appendLines(t, logPath, "startup line\n")
	appendLines(t, stormLog, "startup line\n")
	conf := jailConfig(logPath, latencyMaxRetry) +
		fmt.Sprintf("\n[stormjail]\nenabled = true\nfilter = sshd\nbackend = file\nlogpath = %s\nmaxretry = %d\nfindtime = 1h\nbantime = 1h\n", stormLog, latencyMaxRetry)
	if err := os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	w.start(t)
	// The socket answers before the jails start.
	c := control.NewClient(w.socket)
	defer c.Close()
	waitFor(t, 30*time.Second, "testjail following "+logPath, func() bool {
		js, err := c.JailStatus(context.Background(), "testjail")
		return err == nil && slices.Contains(js.Files, logPath)
	})
	switch load {
	case busyLog:
		return logPath, logNoise(t, logPath, func(i int) string {
			return fmt.Sprintf("%s testhost CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n",
				time.Now().Format(time.Stamp), 30000+i%30000)
		})
	case banStorm:
		// Each address fails maxretry times in a row; 12,000 of them
		// at most, so the v6 map (16384) never fills.
		return logPath, logNoise(t, stormLog, func(i int) string {
			return failLine(fmt.Sprintf("2001:db8:5:%x::1", (i/latencyMaxRetry)%12000), i)
		})
	}
	return logPath, func() {}
}

// banLatency is one run from attacker address a: the failures below the
// threshold, counted by the jail, then the crossing line under the
// probe. It returns append → first drop and the cut.
func banLatency(t *testing.T, w *world, c *control.Client, logPath string, a netip.Addr) (time.Duration, nspairtest.Cut) {
	t.Helper()
	ctx := context.Background()
	w.p.AddAttackerAddr(t, a)
	before, err := c.JailStatus(ctx, "testjail")
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k < latencyMaxRetry; k++ {
		appendLines(t, logPath, failLine(a.String(), k))
	}
	// The failures below the threshold are counted before the clock
	// starts: only the crossing line is timed.
	waitFor(t, 5*time.Second, fmt.Sprintf("%d failures of %s counted", latencyMaxRetry-1, a), func() bool {
		js, err := c.JailStatus(ctx, "testjail")
		return err == nil && js.TotalFailed == before.TotalFailed+latencyMaxRetry-1
	})
	if _, ok := w.list(t)[netip.PrefixFrom(a, 32).String()]; ok {
		t.Fatalf("%s banned after %d failures, maxretry is %d", a, latencyMaxRetry-1, latencyMaxRetry)
	}

	pr := w.p.Probe(t, a, latencyPort, probeInterval)
	if err := pr.Start(ctx, 20); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	appendLines(t, logPath, failLine(a.String(), latencyMaxRetry))
	cut, err := pr.WaitCut(ctx, 50*time.Millisecond, 10*time.Second)
	pr.Close()
	if err != nil {
		t.Fatalf("%s: %v; daemon:\n%s", a, err, w.d.out.String())
	}
	d := cut.Since(t0)
	if d < 0 {
		t.Fatalf("%s: datagram #%d sent %v before the crossing line was already dropped", a, cut.First, -d)
	}
	e, ok := w.list(t)[netip.PrefixFrom(a, 32).String()]
	if !ok || e.Jail != "testjail" {
		t.Fatalf("%s: datagrams stopped arriving but no testjail ban is listed (%+v)", a, e)
	}
	// The entry counted exactly the datagrams after the cut: they were
	// dropped by this ban in XDP, not lost on the way.
	if e.Packets != uint64(cut.Dropped()) {
		t.Fatalf("%s: the XDP entry counted %d packets, the probe lost %d after the cut (#%d of %d sent, %d lost before)",
			a, e.Packets, cut.Dropped(), cut.First, cut.Sent, cut.Lost)
	}
	return d, cut
}

func latencyRuns(t *testing.T, w *world, n int, load latencyLoad) ([]time.Duration, time.Duration) {
	t.Helper()
	logPath, stop := startLatencyWorld(t, w, load)
	defer stop()
	c := control.NewClient(w.socket)
	defer c.Close()
	ds := make([]time.Duration, 0, n)
	var interval time.Duration
	for i := range n {
		d, cut := banLatency(t, w, c, logPath, latencySource(t, i))
		ds = append(ds, d)
		interval += cut.Interval
	}
	return ds, interval / time.Duration(n)
}

// logNoise appends line(i) to path every millisecond until stop is
// called (at most 10 minutes' worth).
func logNoise(t *testing.T, path string, line func(i int) string) (stop func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer f.Close()
		for i := 0; i < 600000; i++ {
			select {
			case <-quit:
				return
			default:
			}
			f.WriteString(line(i))
			time.Sleep(time.Millisecond)
		}
	}()
	return func() { close(quit); <-done }
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestLogBanLatency: every run ends with the attacker's datagrams dropped
// in XDP by the jail's ban: on a quiet log, on one taking 1,000 other
// lines/s, and while another jail bans ~330 addresses/s. The latency is
// logged, not asserted: its target (p99 ≤ 10 ms) is
// BenchmarkLogBanLatency's and `make bench`'s.
func TestLogBanLatency(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 10
	}
	for _, l := range latencyLoads {
		t.Run(l.name, func(t *testing.T) {
			w := newWorld(t)
			ds, interval := latencyRuns(t, w, runs, l.load)
			t.Logf("append → first datagram dropped over %d runs: p50 %.2f ms, p99 %.2f ms, max %.2f ms (datagrams every %v)",
				runs, ms(pct(ds, 50)), ms(pct(ds, 99)), ms(pct(ds, 100)), interval.Round(time.Microsecond))
			c := control.NewClient(w.socket)
			defer c.Close()
			js, err := c.JailStatus(context.Background(), "testjail")
			if err != nil {
				t.Fatal(err)
			}
			if js.TotalBanned != runs || js.TotalFailed != runs*latencyMaxRetry {
				t.Fatalf("jail status after %d runs: %d failures, %d bans; want %d and %d", runs, js.TotalFailed, js.TotalBanned, runs*latencyMaxRetry, runs)
			}
			if l.load == banStorm {
				// The storm was real: the other jail banned all along.
				if st, err := c.JailStatus(context.Background(), "stormjail"); err != nil || st.TotalBanned < 100 {
					t.Fatalf("stormjail banned %d addresses during the runs (%v); the storm did not happen", st.TotalBanned, err)
				}
			}
		})
	}
}

// BenchmarkLogBanLatency reports append → first drop as p50-ms, p99-ms
// and max-ms over b.N runs (one run per iteration; -benchtime 100x for
// the figure), quiet, on a busy log and during a ban storm.
func BenchmarkLogBanLatency(b *testing.B) {
	for _, l := range latencyLoads {
		b.Run(l.name, func(b *testing.B) {
			n := b.N
			var ds []time.Duration
			benchDaemon(b, func(t *testing.T, w *world) {
				ds, _ = latencyRuns(t, w, n, l.load)
			})
			b.ReportMetric(ms(pct(ds, 50)), "p50-ms")
			b.ReportMetric(ms(pct(ds, 99)), "p99-ms")
			b.ReportMetric(ms(pct(ds, 100)), "max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
