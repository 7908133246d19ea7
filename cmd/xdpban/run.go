package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/banlog"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch"
	"github.com/xdpban/xdpban/logwatch/filter"
)

// stringList is a repeatable flag (--iface a --iface b, or --iface a,b).
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// gcPercent is the daemon's GOGC unless the environment sets one.
const gcPercent = 50

func cmdRun(e *env, args []string) int {
	fs := e.newFlags("run")
	var ifaces stringList
	fs.Var(&ifaces, "iface", "protect interface `IFACE` (repeatable; default: the default-route interfaces)")
	backend := fs.String("backend", "", "enforcement `BACKEND`: auto, xdp, nftables or iptables (default from config, else auto)")
	dryRun := fs.Bool("dry-run", false, "watch logs and report decisions; enforce and store nothing")
	detachOnExit := fs.Bool("detach-on-exit", false, "remove enforcement when the daemon stops (default: keep dropping)")
	f2b := fs.String("fail2ban-config", "", "read fail2ban's configuration `DIR` (e.g. /etc/fail2ban) instead of xdpban's")
	logFormat := fs.String("log-format", "", "log format: text or json (default from config, else text)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (default from config, else info)")
	banLog := fs.String("banlog", "", "ban log `FILE` in fail2ban's format (default from config, else "+banlog.DefaultPath+"; none for no file)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("run", err)
	}
	if len(pos) > 0 {
		return e.fail("run", usageErr("unexpected argument %q: usage: xdpban run [--iface IFACE ...] [flags]", pos[0]))
	}
	if *backend != "" && !slices.Contains([]string{"auto", "xdp", "nftables", "iptables"}, *backend) {
		return e.fail("run", usageErr("--backend %q: use auto, xdp, nftables or iptables", *backend))
	}
	if err := e.requireRoot("run"); err != nil {
		return e.fail("run", err)
	}
	if e.getenv("GOGC") == "" {
		// The daemon's live heap is small (the ban mirror lives outside
		// it) and the collector's default headroom doubles it: with a
		// million bans and a jail tracking 100,000 addresses, 128 MiB
		// resident at GOGC=100, 113 at 50, at no cost measured in the
		// import or the log path. GOGC set by the operator wins.
		debug.SetGCPercent(gcPercent)
	}
	// log is set once the configuration names the log format; reloads
	// then report their notes too.
	var log *slog.Logger
	load := func() (*config.Config, error) {
		cfg, err := loadConfig(e.config, *f2b)
		if err != nil {
			return nil, err
		}
		if log != nil {
			logNotes(log, cfg)
		}
		d := &cfg.Daemon
		// Flags beat the configuration.
		d.Socket = cmp.Or(e.socket, d.Socket)
		d.PinPath = cmp.Or(e.pinPath, d.PinPath)
		d.StateDir = cmp.Or(e.stateDir, d.StateDir)
		d.Backend = cmp.Or(*backend, d.Backend)
		d.LogFormat = cmp.Or(*logFormat, d.LogFormat)
		d.LogLevel = cmp.Or(*logLevel, d.LogLevel)
		d.BanLog = cmp.Or(*banLog, d.BanLog)
		if len(ifaces) > 0 {
			d.Interfaces = append([]string(nil), ifaces...)
		}
		// "--iface eth0,eth0" or "interfaces = eth0 eth0" would attach
		// twice and fail as if another program held the interface.
		d.Interfaces = unique(d.Interfaces)
		// Defaults for what neither flag nor configuration set.
		d.Socket = cmp.Or(d.Socket, control.DefaultSocket)
		d.PinPath = cmp.Or(d.PinPath, daemon.DefaultPinPath)
		d.StateDir = cmp.Or(d.StateDir, daemon.DefaultStateDir)
		d.Backend = cmp.Or(d.Backend, "auto")
		d.BanLog = cmp.Or(d.BanLog, banlog.DefaultPath)
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return e.fail("run", usageErr("configuration: %v", err))
	}
	if st, err := os.Lstat(cfg.Daemon.Socket); err == nil && st.Mode().Type() != os.ModeSocket {
		// Checked before anything is attached; control.Listen refuses
		// it too (it never deletes what is not a socket).
		return e.fail("run", usageErr("socket %s exists and is not a socket: choose another --socket (or socket = in [xdpban])", cfg.Daemon.Socket))
	}
	log, err = newLogger(e.stderr, cfg.Daemon.LogFormat, cfg.Daemon.LogLevel, toJournal(e.stderr, e.getenv))
	if err != nil {
		return e.fail("run", err)
	}
	slog.SetDefault(log)
	logNotes(log, cfg)
	for _, b := range cfg.Broken {
		log.Warn("fail2ban jail skipped: cannot be translated", "jail", b.Name, "source", b.Source, "err", b.Err)
	}
	for _, j := range cfg.Jails {
		if j.Enabled && len(j.Replaced) > 0 {
			log.Info("fail2ban actions replaced by xdpban's enforcement", "jail", j.Name, "replaced", j.Replaced)
		}
	}
	if !*dryRun {
		if len(cfg.Daemon.Interfaces) == 0 {
			cfg.Daemon.Interfaces, err = defaultRouteInterfaces()
			if err != nil {
				return e.fail("run", err)
			}
			log.Info("protecting the default-route interfaces", "interfaces", cfg.Daemon.Interfaces)
		}
		for _, name := range cfg.Daemon.Interfaces {
			if _, err := net.InterfaceByName(name); err != nil {
				return e.fail("run", usageErr("interface %q: no such interface here: check the name with 'ip link'", name))
			}
		}
	}
	d, err := daemon.New(daemon.Options{
		Config:       cfg,
		LoadConfig:   load,
		Jails:        jailSpecs,
		OpenBackend:  enforce.Options{Jails: cfg.Jails, Logger: log}.Opener(),
		DryRun:       *dryRun,
		DetachOnExit: *detachOnExit,
		Logger:       log,
		Ready:        func() { sdNotify(e.getenv, "READY=1") },
	})
	if err != nil {
		return e.fail("run", usageErr("%v", err))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				sdNotify(e.getenv, "RELOADING=1")
				// The warnings are in the log already (logNotes, the
				// daemon's own lines).
				if _, err := d.Reload(ctx, ""); err != nil {
					log.Error("reload on SIGHUP failed; the previous configuration stays", "err", err)
				}
				sdNotify(e.getenv, "READY=1")
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		sdNotify(e.getenv, "STOPPING=1")
		if errors.Is(err, enforce.ErrPinPath) {
			err = fmt.Errorf("%w: %w", errUsage, err) // a setting to fix: exit 2
		}
		return e.fail("run", err)
	}
	sdNotify(e.getenv, "STOPPING=1")
	return exitOK
}

// logNotes warns about what the enabled jails set but xdpban does not
// use (a misspelt key, a file that is not there yet): `xdpban check`
// lists the same, but an operator who only restarts the service must see
// it in the daemon's log.
func logNotes(log *slog.Logger, cfg *config.Config) {
	for _, j := range cfg.Jails {
		if !j.Enabled {
			continue
		}
		for _, n := range j.Notes {
			log.Warn("configuration setting not used", "jail", j.Name, "note", n)
		}
	}
}

// unique drops repeated names, keeping the first of each.
func unique(names []string) []string {
	seen := map[string]bool{}
	out := names[:0:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// setIf sets *dst to a flag's value when the flag was given.
// newLogger builds the daemon's logger; journal prefixes each line with
// its syslog priority for journald.
func newLogger(w io.Writer, format, level string, journal bool) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, usageErr("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var mk func(io.Writer) slog.Handler
	switch strings.ToLower(format) {
	case "", "text":
		mk = func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, opts) }
	case "json":
		mk = func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, opts) }
	default:
		return nil, usageErr("log format %q: use text or json", format)
	}
	if journal {
		return slog.New(newJournalHandler(w, mk)), nil
	}
	return slog.New(mk(w)), nil
}

// defaultRouteInterfaces are the interfaces the default routes (IPv4 and
// IPv6) leave through: where attackers come in on a typical server.
func defaultRouteInterfaces() ([]string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("read routes to find the default interface: %w: pass --iface", err)
	}
	seen := map[int]bool{}
	var names []string
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		idx := r.LinkIndex
		if idx == 0 && len(r.MultiPath) > 0 {
			for _, nh := range r.MultiPath {
				if !seen[nh.LinkIndex] {
					seen[nh.LinkIndex] = true
					if l, err := netlink.LinkByIndex(nh.LinkIndex); err == nil {
						names = append(names, l.Attrs().Name)
					}
				}
			}
			continue
		}
		if idx == 0 || seen[idx] {
			continue
		}
		seen[idx] = true
		if l, err := netlink.LinkByIndex(idx); err == nil {
			names = append(names, l.Attrs().Name)
		}
	}
	if len(names) == 0 {
		return nil, usageErr("no default route: name the interfaces to protect with --iface (or interfaces = in [xdpban])")
	}
	sort.Strings(names)
	return names, nil
}

// jailSpecs compiles the enabled jails' filters.
func jailSpecs(cfg *config.Config, w bans.Widen) ([]logwatch.JailSpec, error) {
	var out []logwatch.JailSpec
	for _, j := range cfg.Jails {
		if !j.Enabled {
			continue
		}
		f, err := filter.Load(cfg.FilterDirs, j.Filter, j.FilterOptions)
		if err != nil {
			return nil, j.FilterError(err)
		}
		out = append(out, logwatch.JailSpec{
			Jail: j, NewScanner: f.NewScanner, Widen: w, MaxTracked: j.MaxTracked,
			FilterKey: fmt.Sprint(j.Filter, j.FilterOptions),
		})
	}
	return out, nil
}

// sdNotify tells systemd (Type=notify) about the daemon's state, by hand:
// one datagram on $NOTIFY_SOCKET, no dependency.
func sdNotify(getenv func(string) string, state string) {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
