// Package samplelog reads sample logs in fail2ban's annotated format
// (fail2ban/tests/files/logs): log lines, each optionally preceded by
// "# failJSON: {...}" saying what a filter must make of it, with
// "# filterOptions:" selecting the filter modes a block is run with,
// "# fileOptions:" and "# addFILE:". fail2ban's own sample suite and
// xdpban's testdata/filters use it; the rules follow fail2ban's
// tests/samplestestcase.py.
package samplelog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Where Debian's fail2ban package installs its test suite, and the
// clock and zone the suite runs at: TEST_NOW (2005-08-14 10:00 UTC) in
// TZ=CET-01CEST-02, where yearless dates take their year and zoneless
// ones their zone.
const (
	Fail2banTests  = "/usr/lib/python3/dist-packages/fail2ban/tests"
	Fail2banTestTZ = "Europe/Berlin"
)

// Fail2banTestNow is the suite's TEST_NOW.
var Fail2banTestNow = time.Unix(1124013600, 0)

// MustPass are the filters whose every sample annotation must pass
// (issue 7), in each place the suite runs (the engine, and `xdpban
// regex` as a process); MinPassRate is what all filters must reach
// together, in percent.
var MustPass = []string{
	"sshd", "sshd/sshd-journal", "nginx-http-auth", "nginx-limit-req",
	"apache-auth", "postfix", "dovecot", "vsftpd", "recidive",
}

const MinPassRate = 95.0

// Case is one log line and what the filter must make of it.
type Case struct {
	// Key is what the pass rate is reported under: the filter name, or
	// "filter/file" for a file the sample adds with addFILE.
	Key    string
	File   string
	LineNo int // 1-based, in File
	Text   string
	// Want is the failJSON annotation ("match", "host", "time", "user",
	// ...); empty for a line without one, which must not match.
	Want map[string]any
}

// Match reports whether the line must match.
func (c Case) Match() bool {
	m, _ := c.Want["match"].(bool)
	return m
}

// Str is a string field of the annotation ("" when absent).
func (c Case) Str(k string) string {
	s, _ := c.Want[k].(string)
	return s
}

// Run is one filter instance (a filter with one set of options) and the
// lines it is fed, in order: its matching state carries from one line to
// the next as when it follows a log.
type Run struct {
	Filter string
	// ID names the instance: fail2ban's test.filter-name or the
	// options, so blocks with the same options share one instance.
	ID    string
	Opts  map[string]any
	Cases []Case
}

// Vars are the options passed to the filter (test.* keys are for the
// harness, not the filter).
func (r *Run) Vars() map[string]string {
	v := map[string]string{}
	for k, o := range r.Opts {
		if !strings.HasPrefix(k, "test.") {
			v[k] = fmt.Sprint(o)
		}
	}
	return v
}

// Spec is the filter reference with its options, as a jail or `xdpban
// regex` writes it: sshd[logtype=journal, mode=aggressive].
func (r *Run) Spec() string {
	v := r.Vars()
	if len(v) == 0 {
		return r.Filter
	}
	var args []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		val := v[k]
		if !plainValue.MatchString(val) {
			val = strconv.Quote(val)
		}
		args = append(args, k+"="+val)
	}
	return r.Filter + "[" + strings.Join(args, ", ") + "]"
}

// Journal reports whether the run reads journal messages: the lines
// carry no date of their own.
func (r *Run) Journal() bool {
	lt, _ := r.Opts["logtype"].(string)
	return lt == "journal"
}

var (
	plainValue  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	annotRE     = regexp.MustCompile(`^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$`)
	constraintR = regexp.MustCompile(`^\s*(name|opts\.get\('([^']+)'\))\s*(==|!=|not in|in)\s*(?:'([^']*)'|\(([^)]*)\))\s*$`)
)

// condition evaluates the constraint forms fail2ban's sample logs use:
// name == 'x', opts.get('k') != 'v', opts.get('k') in ('a', 'b').
func condition(expr, name string, opts map[string]any) (bool, error) {
	m := constraintR.FindStringSubmatch(expr)
	if m == nil {
		return false, fmt.Errorf("unsupported sample constraint %q", expr)
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
		return left == m[4], nil
	case "!=":
		return left != m[4], nil
	}
	in := false
	for _, v := range strings.Split(m[5], ",") {
		if strings.Trim(strings.TrimSpace(v), "'") == left {
			in = true
		}
	}
	return in == (m[3] == "in"), nil
}

// optsID mimics fail2ban's str(dict) naming of option combinations.
func optsID(opts map[string]any) string {
	var ks []string
	for k := range opts {
		if !strings.HasPrefix(k, "test.") {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "[%s=%v]", k, opts[k])
	}
	return b.String()
}

// Read parses dir/name (and the files it adds) for filter name, and
// returns its runs in the order they first appear.
func Read(dir, name string) ([]*Run, error) {
	runs := map[string]*Run{}
	var order []*Run
	run := func(opts map[string]any) *Run {
		id, _ := opts["test.filter-name"].(string)
		if id == "" {
			id = optsID(opts)
		}
		if r, ok := runs[id]; ok {
			return r
		}
		r := &Run{Filter: name, ID: id, Opts: opts}
		runs[id] = r
		order = append(order, r)
		return r
	}
	files := []string{name}
	common := map[string]any{}
	var active []*Run
	for i := 0; i < len(files); i++ {
		file := files[i]
		key := name
		if file != name {
			key = name + "/" + file
		}
		if err := readFile(dir, file, name, key, &common, &active, run, &files); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func readFile(dir, file, name, key string, common *map[string]any, active *[]*Run, run func(map[string]any) *Run, files *[]string) error {
	fh, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		return fmt.Errorf("sample log: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	ignoreBlock := false
	lnnum := 0
	for sc.Scan() {
		line := sc.Text()
		lnnum++
		var want map[string]any
		if m := annotRE.FindStringSubmatch(line); m != nil {
			var raw any
			if err := json.Unmarshal([]byte(m[2]), &raw); err != nil {
				return fmt.Errorf("%s:%d: bad JSON in %s annotation: %w", file, lnnum, m[1], err)
			}
			switch m[1] {
			case "fileOptions":
				o, ok := raw.(map[string]any)
				if !ok {
					return fmt.Errorf("%s:%d: fileOptions: want a JSON object", file, lnnum)
				}
				*common = o
				continue
			case "filterOptions":
				*active = nil
				ignoreBlock = false
				list, ok := raw.([]any)
				if !ok {
					list = []any{raw}
				}
				for _, o := range list {
					om, ok := o.(map[string]any)
					if !ok {
						return fmt.Errorf("%s:%d: filterOptions: want JSON objects", file, lnnum)
					}
					opts := map[string]any{}
					for k, v := range *common {
						opts[k] = v
					}
					for k, v := range om {
						opts[k] = v
					}
					if c, ok := opts["test.condition"].(string); ok && c != "" {
						ok, err := condition(strings.ReplaceAll(c, "==", " == "), name, opts)
						if err != nil {
							return fmt.Errorf("%s:%d: %w", file, lnnum, err)
						}
						ignoreBlock = !ok
					}
					if ignoreBlock {
						continue
					}
					*active = append(*active, run(opts))
				}
				continue
			case "addFILE":
				f, ok := raw.(string)
				if !ok {
					return fmt.Errorf("%s:%d: addFILE: want a JSON string", file, lnnum)
				}
				*files = append(*files, f)
				continue
			}
			w, ok := raw.(map[string]any)
			if !ok {
				return fmt.Errorf("%s:%d: failJSON: want a JSON object", file, lnnum)
			}
			want = w
			if !sc.Scan() {
				break
			}
			line = sc.Text()
			lnnum++
		} else if ignoreBlock || strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		} else {
			want = map[string]any{}
		}
		if ignoreBlock {
			continue
		}
		if len(*active) == 0 {
			*active = []*Run{run(map[string]any{})}
		}
		line = strings.TrimRight(line, "\r\n")
		for _, r := range *active {
			if c, ok := want["constraint"].(string); ok && c != "" {
				ok, err := condition(c, name, r.Opts)
				if err != nil {
					return fmt.Errorf("%s:%d: %w", file, lnnum, err)
				}
				if !ok {
					continue
				}
			}
			text := line
			if p, ok := r.Opts["test.prefix-line"].(string); ok && r.Journal() {
				text = p + line
			}
			r.Cases = append(r.Cases, Case{Key: key, File: file, LineNo: lnnum, Text: text, Want: want})
		}
	}
	return sc.Err()
}

// Target is a filter the suite runs: its name and the configuration
// directory whose filter.d holds it.
type Target struct{ Name, Dir string }

var includeCommon = regexp.MustCompile(`(?m)^before = .*common\.conf$`)

// Targets lists the stock filters of the fail2ban tree conf (every
// filter.d/*.conf but the *common includes), then fail2ban's own test
// filters (testFilters/zzz-*.conf). Those include common.conf through a
// path that only exists in fail2ban's source tree, so they are copied
// into scratch/filter.d beside a copy of conf's common.conf, as its
// installer does, and listed under scratch.
func Targets(conf, testFilters, scratch string) ([]Target, error) {
	var out []Target
	confs, err := filepath.Glob(filepath.Join(conf, "filter.d", "*.conf"))
	if err != nil {
		return nil, err
	}
	for _, c := range confs {
		if n := strings.TrimSuffix(filepath.Base(c), ".conf"); !strings.HasSuffix(n, "common") {
			out = append(out, Target{n, conf})
		}
	}
	zzz, _ := filepath.Glob(filepath.Join(testFilters, "zzz-*.conf"))
	if len(zzz) == 0 {
		return out, nil
	}
	dir := filepath.Join(scratch, "filter.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	common, err := os.ReadFile(filepath.Join(conf, "filter.d", "common.conf"))
	if err != nil {
		return nil, fmt.Errorf("read fail2ban's common.conf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "common.conf"), common, 0o644); err != nil {
		return nil, err
	}
	for _, c := range zzz {
		data, err := os.ReadFile(c)
		if err != nil {
			return nil, err
		}
		data = includeCommon.ReplaceAll(data, []byte("before = common.conf"))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(c)), data, 0o644); err != nil {
			return nil, err
		}
		out = append(out, Target{strings.TrimSuffix(filepath.Base(c), ".conf"), scratch})
	}
	return out, nil
}
