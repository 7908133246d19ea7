package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/logwatch"
	"github.com/xdpban/xdpban/logwatch/samplelog"
)

// fail2ban's sample suite through `xdpban regex --fail2ban-config
// /etc/fail2ban --json`, the command a fail2ban user would try first: each
// sample log, with each filter mode its annotations list, is fed to the
// real binary and every annotation is checked against what it printed.
// (logwatch's TestFail2banSamples runs the same samples through the
// engine directly and also checks users and double matches, which the
// command does not print.)

const (
	f2bSampleLogs = samplelog.Fail2banTests + "/files/logs"
	f2bTestFilter = samplelog.Fail2banTests + "/config/filter.d"
	f2bTestTZ     = samplelog.Fail2banTestTZ
)

var f2bTestNow = samplelog.Fail2banTestNow.UTC().Format(time.RFC3339)

type sampleStats struct {
	checks, pass int
	failures     []string
}

// regexOutput is the part of `xdpban regex --json` the suite reads.
type regexOutput struct {
	Lines    int                    `json:"lines"`
	Matches  []logwatch.ReplayMatch `json:"matches"`
	Timeouts uint64                 `json:"timeouts"`
}

func TestFail2banSamplesThroughRegexCommand(t *testing.T) {
	if _, err := os.Stat(f2bSampleLogs); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fail2ban sample logs missing at %s (CI=true): install the fail2ban package", f2bSampleLogs)
		}
		t.Skipf("fail2ban sample logs not installed at %s: install the fail2ban package", f2bSampleLogs)
	}
	berlin, err := time.LoadLocation(f2bTestTZ)
	if err != nil {
		t.Fatalf("load %s: %v", f2bTestTZ, err)
	}

	// The stock filters run from /etc/fail2ban itself; fail2ban's test
	// filters (zzz-*) from a copy of the tree they are added to.
	targets, err := samplelog.Targets("/etc/fail2ban", f2bTestFilter, copyFail2banTree(t, "/etc/fail2ban"))
	if err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	stats := map[string]*sampleStats{}
	invocations := 0
	for _, tg := range targets {
		if _, err := os.Stat(filepath.Join(f2bSampleLogs, tg.Name)); err != nil {
			continue // no sample log for it in fail2ban either
		}
		runs, err := samplelog.Read(f2bSampleLogs, tg.Name)
		if err != nil {
			t.Fatalf("sample log %s: %v", tg.Name, err)
		}
		for _, r := range runs {
			if len(r.Cases) == 0 {
				continue
			}
			invocations++
			got, errText, timeouts := regexOnSample(t, work, tg.Dir, r)
			// The per-line budget is wall-clock: on a loaded machine a
			// sample line can run out of it. Such a run says so; run it
			// again rather than count the line as a miss.
			for try := 1; timeouts > 0 && try <= 3; try++ {
				t.Logf("%s: %d lines timed out (machine busy), run %d again", r.Spec(), timeouts, try)
				got, errText, timeouts = regexOnSample(t, work, tg.Dir, r)
			}
			for i, c := range r.Cases {
				st := stats[c.Key]
				if st == nil {
					st = &sampleStats{}
					stats[c.Key] = st
				}
				st.checks++
				reason := errText
				if reason == "" {
					reason = checkRegexMatch(c, got[i+1], berlin)
				}
				if reason != "" {
					st.failures = append(st.failures, fmt.Sprintf("%s:%d [%s]: %s\n    %s", c.File, c.LineNo, r.Spec(), reason, c.Text))
					continue
				}
				st.pass++
			}
		}
	}

	var keys []string
	checks, pass := 0, 0
	for k, s := range stats {
		keys = append(keys, k)
		checks += s.checks
		pass += s.pass
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "| filter | checks | passed | rate | reason for failures |\n|---|---:|---:|---:|---|\n")
	for _, k := range keys {
		s := stats[k]
		reason := ""
		if len(s.failures) > 0 {
			reason = fmt.Sprintf("%d failing, first: %s", len(s.failures), strings.SplitN(s.failures[0], "\n", 2)[0])
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f%% | %s |\n", k, s.checks, s.pass, 100*float64(s.pass)/float64(s.checks), reason)
	}
	rate := 100 * float64(pass) / float64(max(checks, 1))
	fmt.Fprintf(&b, "| **all %d filters** | %d | %d | %.1f%% | |\n", len(keys), checks, pass, rate)
	t.Logf("fail2ban sample suite through `xdpban regex --fail2ban-config` (%d invocations; a check is one annotated line under one filter mode):\n%s", invocations, b.String())
	for _, k := range keys {
		for _, f := range stats[k].failures {
			t.Logf("FAIL %s: %s", k, f)
		}
	}
	for _, k := range samplelog.MustPass {
		s := stats[k]
		switch {
		case s == nil || s.checks == 0:
			t.Errorf("filter %s: no sample line was checked", k)
		case s.pass != s.checks:
			t.Errorf("filter %s: %d of %d sample checks pass, want all", k, s.pass, s.checks)
		}
	}
	if rate < samplelog.MinPassRate {
		t.Errorf("all filters: %.1f%% of sample checks pass (%d of %d), want at least %.0f%%", rate, pass, checks, samplelog.MinPassRate)
	}
}

// regexOnSample writes the run's lines to a log and runs `xdpban regex`
// on it with the run's filter and modes, as a separate process so the
// zone of zoneless dates is fail2ban's test zone. It returns the matches
// by line, or why the command failed.
func regexOnSample(t *testing.T, work, f2bDir string, r *samplelog.Run) (map[int][]logwatch.ReplayMatch, string, uint64) {
	t.Helper()
	var text strings.Builder
	for _, c := range r.Cases {
		text.WriteString(c.Text)
		text.WriteByte('\n')
	}
	log := filepath.Join(work, "sample.log")
	if err := os.WriteFile(log, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "regex", "--fail2ban-config", f2bDir, "--json", "--now", f2bTestNow, log, r.Spec())
	cmd.Env = append(os.Environ(), "XDPBAN_TEST_AS_MAIN=1", "TZ="+f2bTestTZ)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Sprintf("xdpban regex %s: %v: %s", r.Spec(), err, strings.TrimSpace(stderr.String())), 0
	}
	var res regexOutput
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("xdpban regex %s --json: %v\n%s", r.Spec(), err, out)
	}
	if res.Lines != len(r.Cases) {
		t.Fatalf("xdpban regex %s read %d lines of %d", r.Spec(), res.Lines, len(r.Cases))
	}
	byLine := map[int][]logwatch.ReplayMatch{}
	for _, m := range res.Matches {
		byLine[m.Line] = append(byLine[m.Line], m)
	}
	return byLine, "", res.Timeouts
}

// checkRegexMatch says why what `xdpban regex` found on a line is not
// what its annotation wants, or "".
func checkRegexMatch(c samplelog.Case, got []logwatch.ReplayMatch, loc *time.Location) string {
	if !c.Match() {
		if len(got) > 0 {
			return fmt.Sprintf("matched (host %q), want no match", got[0].Host)
		}
		return ""
	}
	if len(got) == 0 {
		return "no match, want one"
	}
	m := got[0]
	if h := c.Str("host"); h != "" && !sameSampleHost(h, m.Host) {
		return fmt.Sprintf("host %q, want %q", m.Host, h)
	}
	if ts := c.Str("time"); ts != "" {
		// The command prints whole seconds.
		w, err := time.ParseInLocation("2006-1-2T15:04:05", strings.SplitN(ts, ".", 2)[0], loc)
		if err != nil {
			return "bad time annotation " + ts
		}
		if m.Time == "" {
			return fmt.Sprintf("no time printed, want %s", ts)
		}
		g, err := time.Parse(time.RFC3339, m.Time)
		if err != nil {
			return fmt.Sprintf("time %q printed: %v", m.Time, err)
		}
		if !g.Equal(w) {
			return fmt.Sprintf("time %s, want %s", g.In(loc).Format(time.RFC3339), w.Format(time.RFC3339))
		}
	}
	return ""
}

func sameSampleHost(want, got string) bool {
	if strings.EqualFold(want, got) {
		return true
	}
	a, err1 := netip.ParseAddr(want)
	b, err2 := netip.ParseAddr(got)
	return err1 == nil && err2 == nil && a.Unmap() == b.Unmap()
}

// TestRegexNow: --now is the clock yearless dates are read against, so a
// log from an earlier year replays on its own dates; a bad value is bad
// input.
func TestRegexNow(t *testing.T) {
	const line = "Feb 28 12:00:00 h sshd[1]: Failed password for root from 192.0.2.7 port 1 ssh2"
	for _, c := range []struct{ now, year string }{
		{"2021-03-01T00:00:00Z", "2021-"},
		{"2021-01-15T00:00:00Z", "2020-"}, // Feb 28 would be ahead of the clock: last year's
	} {
		code, out, errOut := cli(t, "", "regex", "--json", "--now", c.now, line, "sshd")
		if code != exitOK {
			t.Fatalf("--now %s: exit %d: %s", c.now, code, errOut)
		}
		var res regexOutput
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("--now %s: %v\n%s", c.now, err, out)
		}
		if len(res.Matches) != 1 || !strings.HasPrefix(res.Matches[0].Time, c.year+"02-28T") {
			t.Errorf("--now %s: matches %+v, want one on %s02-28", c.now, res.Matches, c.year)
		}
	}
	code, _, errOut := cli(t, "", "regex", "--now", "last tuesday", line, "sshd")
	if code != exitUsage || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `--now "last tuesday"`) {
		t.Errorf("bad --now: exit %d, stderr %q; want 2 and one line naming it", code, errOut)
	}
}
