package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Section 4: from a failure line appended to the log to the ban taking
// effect. For xdpban that is the first packet from the attacker dropped
// in XDP; for fail2ban (which, here, must not touch a firewall) it is
// its ban action running.

func sectionLatency(ctx context.Context, o opts, s *Section) error {
	runs := 100
	if o.quick {
		runs = 10
	}
	s.Table = &Table{Header: []string{"tool", "runs", "p50 ms", "p99 ms", "max ms", "measured until"}}

	xr, xerr := xdpbanLatency(ctx, o, runs)
	xb := xr.ms
	if xerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.add(Figure{Case: "append to drop", Tool: "xdpban", Metric: "p50_ms", Skipped: xerr.Error()})
		s.Table.Rows = append(s.Table.Rows, []string{"xdpban", "—", "—", "—", "—", "skipped: " + oneLine(xerr.Error())})
	} else {
		addLatency(s, "xdpban", "append to drop", xb, "first attacker packet dropped in XDP")
		s.note("xdpban: `xdpban run` (%s) in the host namespace, backend xdp, one jail with the shipped sshd filter, maxretry 1, following a scratch log (inotify). "+
			"The attacker sends numbered UDP datagrams every %v (measured mean; %v asked) from the run's address. "+
			"\"First packet dropped\" is the first datagram of the final unbroken run that never reached the host's socket; the figure is its send time minus the time just before the failure line's write(2), so it overstates by at most one interval. "+
			"Every run is checked against the ban's XDP entry, which must have counted exactly the datagrams after the cut (%d datagrams lost before a cut in all runs, none counted as drops). One untimed warm-up run first.",
			o.bin, xr.interval.Round(time.Microsecond), probeEvery, xr.lost)
	}

	var fb []float64
	ferr := fail2banAvailable()
	backend := ""
	if ferr == nil {
		fb, backend, ferr = fail2banLatency(ctx, o, runs)
	}
	if ferr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.add(Figure{Case: "append to ban action", Tool: "fail2ban", Metric: "p50_ms", Skipped: ferr.Error()})
		s.Table.Rows = append(s.Table.Rows, []string{"fail2ban", "—", "—", "—", "—", "skipped: " + oneLine(ferr.Error())})
	} else {
		addLatency(s, "fail2ban", "append to ban action", fb, "its actionban ran (a timestamp, no firewall)")
		s.note("fail2ban: %s, backend %s, maxretry 1, run by fail2ban-server inside its own network namespace with a scratch config, socket, pidfile and database; its only action writes `date +%%s.%%N` to a file. fail2ban's figure stops at the action starting: a real iptables action would add its own time on top.", fail2banVersion(), backend)
	}
	if xerr == nil {
		s.target("ban latency p99 (append → drop)", percentile(xb, 99), "ms", true, 10)
	}
	if xerr == nil && ferr == nil {
		r := ratio(median(fb), median(xb))
		s.add(Figure{Case: "p50", Tool: "xdpban", Metric: "speedup_vs_fail2ban", Value: r, Unit: "x"})
		s.note("p50 speed-up over fail2ban: %.1f×.", r)
	}
	s.note("One run = one failure line (maxretry 1) from a new documentation address; %d runs, sequential.", runs)
	return nil
}

func addLatency(s *Section, tool, cas string, ms []float64, until string) {
	p50, p99 := percentile(ms, 50), percentile(ms, 99)
	s.add(Figure{Case: cas, Tool: tool, Metric: "p50_ms", Value: p50, Unit: "ms"})
	s.add(Figure{Case: cas, Tool: tool, Metric: "p99_ms", Value: p99, Unit: "ms"})
	s.add(Figure{Case: cas, Tool: tool, Metric: "max_ms", Value: percentile(ms, 100), Unit: "ms"})
	s.add(Figure{Case: cas, Tool: tool, Metric: "runs", Value: float64(len(ms)), Unit: "runs"})
	s.Table.Rows = append(s.Table.Rows, []string{tool, fmt.Sprint(len(ms)),
		fmt.Sprintf("%.2f", p50), fmt.Sprintf("%.2f", p99), fmt.Sprintf("%.2f", percentile(ms, 100)), until})
}

func fail2banLatency(ctx context.Context, o opts, runs int) ([]float64, string, error) {
	ns, err := newNS("f2b")
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(o.work, "fail2ban-latency")
	f, err := startFail2ban(ctx, ns, dir)
	if err != nil {
		return nil, "", err
	}
	defer f.stop()
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
