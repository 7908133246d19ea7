package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Section 4: from a failure line appended to the log to the ban taking
// effect. For xdpban that is the first packet from the attacker dropped
// in XDP; for fail2ban (which, here, must not touch a firewall) it is
// its ban action running.

// logCondition is what else the followed log takes during the runs.
type logCondition struct {
	name string // table and figure label
	// noise is true for a log taking noiseRate other lines/s (cron, sudo:
	// lines no filter matches), as a bastion's auth.log does.
	noise bool
}

const noiseRate = 1000

var logConditions = []logCondition{{"quiet log", false}, {fmt.Sprintf("busy log (%d other lines/s)", noiseRate), true}}

func sectionLatency(ctx context.Context, o opts, s *Section) error {
	runs := 100
	if o.quick {
		runs = 10
	}
	s.Table = &Table{Header: []string{"tool", "log", "runs", "p50 ms", "p99 ms", "max ms", "measured until"}}
	var xQuiet, fQuiet []float64
	var xr latencyRun
	var backend string
	f2bErr := fail2banAvailable()
	for _, lc := range logConditions {
		xcase, fcase := "append to drop", "append to ban action"
		if lc.noise {
			xcase, fcase = xcase+", busy log", fcase+", busy log"
		}
		r, err := xdpbanLatency(ctx, o, runs, lc.noise)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.add(Figure{Case: xcase, Tool: "xdpban", Metric: "p50_ms", Skipped: err.Error()})
			s.Table.Rows = append(s.Table.Rows, []string{"xdpban", lc.name, "—", "—", "—", "—", "skipped: " + oneLine(err.Error())})
		} else {
			addLatency(s, "xdpban", xcase, lc.name, r.ms, "first attacker packet dropped in XDP")
			if !lc.noise {
				xQuiet, xr = r.ms, r
			}
		}

		var fb []float64
		ferr := f2bErr
		if ferr == nil {
			fb, backend, ferr = fail2banLatency(ctx, o, runs, lc.noise)
		}
		if ferr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.add(Figure{Case: fcase, Tool: "fail2ban", Metric: "p50_ms", Skipped: ferr.Error()})
			s.Table.Rows = append(s.Table.Rows, []string{"fail2ban", lc.name, "—", "—", "—", "—", "skipped: " + oneLine(ferr.Error())})
			continue
		}
		addLatency(s, "fail2ban", fcase, lc.name, fb, "its actionban ran (a timestamp, no firewall)")
		if !lc.noise {
			fQuiet = fb
		}
	}
	if xQuiet != nil {
		s.note("xdpban: `xdpban run` (%s) in the host namespace, backend xdp, one jail with the shipped sshd filter, maxretry 1, following a scratch log (inotify). "+
			"The attacker sends numbered UDP datagrams every %v (measured mean, quiet log; %v asked) from the run's address. "+
			"\"First packet dropped\" is the first datagram of the final unbroken run that never reached the host's socket; the figure is its send time minus the time just before the failure line's write(2), so it overstates by at most one interval. "+
			"Every run is checked against the ban's XDP entry, which must have counted exactly the datagrams after the cut (%d datagrams lost before a cut in the quiet runs, none counted as drops). One untimed warm-up run first.",
			o.bin, xr.interval.Round(time.Microsecond), probeEvery, xr.lost)
		s.target("ban latency p99 (append → drop, quiet log)", percentile(xQuiet, 99), "ms", true, 10)
	}
	if fQuiet != nil {
		s.note("fail2ban: %s, backend %s, maxretry 1, run by fail2ban-server inside its own network namespace with a scratch config, socket, pidfile and database; its only action writes `date +%%s.%%N` to a file. fail2ban's figure stops at the action starting: a real iptables action would add its own time on top.", fail2banVersion(), backend)
	}
	if xQuiet != nil && fQuiet != nil {
		r := ratio(median(fQuiet), median(xQuiet))
		s.add(Figure{Case: "p50, quiet log", Tool: "xdpban", Metric: "speedup_vs_fail2ban", Value: r, Unit: "x"})
		s.note("p50 speed-up over fail2ban (quiet log): %.1f×.", r)
	}
	s.note("One run = one failure line (maxretry 1) from a new documentation address; %d runs per tool and log, sequential. Busy log: a writer appends %d lines/s no filter matches to the same log during the runs, so the follower is always reading.", runs, noiseRate)
	return nil
}

// logNoise appends noiseRate lines/s that no filter matches to path
// until stop is called (at most 10 minutes' worth).
func logNoise(path string) (stop func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("log noise: %w", err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer f.Close()
		tick := time.NewTicker(time.Second / noiseRate)
		defer tick.Stop()
		for i := 0; i < 600*noiseRate; i++ {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			fmt.Fprintf(f, "%s bastion CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n",
				time.Now().Format(time.Stamp), 30000+i%30000)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }, nil
}

func addLatency(s *Section, tool, cas, log string, ms []float64, until string) {
	p50, p99 := percentile(ms, 50), percentile(ms, 99)
	s.add(Figure{Case: cas, Tool: tool, Metric: "p50_ms", Value: p50, Unit: "ms"})
	s.add(Figure{Case: cas, Tool: tool, Metric: "p99_ms", Value: p99, Unit: "ms"})
	s.add(Figure{Case: cas, Tool: tool, Metric: "max_ms", Value: percentile(ms, 100), Unit: "ms"})
	s.add(Figure{Case: cas, Tool: tool, Metric: "runs", Value: float64(len(ms)), Unit: "runs"})
	s.Table.Rows = append(s.Table.Rows, []string{tool, log, fmt.Sprint(len(ms)),
		fmt.Sprintf("%.2f", p50), fmt.Sprintf("%.2f", p99), fmt.Sprintf("%.2f", percentile(ms, 100)), until})
}

func fail2banLatency(ctx context.Context, o opts, runs int, noise bool) ([]float64, string, error) {
	ns, err := newNS("f2b")
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(o.work, "fail2ban-latency")
	if noise {
		dir += "-busy"
	}
	f, err := startFail2ban(ctx, ns, dir)
	if err != nil {
		return nil, "", err
	}
	defer f.stop()
	if noise {
		stop, err := logNoise(f.log)
		if err != nil {
			return nil, "", err
		}
		defer stop()
	}
	var ms []float64
	for _, a := range latencySources(runs) {
		d, err := f.latency(ctx, a)
		if err != nil {
			return nil, "", err
		}
		ms = append(ms, float64(d)/float64(time.Millisecond))
	}
	slog.Info("fail2ban latency", "runs", len(ms), "p50_ms", median(ms))
	return ms, f.backend(), nil
}
