// Command xdpban is the banning daemon and its command-line client.
//
// Every subcommand is one entry in the commands table; other files in this
// package add their own entries (regex, check) so the dispatcher stays the
// one place that knows the command set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/xdpban/xdpban/internal/config"
)

// Exit codes shared by every subcommand.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure: the daemon, the kernel or a file said no
	exitUsage   = 2 // bad input: the operator must change the command line
)

// env is everything a command touches outside its arguments, so tests can
// run commands in-process with their own streams, environment and paths.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
	// geteuid is os.Geteuid; nil skips the root check (tests).
	geteuid func() int
	// ctx is cancelled on SIGINT/SIGTERM (main) or by the test.
	ctx context.Context

	// Global path flags; empty means the configured or built-in default.
	socket   string
	pinPath  string
	config   string
	stateDir string
	// flagSets are the subcommand flag sets made, for --help.
	flagSets []*flag.FlagSet
	// cfgDaemon caches the daemon settings read from --config.
	cfgDaemon *config.Daemon
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	fn      func(e *env, args []string) int
}

// commands is the subcommand table. Keep it sorted by how often an operator
// types the command; `xdpban help` prints it in this order.
var commands = []command{
	{"run", "run the daemon in the foreground", cmdRun},
	{"ban", "ban addresses or CIDRs (ban ADDR|CIDR... [--for D] [--jail J]); --from-file FILE|- bans one per line, all or nothing: any bad line is reported with its number and nothing is banned", cmdBan},
	{"unban", "lift a ban (unban ADDR|CIDR [--jail J], unban --all)", cmdUnban},
	{"list", "list active bans with their counters", cmdList},
	{"status", "show backend, interfaces, tables and jails (status [JAIL])", cmdStatus},
	{"reload", "reload the configuration of the running daemon (reload [JAIL])", cmdReload},
	{"watch", "stream drop events live (watch [--json] [ADDR|CIDR])", cmdWatch},
	{"check", "check a configuration: which jails load, what is not translated (check [--fail2ban-config DIR] [--json])", cmdCheck},
	{"regex", "test a filter or failregex on a log or line (regex LOG|LINE FILTER|REGEX [--json] [--jail NAME])", cmdRegex},
	{"detach", "remove the XDP program, maps and firewall rules xdpban installed", cmdDetach},
}

// summaries is the table's help text by name (read by commandHelp, which
// the commands call: reading commands there would be an init cycle).
var summaries = map[string]string{}

func init() {
	for _, c := range commands {
		summaries[c.name] = c.summary
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		stdin:   os.Stdin,
		getenv:  os.Getenv,
		geteuid: os.Geteuid,
		ctx:     ctx,
	}
	code := run(e, os.Args[1:])
	stop()
	os.Exit(code)
}

// errUsage marks errors that are the operator's to fix (exit 2).
var errUsage = errors.New("usage")

// errHelp: -h/--help was asked for; fail prints the command's help on
// stdout and exits 0.
var errHelp = errors.New("help requested")

// usageErr is a bad-input error: printed as one line, exit 2.
func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// fail prints err as the one-line `xdpban: <what>: <why>` and returns the
// exit code that goes with it.
func (e *env) fail(what string, err error) int {
	if errors.Is(err, errHelp) {
		e.commandHelp(what)
		return exitOK
	}
	msg := err.Error()
	code := exitFailure
	if errors.Is(err, errUsage) {
		code = exitUsage
		msg = strings.TrimPrefix(msg, errUsage.Error()+": ")
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	if what == "" {
		fmt.Fprintf(e.stderr, "xdpban: %s\n", msg)
	} else {
		fmt.Fprintf(e.stderr, "xdpban: %s: %s\n", what, msg)
	}
	return code
}

// globalFlags registers the path flags on fs so they are accepted both
// before the subcommand and among its own flags.
func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.socket, "socket", e.socket, "control socket `PATH` (default /run/xdpban/xdpban.sock)")
	fs.StringVar(&e.pinPath, "pin-path", e.pinPath, "bpffs pin `DIR` (default /sys/fs/bpf/xdpban)")
	fs.StringVar(&e.config, "config", e.config, "configuration `DIR` (default /etc/xdpban)")
	fs.StringVar(&e.stateDir, "state-dir", e.stateDir, "state `DIR` holding the ban database (default /var/lib/xdpban)")
}

// newFlags returns a flag set for a subcommand with the global flags on it.
// Its output goes to stderr; errors are returned, never exit.
func (e *env) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("xdpban "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e.globalFlags(fs)
	e.flagSets = append(e.flagSets, fs)
	return fs
}

// commandHelp prints a command's summary, flags (in --flag form, as
// they are typed) and examples.
func (e *env) commandHelp(name string) {
	if s, ok := summaries[name]; ok {
		fmt.Fprintf(e.stdout, "xdpban %s: %s\n", name, s)
	}
	for _, fs := range e.flagSets {
		if fs.Name() != "xdpban "+name {
			continue
		}
		var own, global []string
		fs.VisitAll(func(f *flag.Flag) {
			line := flagLine(f)
			if isGlobalFlag(f.Name) {
				global = append(global, line)
			} else {
				own = append(own, line)
			}
		})
		if len(own) > 0 {
			fmt.Fprintln(e.stdout, "\nflags:")
			for _, l := range own {
				fmt.Fprintln(e.stdout, l)
			}
		}
		fmt.Fprintln(e.stdout, "\nglobal flags:")
		for _, l := range global {
			fmt.Fprintln(e.stdout, l)
		}
		break
	}
	if ex := examples[name]; len(ex) > 0 {
		fmt.Fprintln(e.stdout, "\nexamples:")
		for _, l := range ex {
			fmt.Fprintf(e.stdout, "  %s\n", l)
		}
	}
}

// flagLine renders one flag as "  --name ARG   usage (default x)".
func flagLine(f *flag.Flag) string {
	arg, usage := flag.UnquoteUsage(f)
	name := "--" + f.Name
	if arg != "" {
		name += " " + arg
	}
	if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" && !strings.Contains(usage, "default") {
		usage += " (default " + d + ")"
	}
	return fmt.Sprintf("  %-22s %s", name, usage)
}

func isGlobalFlag(name string) bool {
	switch name {
	case "socket", "pin-path", "config", "state-dir":
		return true
	}
	return false
}

// examples are shown by `xdpban CMD --help` and in xdpban(8).
var examples = map[string][]string{
	"run":    {"xdpban run", "xdpban run --iface eth0 --iface eth1 --backend nftables", "xdpban run --fail2ban-config /etc/fail2ban --dry-run"},
	"ban":    {"xdpban ban 192.0.2.7 --for 1h", "xdpban ban 198.51.100.0/24 2001:db8::/48", "xdpban ban 203.0.113.9 --jail sshd", "xdpban ban --from-file bans.txt"},
	"unban":  {"xdpban unban 192.0.2.7", "xdpban unban --all --jail sshd"},
	"list":   {"xdpban list", "xdpban list 192.0.2.7        # exit 1 when not banned", "xdpban list --jail sshd --json"},
	"status": {"xdpban status", "xdpban status sshd --json"},
	"reload": {"xdpban reload", "xdpban reload sshd"},
	"watch":  {"xdpban watch", "xdpban watch 192.0.2.0/24 --json"},
	"check":  {"xdpban check", "xdpban check --fail2ban-config /etc/fail2ban --json"},
	"regex":  {"xdpban regex /var/log/auth.log sshd", "xdpban regex 'Failed password for root from 192.0.2.7 port 22 ssh2' sshd", "xdpban regex /var/log/auth.log sshd --jail sshd --json"},
	"detach": {"xdpban detach"},
	"ping":   {"xdpban ping", "xdpban ping --json"},
}

// parseFlags parses args allowing flags after positional arguments
// (`xdpban ban 192.0.2.7 --for 1h`), which the flag package alone does
// not. "--" ends flag parsing.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			// fail already names the command: "xdpban: ban: <flag error>".
			return nil, usageErr("%v: see '%s --help'", err, fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at "--" after consuming it; everything after is positional.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func run(e *env, args []string) int {
	// Libraries log through slog's default (the loader's detach, for
	// one); a client command prints its one result line and nothing
	// else. `run` installs the daemon's own logger as the default.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if e.ctx == nil {
		e.ctx = context.Background()
	}
	if e.getenv == nil {
		e.getenv = func(string) string { return "" }
	}
	if e.stdin == nil {
		e.stdin = strings.NewReader("")
	}
	fs := flag.NewFlagSet("xdpban", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e.globalFlags(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(e.stdout)
			return exitOK
		}
		return e.fail("", usageErr("%v: see 'xdpban help'", err))
	}
	if *showVersion {
		return cmdVersion(e, nil)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == name {
			return c.fn(e, rest[1:])
		}
	}
	return e.fail("", usageErr("unknown command %q: run 'xdpban help' for the list", name))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: xdpban [--socket PATH] [--pin-path DIR] [--config DIR] [--state-dir DIR] COMMAND [ARGS]")
	fmt.Fprintln(w, "       xdpban --version")
	fmt.Fprintln(w, "\ncommands:")
	cs := append([]command(nil), commands...)
	width := 0
	for _, c := range cs {
		width = max(width, len(c.name))
	}
	for _, c := range cs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
}
