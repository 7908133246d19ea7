package logwatch

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The fail2ban sample suite: fail2ban ships, for each of its filters, a
// log of real lines annotated with what the filter must make of the next
// line (# failJSON: {"match": true, "host": ..., "time": ...}). Running
// fail2ban's own filter files from /etc/fail2ban/filter.d through our
// translation over those logs, with fail2ban's test semantics
// (tests/samplestestcase.py), is how we show that an existing fail2ban
// setup runs unchanged.

const (
	f2bTests      = "/usr/lib/python3/dist-packages/fail2ban/tests"
	f2bConfig     = "/etc/fail2ban"
	f2bTestNowSec = 1124013600 // fail2ban's TEST_NOW (2005-08-14 10:00 UTC)
)

// Filters whose every annotation must pass.
var mustPass = []string{
	"sshd", "sshd/sshd-journal", "nginx-http-auth", "nginx-limit-req",
	"apache-auth", "postfix", "dovecot", "vsftpd", "recidive",
}

type suiteStats struct {
	total, pass int
	failures    []string
}

type suiteFilter struct {
	name string
	f    *Filter
	sc   *scanner
	opts map[string]any
	err  error
}

var (
	annotRE     = regexp.MustCompile(`^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$`)
	constraintR = regexp.MustCompile(`^\s*(name|opts\.get\('([^']+)'\))\s*(==|!=|not in|in)\s*(?:'([^']*)'|\(([^)]*)\))\s*$`)
)

// evalCondition understands the constraint forms fail2ban's sample logs
// use: name == 'x', opts.get('k') != 'v', opts.get('k') in ('a', 'b').
func evalCondition(t *testing.T, expr, name string, opts map[string]any) bool {
	m := constraintR.FindStringSubmatch(expr)
	if m == nil {
		t.Fatalf("unsupported sample constraint %q", expr)
	}
	var left string
	if m[1] == "name" {
		left = name
	} else if v, ok := opts[m[2]]; ok && v != nil {
		left = fmt.Sprint(v)
	} else {
		left = "\x00none"
	}
	switch m[3] {
	case "==":
		return left == m[4]
	case "!=":
		return left != m[4]
	}
	in := false
	for _, v := range strings.Split(m[5], ",") {
		if strings.Trim(strings.TrimSpace(v), "'") == left {
			in = true
		}
	}
	return in == (m[3] == "in")
}

func TestFail2banSamples(t *testing.T) {
	logsDir := filepath.Join(f2bTests, "files", "logs")
	if _, err := os.Stat(logsDir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fail2ban sample logs missing at %s (CI=true): install the fail2ban package", logsDir)
		}
		t.Skipf("fail2ban sample logs not installed at %s: install the fail2ban package to run the compatibility suite", logsDir)
	}
	berlin, err := time.LoadLocation("Europe/Berlin") // fail2ban's tests run with TZ=CET-01CEST-02
	if err != nil {
		t.Fatalf("load Europe/Berlin: %v", err)
	}
	ref := time.Unix(f2bTestNowSec, 0).In(berlin)

	type target struct{ name, dir string }
	var targets []target
	confs, _ := filepath.Glob(filepath.Join(f2bConfig, "filter.d", "*.conf"))
	for _, c := range confs {
		n := strings.TrimSuffix(filepath.Base(c), ".conf")
		if strings.HasSuffix(n, "common") {
			continue
		}
		targets = append(targets, target{n, f2bConfig})
	}
	// fail2ban's own test filters include common.conf through a path
	// that only exists in its source tree; give them a copy next to
	// them, as its installer does.
	zzzDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(zzzDir, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	common, err := os.ReadFile(filepath.Join(f2bConfig, "filter.d", "common.conf"))
	if err != nil {
		t.Fatalf("read fail2ban's common.conf: %v", err)
	}
	if err := os.WriteFile(filepath.Join(zzzDir, "filter.d", "common.conf"), common, 0o644); err != nil {
		t.Fatal(err)
	}
	includeRE := regexp.MustCompile(`(?m)^before = .*common\.conf$`)
	zzz, _ := filepath.Glob(filepath.Join(f2bTests, "config", "filter.d", "zzz-*.conf"))
	for _, c := range zzz {
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		data = includeRE.ReplaceAll(data, []byte("before = common.conf"))
		if err := os.WriteFile(filepath.Join(zzzDir, "filter.d", filepath.Base(c)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, target{strings.TrimSuffix(filepath.Base(c), ".conf"), zzzDir})
	}

	stats := map[string]*suiteStats{}
	stat := func(k string) *suiteStats {
		if stats[k] == nil {
			stats[k] = &suiteStats{}
		}
		return stats[k]
	}
	for _, tg := range targets {
		if _, err := os.Stat(filepath.Join(logsDir, tg.name)); err != nil {
			continue // fail2ban has no sample for it either
		}
		runSampleFile(t, tg.name, []string{tg.dir}, logsDir, ref, berlin, stat)
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
	for _, k := range mustPass {
		s := stats[k]
		if s == nil || s.total == 0 {
			t.Errorf("must-pass filter %s: no samples were checked", k)
			continue
		}
		if s.pass != s.total {
			t.Errorf("must-pass filter %s: %d/%d sample lines pass, want all", k, s.pass, s.total)
		}
	}
	if rate < 95 {
		t.Errorf("overall sample pass rate %.1f%% (%d/%d), want >= 95%%", rate, pass, total)
	}
}

func runSampleFile(t *testing.T, name string, dirs []string, logsDir string, ref time.Time, loc *time.Location, stat func(string) *suiteStats) {
	filters := map[string]*suiteFilter{}
	readFilter := func(fltName string, opts map[string]any) *suiteFilter {
		if f, ok := filters[fltName]; ok {
			return f
		}
		vars := map[string]string{}
		for k, v := range opts {
			if !strings.HasPrefix(k, "test.") {
				vars[k] = fmt.Sprint(v)
			}
		}
		f, err := LoadFilter(dirs, name, vars)
		sf := &suiteFilter{name: fltName, f: f, opts: opts, err: err}
		if err == nil {
			sf.sc = f.NewScanner().(*scanner)
		}
		filters[fltName] = sf
		return sf
	}
	filenames := []string{name}
	commonOpts := map[string]any{}
	var tests []*suiteFilter
	for i := 0; i < len(filenames); i++ {
		file := filenames[i]
		key := name
		if file != name {
			key = name + "/" + file
		}
		fh, err := os.Open(filepath.Join(logsDir, file))
		if err != nil {
			t.Fatalf("open sample %s: %v", file, err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		ignoreBlock := false
		lnnum := 0
		var faildata map[string]any
		for sc.Scan() {
			line := sc.Text()
			lnnum++
			if m := annotRE.FindStringSubmatch(line); m != nil {
				var raw any
				if err := json.Unmarshal([]byte(m[2]), &raw); err != nil {
					t.Fatalf("%s:%d: bad JSON annotation: %v", file, lnnum, err)
				}
				switch m[1] {
				case "fileOptions":
					commonOpts = raw.(map[string]any)
					continue
				case "filterOptions":
					tests = nil
					ignoreBlock = false
					list, ok := raw.([]any)
					if !ok {
						list = []any{raw}
					}
					for _, o := range list {
						opts := map[string]any{}
						for k, v := range commonOpts {
							opts[k] = v
						}
						for k, v := range o.(map[string]any) {
							opts[k] = v
						}
						if c, ok := opts["test.condition"].(string); ok && c != "" {
							ignoreBlock = !evalCondition(t, strings.ReplaceAll(c, "==", " == "), name, opts)
						}
						if ignoreBlock {
							continue
						}
						fltName, _ := opts["test.filter-name"].(string)
						if fltName == "" {
							fltName = optsKey(opts)
						}
						tests = append(tests, readFilter(name+fltName, opts))
					}
					continue
				case "addFILE":
					filenames = append(filenames, raw.(string))
					continue
				}
				faildata = raw.(map[string]any)
				if !sc.Scan() {
					break
				}
				line = sc.Text()
				lnnum++
			} else if ignoreBlock || strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			} else {
				faildata = map[string]any{}
			}
			if ignoreBlock {
				continue
			}
			if len(tests) == 0 {
				tests = []*suiteFilter{readFilter(name, map[string]any{})}
			}
			line = strings.TrimRight(line, "\r\n")
			for _, ft := range tests {
				if c, ok := faildata["constraint"].(string); ok && c != "" && !evalCondition(t, c, name, ft.opts) {
					continue
				}
				st := stat(key)
				st.total++
				if reason := checkSample(ft, line, faildata, ref, loc); reason != "" {
					st.failures = append(st.failures, fmt.Sprintf("%s:%d [%s]: %s\n    %s", file, lnnum, ft.name, reason, line))
					continue
				}
				st.pass++
			}
		}
		fh.Close()
	}
}

// optsKey mimics fail2ban's str(dict) naming of option combinations, so
// the same options share one filter (and one scanner state).
func optsKey(opts map[string]any) string {
	var ks []string
	for k := range opts {
		if !strings.HasPrefix(k, "test.") {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return ""
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "[%s=%v]", k, opts[k])
	}
	return b.String()
}

func checkSample(ft *suiteFilter, line string, want map[string]any, ref time.Time, loc *time.Location) string {
	if ft.err != nil {
		return "filter does not load: " + ft.err.Error()
	}
	var rs []result
	if lt, _ := ft.opts["logtype"].(string); lt == "journal" {
		if p, ok := ft.opts["test.prefix-line"].(string); ok {
			line = p + line
		}
		d := ref
		_, rs = ft.sc.scan(line, ref, true, &d)
	} else {
		_, rs = ft.sc.scan(line, ref, true, nil)
	}
	var found []result
	for _, r := range rs {
		if r.pending || r.nofail {
			continue
		}
		found = append(found, r)
	}
	shouldMatch, _ := want["match"].(bool)
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
	logs := filepath.Join("..", "testdata", "filters")
	for _, name := range ShippedFilters() {
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
