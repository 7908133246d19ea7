package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/logwatch"
	"github.com/xdpban/xdpban/logwatch/corpus"
)

// The filter corpus (logwatch/filter/testdata/corpus: lines composed from the
// daemons' own format strings, each with the verdict every mode must
// reach) through `xdpban regex` as a separate process, and through
// Debian's fail2ban-regex with fail2ban's stock filter of the same name
// and mode. xdpban must reach the corpus's verdict on every line, and
// count every line fail2ban counts (with the right address, whatever
// address fail2ban took), except lines the corpus marks f2b-wrong:
// failures that are the server's fault, which fail2ban counts.

const corpusDir = "../../logwatch/filter/testdata/corpus"

type corpusCount struct {
	filter, mode, variant              string
	lines, want, xdpban, f2b, f2bWrong int
}

func TestCorpusRegexAndFail2ban(t *testing.T) {
	f2b, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fail2ban-regex missing (CI=true): make deps installs the fail2ban package")
		}
		t.Skip("fail2ban-regex not installed: make deps installs the fail2ban package")
	}
	files, err := corpus.Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	emptyConf := filepath.Join(work, "etc")
	if err := os.Mkdir(emptyConf, 0o755); err != nil {
		t.Fatal(err)
	}
	var table []corpusCount
	for _, f := range files {
		for _, mode := range f.Modes {
			for _, variant := range corpus.Variants(f.Kind) {
				if variant == "journal" {
					continue // the engine test covers it; files only here
				}
				lines, err := f.Render(variant, nil)
				if err != nil {
					t.Fatal(err)
				}
				log := filepath.Join(work, fmt.Sprintf("%s-%s-%s.log", strings.TrimSuffix(filepath.Base(f.Path), ".corpus"), mode, variant))
				if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				spec := fmt.Sprintf("%s[mode=%s]", f.Filter, mode)
				xd := xdpbanRegex(t, emptyConf, log, spec, len(lines))
				fb := fail2banRegex(t, f2b, log, fmt.Sprintf("/etc/fail2ban/filter.d/%s.conf[mode=%s]", f.Filter, mode), len(lines))
				c := corpusCount{filter: f.Filter, mode: mode, variant: variant, lines: len(lines)}
				for i, e := range f.Entries {
					where := fmt.Sprintf("%s:%d %s %s", e.File, e.LineNo, spec, variant)
					got, matched := xd[i]
					if e.Counts(mode) {
						c.want++
					}
					switch {
					case e.Counts(mode) && matched && got == e.Host:
						c.xdpban++
					case e.Counts(mode):
						t.Errorf("%s: xdpban regex found %v (matched %v), want %s\n    %s", where, got, matched, e.Host, lines[i])
					case matched && !(e.Self.IsValid() && got == e.Self):
						t.Errorf("%s: xdpban regex counted %v, want no failure\n    %s", where, got, lines[i])
					}
					fa, fmatched := fb[i]
					if !fmatched {
						continue
					}
					c.f2b++
					switch {
					case e.F2BWrong:
						c.f2bWrong++ // counted by fail2ban, the server's fault
					case !e.Counts(mode):
						t.Errorf("%s: fail2ban-regex counts this line (%v), xdpban's %s does not; fix the filter or mark the entry f2b-wrong\n    %s", where, fa, spec, lines[i])
					case fa != e.Host:
						c.f2bWrong++ // fail2ban took the wrong address; xdpban is checked above
					}
				}
				table = append(table, c)
			}
		}
	}
	// The table for the record: lines each mode must count, what xdpban
	// and fail2ban counted (fail2ban's wrong ones: server-side failures
	// it counts, or a planted address it took).
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-16s %-10s %-8s %5s %6s %6s %9s %9s\n", "FILTER", "MODE", "PREFIX", "LINES", "WANT", "XDPBAN", "FAIL2BAN", "F2B-WRONG")
	sort.SliceStable(table, func(i, j int) bool { return table[i].filter < table[j].filter })
	for _, c := range table {
		fmt.Fprintf(&b, "%-16s %-10s %-8s %5d %6d %6d %9d %9d\n", c.filter, c.mode, c.variant, c.lines, c.want, c.xdpban, c.f2b, c.f2bWrong)
	}
	t.Log(b.String())
}

// xdpbanRegex runs `xdpban regex --json` on log and returns the address
// it captured per 0-based line.
func xdpbanRegex(t *testing.T, conf, log, spec string, n int) map[int]netip.Addr {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--config", conf, "regex", "--json", "--now", corpus.Base.Add(24*time.Hour).Format(time.RFC3339), log, spec)
	cmd.Env = append(os.Environ(), "XDPBAN_TEST_AS_MAIN=1", "TZ=UTC")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xdpban regex %s %s: %v: %s", log, spec, err, stderr.String())
	}
	var res struct {
		Lines   int                    `json:"lines"`
		Matches []logwatch.ReplayMatch `json:"matches"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("xdpban regex --json: %v\n%s", err, out)
	}
	if res.Lines != n {
		t.Fatalf("xdpban regex %s read %d lines of %d", log, res.Lines, n)
	}
	got := map[int]netip.Addr{}
	for _, m := range res.Matches {
		a, _ := netip.ParseAddr(m.Host)
		if _, dup := got[m.Line-1]; dup {
			t.Errorf("xdpban regex %s: line %d matched twice", spec, m.Line)
		}
		got[m.Line-1] = a.Unmap()
	}
	return got
}

// f2bRow is the start of one fail2ban-regex --out row line: the address
// and the failure's time.
var f2bRow = regexp.MustCompile(`^\['([^']*)',\s*([0-9.]+),`)

// fail2banRegex runs fail2ban-regex --out row and returns the address of
// each failure by 0-based line: line i of a corpus rendering is dated
// corpus.Base + i seconds (the date of syslog lines is read as this year
// by fail2ban, so only the time of day names the line).
func fail2banRegex(t *testing.T, bin, log, filter string, n int) map[int]netip.Addr {
	t.Helper()
	cmd := exec.Command(bin, "--out", "row", log, filter)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex %s %s: %v\n%s", log, filter, err, out)
	}
	base := corpus.Base.Hour()*3600 + corpus.Base.Minute()*60 + corpus.Base.Second()
	got := map[int]netip.Addr{}
	for _, l := range strings.Split(string(out), "\n") {
		m := f2bRow.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		sec, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("fail2ban-regex row %q: %v", l, err)
		}
		i := int(int64(sec)%86400) - base
		if i < 0 || i >= n {
			t.Fatalf("fail2ban-regex row %q: time names no line of %s", l, log)
		}
		a, err := netip.ParseAddr(m[1])
		if err != nil {
			a = netip.Addr{} // a name: never an address
		}
		got[i] = a.Unmap()
	}
	return got
}
