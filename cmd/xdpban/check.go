package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/filter"
)

// checkRow is one enabled jail as `xdpban check` reports it.
type checkRow struct {
	Jail   string `json:"jail"`
	Loads  bool   `json:"loads"`
	Filter string `json:"filter"`
	// Scope is what the jail's bans drop: "all", or its port/protocol
	// ("tcp/22") for banscope = port.
	Scope    string   `json:"scope,omitempty"`
	Source   string   `json:"source"`
	Where    string   `json:"where"`
	Error    string   `json:"error,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Replaced []string `json:"replaced,omitempty"`
	// Slow lists the filter's expressions that need the backtracking
	// regex engine: they work, at a higher cost per line.
	Slow []string `json:"slow,omitempty"`
	// Warnings: the jail loads but may not see what it should (a
	// journalmatch blind to a distribution's unit or process name).
	Warnings []string `json:"warnings,omitempty"`
}

// cmdCheck loads a configuration the way the daemon would and prints one
// row per enabled jail: whether it loads, and what was not translated.
func cmdCheck(e *env, args []string) int {
	fs := e.newFlags("check")
	jsonOut := fs.Bool("json", false, "print a JSON array, one object per enabled jail")
	f2bDir := fs.String("fail2ban-config", "", "check fail2ban's configuration `DIR` (e.g. /etc/fail2ban) as xdpban would run it")
	pos, err := parseFlags(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(e.stdout, "usage: xdpban check [--fail2ban-config DIR] [--config DIR] [--json]")
			return exitOK
		}
		return e.fail("check", err)
	}
	if len(pos) != 0 {
		return e.fail("check", usageErr("unexpected argument %q: check takes only flags (--config DIR or --fail2ban-config DIR)", pos[0]))
	}

	cfg, err := loadConfig(e.config, *f2bDir)
	if err != nil {
		return e.fail("check", usageErr("%v", err))
	}
	from := *f2bDir
	if from == "" {
		from = e.config
	}
	if from == "" {
		from = DefaultConfigDir
		if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
			from = "built-in defaults (no " + DefaultConfigDir + ")"
		}
	}

	var rows []checkRow
	// Broken jails are listed even when not known to be enabled: a
	// misspelt "enabled = ture" is one of the ways to break a jail.
	for _, b := range cfg.Broken {
		rows = append(rows, checkRow{Jail: b.Name, Where: b.Source, Error: b.Err.Error()})
	}
	for _, j := range cfg.Enabled() {
		rows = append(rows, checkJail(cfg, j))
	}
	failed := 0
	for _, r := range rows {
		if !r.Loads {
			failed++
		}
	}

	if *jsonOut {
		if rows == nil {
			rows = []checkRow{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return e.fail("check", err)
		}
	} else {
		printCheck(e.stdout, from, cfg, rows)
	}
	if failed > 0 {
		fmt.Fprintf(e.stderr, "xdpban: check: %d of %d enabled jails do not load: fix the errors above\n", failed, len(rows))
		return exitUsage
	}
	return exitOK
}

// checkJail tries what the daemon will do with a jail: compile its
// filter and build its actions.
func checkJail(cfg *config.Config, j config.Jail) checkRow {
	r := checkRow{Jail: j.Name, Filter: j.Filter, Scope: j.Scope.String(), Where: j.Source, Notes: j.Notes, Replaced: j.Replaced}
	switch j.Backend {
	case "journal":
		r.Source = "journal " + strings.Join(j.JournalMatch, " ")
	default:
		r.Source = strings.Join(j.LogPaths, " ")
		if r.Source == "" {
			r.Source = "journal " + strings.Join(j.JournalMatch, " ")
		}
	}
	f, err := filter.Load(cfg.FilterDirs, j.Filter, j.FilterOptions)
	if err != nil {
		r.Error = "filter: " + j.FilterError(err).Error()
		return r
	}
	if len(j.JournalMatch) == 0 && j.Backend == "journal" && len(f.JournalMatch) == 0 {
		r.Error = "backend journal, but neither the jail nor filter " + j.FilterName + " has a journalmatch"
		return r
	}
	for _, b := range f.Backtracking() {
		r.Slow = append(r.Slow, clipLine(b, 120))
	}
	if strings.HasPrefix(r.Source, "journal ") {
		m := j.JournalMatch
		if len(m) == 0 {
			m = f.JournalMatch
		}
		for _, w := range filter.JournalBlindSpots(j.FilterName, m) {
			r.Warnings = append(r.Warnings, w+": add its terms (the shipped filter's journalmatch sees them all)")
		}
	}
	if _, err := actions.Build(j.Actions); err != nil {
		r.Error = err.Error()
		return r
	}
	r.Loads = true
	return r
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clipLine(s string, n int) string {
	s = oneLine(s)
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

func printCheck(w io.Writer, from string, cfg *config.Config, rows []checkRow) {
	fmt.Fprintf(w, "configuration: %s (%d files, %d jails, %d enabled)\n", from, len(cfg.Files), len(cfg.Jails)+len(cfg.Broken), len(rows))
	d := cfg.Daemon
	ifs := strings.Join(d.Interfaces, ",")
	if ifs == "" {
		ifs = "default-route interfaces"
	}
	fmt.Fprintf(w, "daemon: backend %s on %s, ipv6_prefix /%d, iptables chains %s (%s), ban log %s\n",
		orDash(d.Backend), ifs, d.IPv6Prefix, orDash(strings.Join(d.Chains, ",")), orDash(d.BlockType), orDash(d.BanLog))
	head := []string{"JAIL", "LOADS", "FILTER", "SCOPE", "LOGS"}
	width := make([]int, len(head))
	cells := make([][]string, 0, len(rows))
	for i := range head {
		width[i] = len(head[i])
	}
	for _, r := range rows {
		loads := "yes"
		if !r.Loads {
			loads = "NO"
		}
		c := []string{r.Jail, loads, orDash(r.Filter), orDash(r.Scope), orDash(r.Source)}
		for i := range c[:len(c)-1] {
			width[i] = max(width[i], len(c[i]))
		}
		cells = append(cells, c)
	}
	line := func(c []string) {
		var b strings.Builder
		for i, s := range c {
			if i == len(c)-1 {
				b.WriteString(s)
				break
			}
			fmt.Fprintf(&b, "%-*s  ", width[i], s)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(head)
	for i, r := range rows {
		line(cells[i])
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", oneLine(r.Error))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "    not translated: %s\n", oneLine(n))
		}
		for _, n := range r.Slow {
			fmt.Fprintf(w, "    slow regex (backtracking engine): %s\n", n)
		}
		for _, n := range r.Warnings {
			fmt.Fprintf(w, "    warning: %s\n", oneLine(n))
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no enabled jail: set enabled = true in jail.local)")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
