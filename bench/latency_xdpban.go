package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/xdpban/xdpban/internal/nspair"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// The xdpban half of section 4: `xdpban run` (the real binary) in the
// host namespace follows a scratch log with one jail (the shipped sshd
// filter, maxretry 1); the attacker streams numbered datagrams from a new
// address each run, a failure line for that address is appended, and a
// nspairtest.Probe finds the first datagram that never arrived. Each run
// is checked against the ban's XDP entry: it must have counted exactly
// the datagrams after the cut, so the figure is an XDP drop, not loss.

const (
	latencyJail  = "latency"
	latencyPort  = 7011
	probeEvery   = 100 * time.Microsecond
	probeQuiet   = 50 * time.Millisecond
	probeTimeout = 10 * time.Second
)

// latencyRun is what the xdpban half measured, for the notes.
type latencyRun struct {
	ms       []float64
	interval time.Duration // mean probe pacing over all runs
	lost     int           // datagrams missing before a cut, all runs
}

// startLatencyDaemon runs the daemon with one jail following logPath,
// ready once the jail follows it.
func startLatencyDaemon(ctx context.Context, o opts, p *nspair.Pair, dir, logPath string) (*daemonProc, error) {
	if err := os.WriteFile(logPath, []byte("startup line\n"), 0o644); err != nil {
		return nil, fmt.Errorf("create the jail's log: %w", err)
	}
	return startDaemon(ctx, o, p, dir, daemonConf{
		// Small maps: the defaults preallocate a million entries.
		keys: map[string]int{"map_size_v4": 16384, "map_size_v6": 16384, "map_size_v4_net": 1024, "map_size_v6_net": 1024},
		jails: fmt.Sprintf("[sshd]\nenabled = false\n\n[%s]\nenabled = true\nfilter = sshd\nbackend = file\nlogpath = %s\nmaxretry = 1\nfindtime = 10m\nbantime = 1h\n",
			latencyJail, logPath),
		ready: func(ctx context.Context, d *daemonProc) error {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			js, err := d.client.JailStatus(cctx, latencyJail)
			if err != nil {
				return err
			}
			if len(js.Files) != 1 || js.Files[0] != logPath {
				return fmt.Errorf("jail %s follows %v, not %s", latencyJail, js.Files, logPath)
			}
			return nil
		},
	})
}

// xdpbanLatency times runs bans; with noise the log takes noiseRate
// other lines/s meanwhile.
func xdpbanLatency(ctx context.Context, o opts, runs int, noise bool) (latencyRun, error) {
	var res latencyRun
	p, err := newPair()
	if err != nil {
		return res, err
	}
	dir := filepath.Join(o.work, "xdpban-latency")
	if noise {
		dir += "-busy"
	}
	logPath := filepath.Join(dir, "auth.log")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("scratch dir: %w", err)
	}
	d, err := startLatencyDaemon(ctx, o, p, dir, logPath)
	if err != nil {
		return res, err
	}
	defer d.stop()

	// One untimed run first: the first ban pays for cold caches and
	// lazily built state, which is start-up, not ban latency.
	if _, err := d.banRun(ctx, p, logPath, netip.MustParseAddr("203.0.113.250")); err != nil {
		return res, fmt.Errorf("warm-up run: %w", err)
	}
	if noise {
		stop, err := logNoise(logPath)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	for _, a := range latencySources(runs) {
		c, err := d.banRun(ctx, p, logPath, a)
		if err != nil {
			return res, err
		}
		res.ms = append(res.ms, float64(c.d)/float64(time.Millisecond))
		res.interval += c.cut.Interval
		res.lost += c.cut.Lost
	}
	res.interval /= time.Duration(len(res.ms))
	slog.Info("xdpban latency", "runs", len(res.ms), "busy_log", noise, "p50_ms", median(res.ms), "probe_interval", res.interval)
	return res, nil
}

type banRunResult struct {
	d   time.Duration
	cut nspairtest.Cut
}

// banRun is one run from attacker address a.
func (d *daemonProc) banRun(ctx context.Context, p *nspair.Pair, logPath string, a netip.Addr) (banRunResult, error) {
	if err := p.AddAttackerAddr(a); err != nil {
		return banRunResult{}, err
	}
	pr, err := nspairtest.OpenProbe(p, a, latencyPort, probeEvery)
	if err != nil {
		return banRunResult{}, err
	}
	defer pr.Close()
	if err := pr.Start(ctx, 20); err != nil {
		return banRunResult{}, err
	}
	t0 := time.Now()
	if err := appendLine(logPath, sshdFailure(t0, a)); err != nil {
		return banRunResult{}, err
	}
	cut, err := pr.WaitCut(ctx, probeQuiet, probeTimeout)
	if err != nil {
		return banRunResult{}, fmt.Errorf("%s: %w; daemon: %s", a, err, d.tail())
	}
	res := banRunResult{d: cut.Since(t0), cut: cut}
	if res.d < 0 {
		return res, fmt.Errorf("%s: datagram #%d, sent %v before its failure line, was already dropped", a, cut.First, -res.d)
	}
	es, err := d.client.List(ctx)
	if err != nil {
		return res, fmt.Errorf("list bans: %w", err)
	}
	want := netip.PrefixFrom(a, 32).String()
	for _, e := range es {
		if e.Addr != want {
			continue
		}
		if e.Jail != latencyJail || e.Packets != uint64(cut.Dropped()) {
			return res, fmt.Errorf("%s: ban of jail %q counted %d packets in XDP; the probe saw %d dropped after the cut", a, e.Jail, e.Packets, cut.Dropped())
		}
		return res, nil
	}
	return res, fmt.Errorf("%s: datagrams stopped arriving but no ban is listed", a)
}
