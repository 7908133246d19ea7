package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/bench/loggen"
)

// Section 3: the same generated auth.log through `xdpban regex … sshd`
// (xdpban's shipped filter) and through `fail2ban-regex` with fail2ban's
// own sshd.conf, both pinned to the same CPU. Throughput is each tool's
// own processing time (fail2ban-regex's "processed in", xdpban's
// elapsed_s: reading and matching, without start-up and printing); the
// wall time of each whole command is reported next to it.

// logMatchRun is one tool's run over the log (or its first lines).
type logMatchRun struct {
	lines, matched int
	secs, wall     float64
	// matchedLines are the 1-based numbers of xdpban's matched lines,
	// to count them over the part fail2ban read.
	matchedLines []int
}

func (r logMatchRun) rate() float64 { return float64(r.lines) / r.secs }

func sectionLogMatch(ctx context.Context, o opts, s *Section) error {
	n, xRuns := 1_000_000, 3
	if o.quick {
		n, xRuns = 100_000, 1
	}
	log := filepath.Join(o.work, fmt.Sprintf("auth-%d.log", n))
	st, err := writeAuthLog(log, loggen.Options{Lines: n})
	if err != nil {
		return err
	}
	cpu, err := benchCPU()
	if err != nil {
		return err
	}
	s.Table = &Table{Header: []string{"tool", "filter", "lines", "matched", "processing s", "lines/s", "wall s", "wall lines/s"}}
	s.note("Log: %s lines written by bench/loggen (seed 1, deterministic): %s sshd failures (%.0f%%) from %s addresses in documentation ranges (IPv4 and 2001:db8::/32), "+
		"the rest sshd logins, cron, sudo, systemd-logind and kernel noise; %.0f MiB, syslog dates.",
		group(strconv.Itoa(st.Lines)), group(strconv.Itoa(st.Failures)), 100*float64(st.Failures)/float64(st.Lines), group(strconv.Itoa(st.Attackers)), float64(st.Bytes)/(1<<20))

	// xdpban: the median of a few runs (it is the quick one), on one
	// core and on all of them (a single-line filter's log is matched in
	// parallel batches, counted in file order).
	medianRun := func(cpu int) (logMatchRun, []logMatchRun, error) {
		var runs []logMatchRun
		for range xRuns {
			r, err := xdpbanRegexRun(ctx, o, cpu, log)
			if err != nil {
				return logMatchRun{}, runs, err
			}
			runs = append(runs, r)
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i].rate() < runs[j].rate() })
		return runs[len(runs)/2], runs, nil
	}
	xr, runs, xerr := medianRun(cpu)
	var xa logMatchRun
	var aruns []logMatchRun
	if xerr == nil {
		xa, aruns, xerr = medianRun(-1)
	}
	// The whole process as fail2ban-regex is run: its report printed,
	// not every match.
	var textWall float64
	if xerr == nil {
		var walls []float64
		for range xRuns {
			w, err := xdpbanRegexTextWall(ctx, o, log)
			if err != nil {
				xerr = err
				break
			}
			walls = append(walls, w)
		}
		if xerr == nil {
			textWall = median(walls)
		}
	}
	if xerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.add(Figure{Case: "auth.log", Tool: "xdpban", Metric: "lines_per_s", Skipped: xerr.Error()})
		s.Table.Rows = append(s.Table.Rows, []string{"xdpban", "sshd (shipped)", "—", "—", "—", "—", "—", "skipped: " + oneLine(xerr.Error())})
	} else {
		s.add(Figure{Case: "auth.log", Tool: "xdpban", Metric: "lines_per_s", Value: xr.rate(), Unit: "lines/s"})
		s.add(Figure{Case: "auth.log", Tool: "xdpban", Metric: "matched_lines", Value: float64(xr.matched), Unit: "lines"})
		s.add(Figure{Case: "auth.log", Tool: "xdpban", Metric: "wall_lines_per_s", Value: float64(xr.lines) / xr.wall, Unit: "lines/s"})
		s.add(Figure{Case: "auth.log, all cores", Tool: "xdpban", Metric: "lines_per_s", Value: xa.rate(), Unit: "lines/s"})
		s.add(Figure{Case: "auth.log, all cores", Tool: "xdpban", Metric: "wall_lines_per_s", Value: float64(xa.lines) / xa.wall, Unit: "lines/s"})
		s.Table.Rows = append(s.Table.Rows, logMatchRow("xdpban, 1 core", "sshd (shipped)", xr))
		s.Table.Rows = append(s.Table.Rows, logMatchRow(fmt.Sprintf("xdpban, %d cores", runtime.NumCPU()), "sshd (shipped)", xa))
		s.add(Figure{Case: "auth.log, all cores, text report", Tool: "xdpban", Metric: "wall_lines_per_s", Value: float64(xa.lines) / textWall, Unit: "lines/s"})
		s.Table.Rows = append(s.Table.Rows, []string{fmt.Sprintf("xdpban, %d cores, text report", runtime.NumCPU()), "sshd (shipped)", group(strconv.Itoa(xa.lines)), group(strconv.Itoa(xa.matched)),
			"—", "—", fmt.Sprintf("%.2f", textWall), num(float64(xa.lines) / textWall)})
		s.note("xdpban: `GOMAXPROCS=1 taskset -c %d %s regex LOG sshd --json` (1 core) and the same without taskset and GOMAXPROCS (all cores), median of %d runs each (lines/s: %s; all cores: %s); its figure is `elapsed_s`, the JSON's own timer around reading and matching; wall is the whole process, printing 300k matches as JSON included.",
			cpu, o.bin, len(runs), rates(runs), rates(aruns))
		if xr.matched != st.Failures || xa.matched != xr.matched {
			s.note("**xdpban matched %s lines (%s on all cores), the generator wrote %s failures**: a filter or generator bug.", group(strconv.Itoa(xr.matched)), group(strconv.Itoa(xa.matched)), group(strconv.Itoa(st.Failures)))
		}
	}

	ferr := fail2banAvailable()
	var fr logMatchRun
	partial := false
	if ferr == nil {
		fr, partial, ferr = fail2banRegexRun(ctx, o, cpu, log, n)
	}
	if ferr != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ctx.Err()
		}
		s.add(Figure{Case: "auth.log", Tool: "fail2ban", Metric: "lines_per_s", Skipped: ferr.Error()})
		s.Table.Rows = append(s.Table.Rows, []string{"fail2ban-regex", "sshd.conf (fail2ban's)", "—", "—", "—", "—", "—", "skipped: " + oneLine(ferr.Error())})
	} else {
		s.add(Figure{Case: "auth.log", Tool: "fail2ban", Metric: "lines_per_s", Value: fr.rate(), Unit: "lines/s"})
		s.add(Figure{Case: "auth.log", Tool: "fail2ban", Metric: "matched_lines", Value: float64(fr.matched), Unit: "lines"})
		s.add(Figure{Case: "auth.log", Tool: "fail2ban", Metric: "wall_lines_per_s", Value: float64(fr.lines) / fr.wall, Unit: "lines/s"})
		s.Table.Rows = append(s.Table.Rows, logMatchRow("fail2ban-regex", "sshd.conf (fail2ban's)", fr))
		s.note("fail2ban: %s, `taskset -c %d fail2ban-regex --no-check-all --print-no-missed --print-no-ignored LOG %s` (--no-check-all: stop at the first failregex that matches, as fail2ban-server does); its figure is its own \"processed in\" time.",
			fail2banVersion(), cpu, fail2banFilter("sshd"))
		if partial {
			s.note("fail2ban-regex read the first %s lines only: the whole log would not fit the section's time budget at its speed. Lines/s are comparable; matched counts are compared on those lines.", group(strconv.Itoa(fr.lines)))
		}
	}

	if xerr == nil && ferr == nil {
		// The same lines must be failures for both filters.
		xm := 0
		for _, l := range xr.matchedLines {
			if l <= fr.lines {
				xm++
			}
		}
		s.add(Figure{Case: fmt.Sprintf("first %d lines", fr.lines), Tool: "xdpban", Metric: "matched_lines", Value: float64(xm), Unit: "lines"})
		if xm == fr.matched {
			s.note("Both filters matched the same number of lines (%s of the %s both read).", group(strconv.Itoa(xm)), group(strconv.Itoa(fr.lines)))
		} else {
			s.note("**Mismatch**: on the %s lines both read, xdpban matched %s lines and fail2ban-regex %s.", group(strconv.Itoa(fr.lines)), group(strconv.Itoa(xm)), group(strconv.Itoa(fr.matched)))
		}
		r := ratio(xr.rate(), fr.rate())
		s.add(Figure{Case: "auth.log", Tool: "xdpban", Metric: "ratio_vs_fail2ban", Value: r, Unit: "x"})
		s.add(Figure{Case: "auth.log", Tool: "xdpban", Metric: "wall_ratio_vs_fail2ban", Value: ratio(float64(xr.lines)/xr.wall, float64(fr.lines)/fr.wall), Unit: "x"})
		ra := ratio(xa.rate(), fr.rate())
		s.add(Figure{Case: "auth.log, all cores", Tool: "xdpban", Metric: "ratio_vs_fail2ban", Value: ra, Unit: "x"})
		s.add(Figure{Case: "auth.log, all cores", Tool: "xdpban", Metric: "wall_ratio_vs_fail2ban", Value: ratio(float64(xa.lines)/xa.wall, float64(fr.lines)/fr.wall), Unit: "x"})
		tr := ratio(float64(xa.lines)/textWall, float64(fr.lines)/fr.wall)
		s.add(Figure{Case: "auth.log, all cores, text report", Tool: "xdpban", Metric: "wall_ratio_vs_fail2ban", Value: tr, Unit: "x"})
		s.note("Ratio to fail2ban-regex (single-threaded): %.1f× on one core, %.1f× on all cores; whole process, wall: %.1f× printing every match as JSON, %.1f× printing its report as fail2ban-regex does (`xdpban regex LOG sshd`: counts and the top addresses), start-up and the filter's compilation included in both tools.", r, ra, ratio(float64(xa.lines)/xa.wall, float64(fr.lines)/fr.wall), tr)
		s.target("log matching speed xdpban (all cores)/fail2ban-regex", ra, "x", false, 50)
	}
	if xerr == nil {
		s.target("xdpban log matching on one core", xr.rate(), "lines/s", false, 1_000_000)
	}
	return nil
}

func logMatchRow(tool, filter string, r logMatchRun) []string {
	return []string{tool, filter, group(strconv.Itoa(r.lines)), group(strconv.Itoa(r.matched)),
		fmt.Sprintf("%.2f", r.secs), num(r.rate()), fmt.Sprintf("%.2f", r.wall), num(float64(r.lines) / r.wall)}
}

func rates(runs []logMatchRun) string {
	var out []string
	for _, r := range runs {
		out = append(out, num(r.rate()))
	}
	return strings.Join(out, ", ")
}

func writeAuthLog(path string, opt loggen.Options) (loggen.Stats, error) {
	f, err := os.Create(path)
	if err != nil {
		return loggen.Stats{}, fmt.Errorf("create benchmark log: %w", err)
	}
	st, err := loggen.Generate(f, opt)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write benchmark log %s: %w", path, cerr)
	}
	return st, err
}

// benchCPU picks the CPU both tools are pinned to: the last one this
// process may run on (CPU 0 takes most interrupts).
func benchCPU() (int, error) {
	if _, err := exec.LookPath("taskset"); err != nil {
		return 0, fmt.Errorf("taskset not found (util-linux): needed to pin both tools to one CPU: %w", err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0, fmt.Errorf("read CPU affinity: %w", err)
	}
	for c := 1023; c >= 0; c-- {
		if set.IsSet(c) {
			return c, nil
		}
	}
	return 0, errors.New("no CPU in this process's affinity set")
}

// xdpbanRegexTextWall is the wall time of `xdpban regex LOG sshd` on
// every CPU, its text report read and dropped.
func xdpbanRegexTextWall(ctx context.Context, o opts, log string) (float64, error) {
	cmd := exec.CommandContext(ctx, o.bin, "regex", log, "sshd")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("xdpban regex %s: %w: %s", log, err, lastLines(stderr.String(), 3))
	}
	return time.Since(t0).Seconds(), nil
}

// xdpbanRegexRun runs `xdpban regex LOG sshd --json`, on one CPU with
// GOMAXPROCS=1 when cpu >= 0, else on every CPU this process may use.
func xdpbanRegexRun(ctx context.Context, o opts, cpu int, log string) (logMatchRun, error) {
	cmd := exec.CommandContext(ctx, o.bin, "regex", log, "sshd", "--json")
	cmd.Env = os.Environ()
	if cpu >= 0 {
		cmd = exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(cpu), o.bin, "regex", log, "sshd", "--json")
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return logMatchRun{}, fmt.Errorf("xdpban regex: %w", err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return logMatchRun{}, fmt.Errorf("start xdpban regex: %w", err)
	}
	var res struct {
		Lines    int     `json:"lines"`
		Matched  int     `json:"matched"`
		ElapsedS float64 `json:"elapsed_s"`
		Matches  []struct {
			Line int `json:"line"`
		} `json:"matches"`
	}
	derr := json.NewDecoder(bufio.NewReaderSize(out, 1<<20)).Decode(&res)
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	wall := time.Since(t0).Seconds()
	if werr != nil {
		return logMatchRun{}, fmt.Errorf("xdpban regex %s: %w: %s", log, werr, lastLines(stderr.String(), 3))
	}
	if derr != nil {
		return logMatchRun{}, fmt.Errorf("xdpban regex --json output: %w", derr)
	}
	if res.Lines == 0 || res.ElapsedS <= 0 {
		return logMatchRun{}, fmt.Errorf("xdpban regex reported %d lines in %gs", res.Lines, res.ElapsedS)
	}
	r := logMatchRun{lines: res.Lines, matched: res.Matched, secs: res.ElapsedS, wall: wall}
	last := 0
	for _, m := range res.Matches {
		if m.Line != last {
			r.matchedLines = append(r.matchedLines, m.Line)
			last = m.Line
		}
	}
	if len(r.matchedLines) != r.matched {
		return r, fmt.Errorf("xdpban regex --json: %d matched lines but matches on %d lines", r.matched, len(r.matchedLines))
	}
	return r, nil
}

var (
	f2bLinesRE = regexp.MustCompile(`(?m)^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed`)
	f2bTimeRE  = regexp.MustCompile(`\[processed in ([0-9.]+) sec\]`)
)

// probeLines is the prefix fail2ban-regex first reads to see whether the
// whole log fits the budget.
const probeLines = 100_000

// fail2banRegexRun runs fail2ban-regex on the log, or only on its first
// probeLines lines when the whole log would not fit the time left
// (partial).
func fail2banRegexRun(ctx context.Context, o opts, cpu int, log string, n int) (logMatchRun, bool, error) {
	if n <= probeLines {
		r, err := fail2banRegex(ctx, cpu, log)
		return r, false, err
	}
	prefix := filepath.Join(o.work, "auth-prefix.log")
	if err := copyLines(log, prefix, probeLines); err != nil {
		return logMatchRun{}, false, err
	}
	probe, err := fail2banRegex(ctx, cpu, prefix)
	if err != nil {
		return logMatchRun{}, false, err
	}
	need := time.Duration(probe.wall * float64(n) / float64(probeLines) * 1.3 * float64(time.Second))
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < need+15*time.Second {
		return probe, true, nil
	}
	r, err := fail2banRegex(ctx, cpu, log)
	return r, false, err
}

func fail2banRegex(ctx context.Context, cpu int, log string) (logMatchRun, error) {
	cmd := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(cpu), "fail2ban-regex",
		"--no-check-all", "--print-no-missed", "--print-no-ignored", log, fail2banFilter("sshd"))
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(t0).Seconds()
	if err != nil {
		return logMatchRun{}, fmt.Errorf("fail2ban-regex %s: %w: %s", log, err, lastLines(string(out), 3))
	}
	lm, tm := f2bLinesRE.FindSubmatch(out), f2bTimeRE.FindSubmatch(out)
	if lm == nil || tm == nil {
		return logMatchRun{}, fmt.Errorf("fail2ban-regex printed no \"Lines:\" or \"processed in\" summary: %s", lastLines(string(out), 3))
	}
	lines, _ := strconv.Atoi(string(lm[1]))
	matched, _ := strconv.Atoi(string(lm[3]))
	secs, _ := strconv.ParseFloat(string(tm[1]), 64)
	if lines == 0 || secs <= 0 {
		return logMatchRun{}, fmt.Errorf("fail2ban-regex reported %d lines in %gs", lines, secs)
	}
	return logMatchRun{lines: lines, matched: matched, secs: secs, wall: wall}, nil
}

func copyLines(src, dst string, n int) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("read benchmark log: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("create log prefix: %w", err)
	}
	br := bufio.NewReaderSize(in, 1<<20)
	bw := bufio.NewWriterSize(out, 1<<20)
	for i := 0; i < n; i++ {
		l, err := br.ReadBytes('\n')
		if len(l) > 0 {
			bw.Write(l)
		}
		if err != nil {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return fmt.Errorf("write log prefix %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write log prefix %s: %w", dst, err)
	}
	return nil
}
