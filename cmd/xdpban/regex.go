package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch"
	"github.com/xdpban/xdpban/logwatch/filter"
	"github.com/xdpban/xdpban/logwatch/pyre"
)

// plainFilter is what a filter name (with optional [args]) looks like;
// anything else given as FILTER is a regex.
var plainFilter = regexp.MustCompile(`^[A-Za-z0-9_.-]+(\[.*\])?$`)

// cmdRegex is xdpban's fail2ban-regex: test a filter or a failregex on a
// log file or a single line, optionally replayed through a jail.
func cmdRegex(e *env, args []string) int {
	fs := e.newFlags("regex")
	jsonOut := fs.Bool("json", false, "print one JSON object: lines, matched, missed, ignored, elapsed_s, matches")
	jailName := fs.String("jail", "", "replay the log through jail `NAME`'s maxretry/findtime/bantime and list the bans")
	f2bDir := fs.String("fail2ban-config", "", "read jails and filters from fail2ban's configuration `DIR` (e.g. /etc/fail2ban)")
	nowFlag := fs.String("now", "", "take `TIME` (RFC 3339) as the current time when inferring the year of dates without one, to replay a log from an earlier year")
	pos, err := parseFlags(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(e.stdout, "usage: xdpban regex LOG|LINE FILTER|REGEX [--json] [--jail NAME] [--now TIME] [--config DIR] [--fail2ban-config DIR]")
			return exitOK
		}
		return e.fail("regex", err)
	}
	if len(pos) < 1 || len(pos) > 2 || (len(pos) == 1 && *jailName == "") {
		return e.fail("regex", usageErr("want LOG|LINE and FILTER|REGEX (FILTER may be left out with --jail): xdpban regex /var/log/auth.log sshd"))
	}

	var ref time.Time
	if *nowFlag != "" {
		ref, err = time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return e.fail("regex", usageErr("--now %q: want an RFC 3339 time such as 2024-12-31T23:00:00Z", *nowFlag))
		}
		// Dates without a zone are read in the zone of the reference
		// time: keep that the local one, as without --now.
		ref = ref.Local()
	}

	var cfg *config.Config
	var jail *config.Jail
	if *jailName != "" || *f2bDir != "" {
		if *f2bDir != "" {
			cfg, err = config.LoadFail2ban(*f2bDir)
		} else {
			cfg, err = config.Load(e.config)
		}
		if err != nil {
			return e.fail("regex", usageErr("%v", err))
		}
	}
	if *jailName != "" {
		for i := range cfg.Jails {
			if cfg.Jails[i].Name == *jailName {
				jail = &cfg.Jails[i]
			}
		}
		if jail == nil {
			return e.fail("regex", usageErr("unknown jail %q: it is not in %s", *jailName, configName(e.config, *f2bDir)))
		}
	}

	var flt *filter.Filter
	if len(pos) == 2 {
		flt, err = regexFilter(cfg, e.config, pos[1])
	} else {
		flt, err = filter.Load(filterDirs(cfg, e.config), jail.Filter, jail.FilterOptions)
		if err != nil {
			err = jail.FilterError(err)
		}
	}
	if err != nil {
		return e.fail("regex", usageErr("%v", err))
	}

	in, name, closeIn, err := regexInput(e, pos[0])
	if err != nil {
		return e.fail("regex", err)
	}
	defer closeIn()
	sample := &headBuf{max: 64 << 10}
	in = io.TeeReader(in, sample)
	// The text report prints counts and addresses, not every match.
	opt := logwatch.ReplayOptions{Jail: jail, Ref: ref, CountOnly: !*jsonOut}
	if cfg != nil {
		opt.Widen = bans.Widen{IPv6: cfg.Daemon.IPv6Prefix}
	}
	// A replay is a short batch job whose matches are kept to the end:
	// collecting less often buys ~10% of throughput for a few times the
	// live heap. GOGC set by the operator wins.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	// A single-line filter's lines are matched on every core; the jail
	// replay and the counts still see them in file order.
	if flt.LineIndependent() {
		opt.NewScanner, opt.Workers = flt.NewScanner, runtime.GOMAXPROCS(0)
	}
	before := flt.Timeouts()
	res, err := logwatch.Replay(in, flt.NewScanner(), opt)
	if err != nil {
		return e.fail("regex", fmt.Errorf("%s: %w", name, err))
	}
	res.Timeouts = flt.Timeouts() - before
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		if err := enc.Encode(res); err != nil {
			return e.fail("regex", err)
		}
		return exitOK
	}
	printReplay(e.stdout, name, flt, res, jail)
	if res.Matched == 0 && looksRFC5424(sample.b.String()) {
		spec := flt.Name
		if len(pos) == 2 {
			spec = pos[1]
		}
		if !strings.Contains(spec, "logtype") {
			fmt.Fprintf(e.stdout, "\nHint: the lines look like RFC 5424 syslog (<PRI>1 TIMESTAMP HOST APP PID MSGID ...), which needs logtype=rfc5424: try %s\n", withArg(spec, "logtype=rfc5424"))
		}
	}
	return exitOK
}

// headBuf keeps the first max bytes written to it (a sample of the log).
type headBuf struct {
	b   strings.Builder
	max int
}

func (h *headBuf) Write(p []byte) (int, error) {
	if room := h.max - h.b.Len(); room > 0 {
		h.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

var rfc5424Line = regexp.MustCompile(`^<\d{1,3}>1 \d{4}-\d\d-\d\dT`)

// looksRFC5424 reports whether most sampled lines are RFC 5424 syslog,
// which fail2ban's filters (and so xdpban's) only read with
// logtype=rfc5424: without it every line misses, silently.
func looksRFC5424(sample string) bool {
	n, hits := 0, 0
	for _, l := range strings.Split(sample, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		n++
		if rfc5424Line.MatchString(l) {
			hits++
		}
	}
	return n > 0 && hits*2 > n
}

// withArg adds key=value to a filter spec: sshd → sshd[logtype=rfc5424],
// sshd[mode=aggressive] → sshd[mode=aggressive, logtype=rfc5424].
func withArg(spec, kv string) string {
	if strings.HasSuffix(spec, "]") {
		return strings.TrimSuffix(spec, "]") + ", " + kv + "]"
	}
	return spec + "[" + kv + "]"
}

func configName(dir, f2b string) string {
	switch {
	case f2b != "":
		return f2b
	case dir != "":
		return dir
	}
	return "the built-in configuration (pass --config DIR)"
}

func filterDirs(cfg *config.Config, dir string) []string {
	if cfg != nil {
		return cfg.FilterDirs
	}
	if dir != "" {
		return []string{dir}
	}
	return nil
}

// regexFilter loads FILTER as a filter name/spec or file, or compiles it
// as a failregex when it does not look like one.
func regexFilter(cfg *config.Config, dir, arg string) (*filter.Filter, error) {
	isFile := strings.HasSuffix(arg, ".conf") || strings.HasSuffix(arg, ".local")
	if plainFilter.MatchString(arg) || isFile {
		f, err := filter.Load(filterDirs(cfg, dir), arg, nil)
		if err == nil {
			return f, nil
		}
		if errors.Is(err, filter.ErrNotFound) {
			return nil, fmt.Errorf("unknown filter %q: name one from filter.d (e.g. sshd) or give a failregex with <HOST>", arg)
		}
		return nil, err
	}
	return filter.CompileRegex(arg)
}

// regexInput opens LOG, or wraps LINE when the argument is not a file. A
// path-like argument that does not exist is an error, not a log line.
func regexInput(e *env, arg string) (io.Reader, string, func(), error) {
	if arg == "-" {
		return e.stdin, "stdin", func() {}, nil
	}
	f, err := os.Open(arg)
	if err == nil {
		st, serr := f.Stat()
		if serr == nil && st.IsDir() {
			f.Close()
			return nil, "", nil, usageErr("log %s is a directory: give a log file or a line", arg)
		}
		return f, arg, func() { f.Close() }, nil
	}
	pathLike := !strings.ContainsAny(arg, " \t") && (strings.Contains(arg, "/") || strings.HasSuffix(arg, ".log"))
	if errors.Is(err, fs.ErrNotExist) && !pathLike {
		return strings.NewReader(arg), "line", func() {}, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil, usageErr("log file %s not found: give an existing file, '-' for stdin, or a quoted log line", arg)
	}
	return nil, "", nil, usageErr("log file %s: %v", arg, err)
}

func printReplay(w io.Writer, name string, f *filter.Filter, r *logwatch.ReplayResult, j *config.Jail) {
	fmt.Fprintf(w, "Running tests\n=============\n\nUse filter: %s (%s)\nUse log:    %s\n\n", f.Name, f.Source, name)
	fmt.Fprintf(w, "Lines: %d lines, %d ignored, %d matched, %d missed, %d skipped\n", r.Lines, r.Ignored, r.Matched, r.Missed, r.Skipped)
	if r.Timeouts > 0 {
		fmt.Fprintf(w, "Timeouts: %d lines given up on after %s of backtracking each (counted as missed; the daemon does the same and exports xdpban_regex_timeouts_total)\n", r.Timeouts, pyre.DefaultMatchTimeout)
	}
	fmt.Fprintf(w, "[processed in %.2f sec, %.0f lines/s]\n", r.ElapsedS, r.LinesPerSecond())
	if len(r.Hosts) > 0 {
		fmt.Fprintf(w, "\nMatches per address (%d):\n", len(r.Hosts))
		const show = 50
		for i, h := range r.Hosts {
			if i == show {
				fmt.Fprintf(w, "  ... %d more (use --json for all)\n", len(r.Hosts)-show)
				break
			}
			fmt.Fprintf(w, "  %-40s %d\n", h.Host, h.Matches)
		}
	}
	if j == nil {
		return
	}
	bt := shortDuration(j.BanTime)
	if j.BanTime < 0 {
		bt = "permanent"
	}
	fmt.Fprintf(w, "\nJail %s (maxretry %d, findtime %s, bantime %s): %d bans\n", j.Name, j.MaxRetry, shortDuration(j.FindTime), bt, len(r.Bans))
	for _, b := range r.Bans {
		dur := "permanently"
		if b.BanSecs >= 0 {
			dur = "for " + shortDuration(time.Duration(b.BanSecs*float64(time.Second))) + " until " + b.Until.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  %s banned at %s %s (%d failures, line %d)\n", b.Prefix, b.At.Format(time.RFC3339), dur, b.Failures, b.Line)
	}
}
