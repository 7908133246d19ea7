package filter

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/logwatch/samplelog"
)

// The fail2ban sample suite: fail2ban ships, for each of its filters, a
// log of real lines annotated with what the filter must make of the next
// line (# failJSON: {"match": true, "host": ..., "time": ...}). Running
// fail2ban's own filter files from /etc/fail2ban/filter.d through our
// translation over those logs, with fail2ban's test semantics
// (tests/samplestestcase.py), is how we show that an existing fail2ban
// setup runs unchanged.

const (
	f2bTests  = samplelog.Fail2banTests
	f2bConfig = "/etc/fail2ban"
)

type suiteStats struct {
	total, pass int
	failures    []string
}

func TestFail2banSamples(t *testing.T) {
	logsDir := filepath.Join(f2bTests, "files", "logs")
	if _, err := os.Stat(logsDir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fail2ban sample logs missing at %s (CI=true): install the fail2ban package", logsDir)
		}
		t.Skipf("fail2ban sample logs not installed at %s: install the fail2ban package to run the compatibility suite", logsDir)
	}
	berlin, err := time.LoadLocation(samplelog.Fail2banTestTZ)
	if err != nil {
		t.Fatalf("load %s: %v", samplelog.Fail2banTestTZ, err)
	}
	ref := samplelog.Fail2banTestNow.In(berlin)

	targets, err := samplelog.Targets(f2bConfig, filepath.Join(f2bTests, "config", "filter.d"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	stats := map[string]*suiteStats{}
	stat := func(k string) *suiteStats {
		if stats[k] == nil {
			stats[k] = &suiteStats{}
		}
		return stats[k]
	}
	for _, tg := range targets {
		if _, err := os.Stat(filepath.Join(logsDir, tg.Name)); err != nil {
			continue // fail2ban has no sample for it either
		}
		runSampleFile(t, tg.Name, []string{tg.Dir}, logsDir, ref, berlin, stat)
	}

	// Report.
	var keys []string
	total, pass := 0, 0
	for k, s := range stats {
		keys = append(keys, k)
		total += s.total
		pass += s.pass
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%-34s %6s %6s %7s\n", "filter", "lines", "pass", "rate")
	for _, k := range keys {
		s := stats[k]
		fmt.Fprintf(&b, "%-34s %6d %6d %6.1f%%\n", k, s.total, s.pass, 100*float64(s.pass)/float64(max(s.total, 1)))
	}
	rate := 100 * float64(pass) / float64(max(total, 1))
	fmt.Fprintf(&b, "%-34s %6d %6d %6.1f%%\n", "TOTAL", total, pass, rate)
	t.Logf("fail2ban sample suite:\n%s", b.String())
	for _, k := range keys {
		for _, f := range stats[k].failures {
			t.Logf("FAIL %s: %s", k, f)
		}
	}
	for _, k := range samplelog.MustPass {
		s := stats[k]
		if s == nil || s.total == 0 {
			t.Errorf("must-pass filter %s: no samples were checked", k)
			continue
		}
		if s.pass != s.total {
			t.Errorf("must-pass filter %s: %d/%d sample lines pass, want all", k, s.pass, s.total)
		}
	}
	if rate < samplelog.MinPassRate {
		t.Errorf("overall sample pass rate %.1f%% (%d/%d), want >= %.0f%%", rate, pass, total, samplelog.MinPassRate)
	}
}

// runSampleFile runs every filter instance of sample log name over its
// lines, each through its own scanner as when following a log.
func runSampleFile(t *testing.T, name string, dirs []string, logsDir string, ref time.Time, loc *time.Location, stat func(string) *suiteStats) {
	runs, err := samplelog.Read(logsDir, name)
	if err != nil {
		t.Fatalf("sample log %s: %v", name, err)
	}
	for _, r := range runs {
		f, err := Load(dirs, name, r.Vars())
		var sc *scanner
		if err == nil {
			sc = f.NewScanner().(*scanner)
		}
		for _, c := range r.Cases {
			st := stat(c.Key)
			st.total++
			if reason := checkSample(r, sc, err, c, ref, loc); reason != "" {
				st.failures = append(st.failures, fmt.Sprintf("%s:%d [%s%s]: %s\n    %s", c.File, c.LineNo, name, r.ID, reason, c.Text))
				continue
			}
			st.pass++
		}
	}
}

func checkSample(run *samplelog.Run, sc *scanner, loadErr error, c samplelog.Case, ref time.Time, loc *time.Location) string {
	if loadErr != nil {
		return "filter does not load: " + loadErr.Error()
	}
	var rs []result
	// The per-line budget is wall-clock: on a loaded machine a sample
	// line can run out of it; scan it again rather than count a miss.
	for try := 0; try < 4; try++ {
		if run.Journal() {
			d := ref
			_, rs = sc.scan(c.Text, ref, true, &d)
		} else {
			_, rs = sc.scan(c.Text, ref, true, nil)
		}
		if !sc.lineTimedOut {
			break
		}
	}
	var found []result
	for _, r := range rs {
		if r.pending || r.nofail {
			continue
		}
		found = append(found, r)
	}
	want := c.Want
	shouldMatch := c.Match()
	if len(found) == 0 {
		if shouldMatch {
			return "no match, want one"
		}
		return ""
	}
	if !shouldMatch {
		return fmt.Sprintf("matched failregex %d (host %q), want no match", found[0].idx+1, found[0].host)
	}
	if len(found) > 1 {
		var idx []int
		for _, r := range found {
			idx = append(idx, r.idx+1)
		}
		return fmt.Sprintf("several failregexes matched: %v", idx)
	}
	r := found[0]
	if h, ok := want["host"].(string); ok && !sameHost(h, r.host) {
		return fmt.Sprintf("host %q, want %q", r.host, h)
	}
	if u, ok := want["user"].(string); ok && r.g["user"] != u {
		return fmt.Sprintf("user %q, want %q", r.g["user"], u)
	}
	if ts, ok := want["time"].(string); ok {
		layout := "2006-1-2T15:04:05"
		got := r.t
		if strings.Contains(ts, ".") {
			layout += ".999999"
		} else {
			got = got.Truncate(time.Second)
		}
		w, err := time.ParseInLocation(layout, ts, loc)
		if err != nil {
			return "bad time annotation " + ts
		}
		if !got.Equal(w) {
			return fmt.Sprintf("time %s, want %s", got.In(loc).Format("2006-01-02T15:04:05.999999 MST"), w.Format("2006-01-02T15:04:05.999999 MST"))
		}
	}
	return ""
}

func sameHost(want, got string) bool {
	if want == got {
		return true
	}
	a, err1 := netip.ParseAddr(want)
	b, err2 := netip.ParseAddr(got)
	return err1 == nil && err2 == nil && a.Unmap() == b.Unmap()
}

// TestShippedFilters runs xdpban's own filters over testdata/filters/NAME,
// annotated in the same format.
func TestShippedFilters(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load Europe/Berlin: %v", err)
	}
	ref := time.Date(2025, 3, 2, 0, 0, 0, 0, berlin)
	logs := filepath.Join("..", "..", "testdata", "filters")
	for _, name := range Shipped() {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(logs, name)); err != nil {
				t.Fatalf("shipped filter %s has no test log %s: add one", name, filepath.Join(logs, name))
			}
			stats := map[string]*suiteStats{}
			runSampleFile(t, name, nil, logs, ref, berlin, func(k string) *suiteStats {
				if stats[k] == nil {
					stats[k] = &suiteStats{}
				}
				return stats[k]
			})
			s := stats[name]
			if s == nil || s.total == 0 {
				t.Fatalf("no annotated lines in %s", name)
			}
			for _, f := range s.failures {
				t.Errorf("%s", f)
			}
			t.Logf("%s: %d/%d annotated lines pass", name, s.pass, s.total)
		})
	}
}
