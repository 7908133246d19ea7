package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair"
)

// Section 5: the control plane. How fast an operator (or a script) can
// ban through the CLI and through the socket, how long a 1M-address
// import takes, and what the daemon then holds in memory and spends in
// CPU. Peers: fail2ban-client banip against a fail2ban-server with a
// stamp-only action (CLI rate) and `ipset restore` of the same 1M
// prefixes (import).

const (
	// importJail is the jail the bulk import is recorded under.
	importJail = "import"
	// mapSizeV6 holds the import plus the CLI and socket bans made
	// before it.
	mapSizeV6 = 1<<20 + 1<<16
)

func sectionControl(ctx context.Context, o opts, s *Section) error {
	cliRuns, sockBans, importN := 100, 2000, 1_000_000
	if o.quick {
		cliRuns, sockBans, importN = 20, 400, 100_000
	}
	p, err := newPair()
	if err != nil {
		return err
	}
	// A jail that follows a log of its own: after the import, a million
	// addresses fail once each in it (below maxretry), for the memory the
	// daemon holds with both.
	floodLog := filepath.Join(o.work, "control", "flood.log")
	if err := os.MkdirAll(filepath.Dir(floodLog), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(floodLog, nil, 0o644); err != nil {
		return err
	}
	d, err := startDaemon(ctx, o, p, filepath.Join(o.work, "control"), daemonConf{keys: map[string]int{
		"map_size_v4": 1 << 20, "map_size_v6": mapSizeV6, "map_size_v4_net": 1024, "map_size_v6_net": 1024,
	}, jails: "[sshd]\nenabled = false\n[flood]\nenabled = true\nfilter = sshd\nbackend = file\nlogpath = " + floodLog +
		"\nmaxretry = 5\nfindtime = 1h\nbantime = 1h\n"})
	if err != nil {
		return err
	}
	defer d.stop()
	s.Table = &Table{Header: []string{"case", "tool", "figure", "unit", "vs peer"}}
	row := func(cas, tool string, v float64, unit, vs string) {
		s.Table.Rows = append(s.Table.Rows, []string{cas, tool, num(v), unit, vs})
	}
	skipRow := func(cas, tool, why string) {
		s.Table.Rows = append(s.Table.Rows, []string{cas, tool, "—", "", "skipped: " + oneLine(why)})
	}

	// 1. One CLI process per ban, as a script calling `xdpban ban` does.
	xr, err := d.cliBanRate(ctx, cliRuns, 0)
	if err != nil {
		return fmt.Errorf("xdpban ban through the CLI: %w", err)
	}
	s.add(Figure{Case: "cli ban, one process per ban", Tool: "xdpban", Metric: "bans_per_s", Value: xr, Unit: "bans/s"})
	fr, ferr := fail2banCLIRate(ctx, o, cliRuns)
	if ferr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.add(Figure{Case: "cli ban, one process per ban", Tool: "fail2ban", Metric: "bans_per_s", Skipped: ferr.Error()})
		row("`xdpban ban ADDR`, one process per ban", "xdpban", xr, "bans/s", "")
		skipRow("`fail2ban-client set JAIL banip ADDR`", "fail2ban", ferr.Error())
	} else {
		s.add(Figure{Case: "cli ban, one process per ban", Tool: "fail2ban", Metric: "bans_per_s", Value: fr, Unit: "bans/s"})
		r := ratio(xr, fr)
		s.add(Figure{Case: "cli ban, one process per ban", Tool: "xdpban", Metric: "ratio_vs_fail2ban", Value: r, Unit: "x"})
		row("`xdpban ban ADDR`, one process per ban", "xdpban", xr, "bans/s", fmt.Sprintf("%.1f× fail2ban", r))
		row("`fail2ban-client set JAIL banip ADDR`", "fail2ban", fr, "bans/s", "")
		s.note("CLI rate: %d sequential invocations each, timed from the first start to the last exit (xdpban: ban enforced in XDP and fsync'd before exit; fail2ban: until its action has run for every address). %s with a scratch config in its own namespace, jail sshd, whose only action appends a timestamp to a file.", cliRuns, fail2banVersion())
	}

	// 2. The socket API directly, one ban per request.
	for _, clients := range []int{1, 8} {
		r, err := d.socketBanRate(ctx, clients, sockBans, clients)
		if err != nil {
			return fmt.Errorf("bans through the socket with %d clients: %w", clients, err)
		}
		cas := fmt.Sprintf("socket ban, %d client(s)", clients)
		s.add(Figure{Case: cas, Tool: "xdpban", Metric: "bans_per_s", Value: r, Unit: "bans/s"})
		row(fmt.Sprintf("socket API, one ban per request, %d concurrent client(s)", clients), "xdpban", r, "bans/s", "")
	}
	s.note("Socket rate: %d bans per run, one HTTP request per ban on the control socket, each acknowledged only once enforced and durable; concurrent clients share fsyncs (group commit).", sockBans)

	// 3. The bulk import, and the same prefixes through ipset restore.
	list := filepath.Join(o.work, "control", "import.txt")
	if err := writeImportList(list, importN); err != nil {
		return err
	}
	if err := pingDaemon(ctx, d.sock); err != nil {
		return err
	}
	imp, err := d.importFile(ctx, list, importN)
	if err != nil {
		return fmt.Errorf("xdpban ban --from-file: %w", err)
	}
	cas := fmt.Sprintf("import %s prefixes", num(float64(importN)))
	s.add(Figure{Case: cas, Tool: "xdpban", Metric: "seconds", Value: imp.Seconds(), Unit: "s"})
	ir, ierr := ipsetRestore(ctx, p.Host, list, importN)
	if ierr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.add(Figure{Case: cas, Tool: "ipset", Metric: "seconds", Skipped: ierr.Error()})
		row(fmt.Sprintf("`xdpban ban --from-file` (%s lines)", num(float64(importN))), "xdpban", imp.Seconds(), "s", "")
		skipRow("`ipset restore` of the same prefixes", "ipset", ierr.Error())
	} else {
		s.add(Figure{Case: cas, Tool: "ipset", Metric: "seconds", Value: ir.took.Seconds(), Unit: "s"})
		r := ratio(imp.Seconds(), ir.took.Seconds())
		s.add(Figure{Case: cas, Tool: "xdpban", Metric: "ratio_vs_ipset", Value: r, Unit: "x"})
		row(fmt.Sprintf("`xdpban ban --from-file` (%s lines)", num(float64(importN))), "xdpban", imp.Seconds(), "s", fmt.Sprintf("%.2f× ipset's time", r))
		row("`ipset restore` of the same prefixes", "ipset", ir.took.Seconds(), "s", "")
		if ir.memBytes > 0 {
			s.add(Figure{Case: cas, Tool: "ipset", Metric: "set_kernel_mib", Value: float64(ir.memBytes) / (1 << 20), Unit: "MiB"})
			row("ipset's set, kernel memory (`ipset list -t`)", "ipset", float64(ir.memBytes)/(1<<20), "MiB", "")
		}
		s.note("Import: the same %s lines (2001:db8:X:Y::/64) for both. xdpban's figure is one `xdpban ban --from-file` process: the file sent whole to the daemon (one request), parsed and checked all or nothing, XDP map batches, fsync'd store transactions in key order and a ban-log line per ban. ipset's is `ipset restore` into a hash:net set with timeouts, in memory only: nothing on disk, gone at reboot.", num(float64(importN)))
	}
	s.target(fmt.Sprintf("import %s addresses", num(float64(importN))), imp.Seconds(), "s", true, 60)

	// 4. What the daemon holds with the import active.
	mem, err := d.memory(ctx, importN)
	if err != nil {
		return err
	}
	s.add(Figure{Case: "daemon, 1M bans active", Tool: "xdpban", Metric: "rss_mib", Value: mem.rss, Unit: "MiB"})
	s.add(Figure{Case: "daemon, 1M bans active", Tool: "xdpban", Metric: "peak_rss_mib", Value: mem.hwm, Unit: "MiB"})
	s.add(Figure{Case: "daemon, 1M bans active", Tool: "xdpban", Metric: "idle_cpu_pct", Value: mem.idleCPU, Unit: "% of a core"})
	s.add(Figure{Case: "daemon, 1M bans active", Tool: "xdpban", Metric: "store_mib", Value: mem.dbMiB, Unit: "MiB"})
	s.add(Figure{Case: "daemon, 1M bans active", Tool: "xdpban", Metric: "banned_packets_dropped", Value: float64(mem.dropped), Unit: "packets"})
	row(fmt.Sprintf("daemon RSS (VmRSS) with %s bans active", num(float64(mem.active))), "xdpban", mem.rss, "MiB", "")
	row("daemon peak RSS (VmHWM) during the run", "xdpban", mem.hwm, "MiB", "")
	row("daemon CPU while idle with the bans active", "xdpban", mem.idleCPU, "% of a core", "")
	row("ban database on disk", "xdpban", mem.dbMiB, "MiB", "")
	s.target("daemon RSS with 1M bans", mem.rss, "MiB", true, 100)

	// 4b. A restart with the import in force: kill -9 (the kernel keeps
	// enforcing), start, until the socket serves.
	rt, err := d.restart(ctx)
	if err != nil {
		return fmt.Errorf("restart with %s bans: %w", num(float64(importN)), err)
	}
	rcas := fmt.Sprintf("restart to serving, %s bans", num(float64(importN)))
	s.add(Figure{Case: rcas, Tool: "xdpban", Metric: "seconds", Value: rt.Seconds(), Unit: "s"})
	vs := ""
	if ierr == nil {
		r := ratio(rt.Seconds(), ir.took.Seconds())
		s.add(Figure{Case: rcas, Tool: "xdpban", Metric: "ratio_vs_ipset", Value: r, Unit: "x"})
		vs = fmt.Sprintf("%.2f× ipset restore's time", r)
	}
	row(fmt.Sprintf("daemon restart (kill -9, start) to serving with %s bans", num(float64(importN))), "xdpban", rt.Seconds(), "s", vs)
	// Until a change is taken too: the kernel compared with the store,
	// the jails started.
	t1 := time.Now()
	if _, err := d.cli(ctx, "ban", "192.0.2.77", "--for", "1m"); err != nil {
		return fmt.Errorf("ban after the restart: %w", err)
	}
	full := rt + time.Since(t1)
	s.add(Figure{Case: rcas, Tool: "xdpban", Metric: "seconds_to_first_ban", Value: full.Seconds(), Unit: "s"})
	vs = ""
	if ierr == nil {
		vs = fmt.Sprintf("%.2f× ipset restore's time", ratio(full.Seconds(), ir.took.Seconds()))
	}
	row("daemon restart to its first ban taken (start complete)", "xdpban", full.Seconds(), "s", vs)
	select {
	case <-time.After(memSettle):
	case <-ctx.Done():
		return ctx.Err()
	}
	if pid, err := d.pid(); err == nil {
		if st, err := procStatus(pid); err == nil {
			s.add(Figure{Case: rcas, Tool: "xdpban", Metric: "rss_mib", Value: float64(st["VmRSS"]) / 1024, Unit: "MiB"})
			s.add(Figure{Case: rcas, Tool: "xdpban", Metric: "rss_anon_mib", Value: float64(st["RssAnon"]) / 1024, Unit: "MiB"})
			row("daemon RSS after the restart (VmRSS; of it anonymous: RssAnon)", "xdpban", float64(st["VmRSS"])/1024, "MiB",
				fmt.Sprintf("%s MiB anonymous, the rest the database file's pages", num(float64(st["RssAnon"])/1024)))
		}
	}
	s.note("Restart: the daemon is killed with SIGKILL (its XDP program and maps stay, the kernel keeps dropping) and started again; the first figure runs from the start to the first answer on its socket (list, status and ping are served once the store's bans are loaded, while the kernel's %s are compared with them), the second until a ban is taken (the comparison done, the jails started). The peer is the same `ipset restore` as above, what a netfilter host replays at boot.", num(float64(importN)))

	// 4c. A million addresses failing once each on top of the bans.
	fm, err := d.failuresMemory(ctx, floodLog, importN)
	if err != nil {
		return fmt.Errorf("failures with the import active: %w", err)
	}
	fcas := fmt.Sprintf("daemon, %s bans and %s addresses below maxretry", num(float64(importN)), num(float64(importN)))
	s.add(Figure{Case: fcas, Tool: "xdpban", Metric: "rss_mib", Value: fm.rss, Unit: "MiB"})
	s.add(Figure{Case: fcas, Tool: "xdpban", Metric: "rss_anon_mib", Value: fm.anon, Unit: "MiB"})
	s.add(Figure{Case: fcas, Tool: "xdpban", Metric: "tracked", Value: float64(fm.tracked), Unit: "addresses"})
	row(fmt.Sprintf("daemon RSS with %s bans and %s addresses failing once", num(float64(importN)), num(float64(importN))), "xdpban", fm.rss, "MiB",
		fmt.Sprintf("%s MiB anonymous; %s addresses tracked (maxtracked), the rest evicted oldest first", num(fm.anon), num(float64(fm.tracked))))
	s.target(fmt.Sprintf("RSS with %s bans and %s failing addresses", num(float64(importN)), num(float64(importN))), fm.rss, "MiB", true, 100)
	s.note("Failures: after the restart, %s sshd \"Failed password\" lines, each from an address of its own (2001:db8:2000::/40, one /64 each), are appended to the log of a jail with maxretry 5 and the default maxtracked; RSS is read once the jail has counted them all.", num(float64(importN)))

	// 5. The CLI again, now that the daemon holds the import.
	xr1, err := d.cliBanRate(ctx, cliRuns, 1)
	if err != nil {
		return fmt.Errorf("xdpban ban through the CLI with the import active: %w", err)
	}
	s.add(Figure{Case: "cli ban, one process per ban, 1M bans active", Tool: "xdpban", Metric: "bans_per_s", Value: xr1, Unit: "bans/s"})
	row(fmt.Sprintf("`xdpban ban ADDR` with %s bans active", num(float64(mem.active))), "xdpban", xr1, "bans/s", fmt.Sprintf("%.2f× the rate with none", ratio(xr1, xr)))
	s.note("Memory: VmRSS of the daemon after the import, measured %s after it returned; idle CPU over %s after that. The XDP maps are kernel memory and not in the RSS. Enforcement checked: %d of %d packets from an imported prefix were dropped.", memSettle, idleWindow, mem.dropped, dropProbe)
	return nil
}

// cli runs one xdpban command against the daemon. The CLI only talks to
// the unix socket, so it runs where the operator's would.
func (d *daemonProc) cli(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, d.bin, append(d.paths(), args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("xdpban %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// cliBanRate is bans/s with one `xdpban ban` process per ban, each in its
// own /64 (the daemon widens IPv6 to /64).
func (d *daemonProc) cliBanRate(ctx context.Context, n, group int) (float64, error) {
	t0 := time.Now()
	for i := range n {
		if _, err := d.cli(ctx, "ban", fmt.Sprintf("2001:db8:c1%x:%x::1", group, i), "--for", "1h"); err != nil {
			return 0, err
		}
	}
	took := time.Since(t0)
	if err := d.expectBanned(ctx, netip.MustParsePrefix(fmt.Sprintf("2001:db8:c1%x:%x::/64", group, n-1))); err != nil {
		return 0, err
	}
	slog.Info("xdpban cli bans", "n", n, "took", took)
	return float64(n) / took.Seconds(), nil
}

// expectBanned checks a ban really reached the daemon.
func (d *daemonProc) expectBanned(ctx context.Context, p netip.Prefix) error {
	out, err := d.cli(ctx, "status", "manual", "--json")
	if err != nil {
		return err
	}
	var js control.JailStatus
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		return fmt.Errorf("xdpban status manual --json: %w", err)
	}
	for _, a := range js.BannedAddrs {
		if a == p.String() {
			return nil
		}
	}
	return fmt.Errorf("%s missing from the daemon's bans after the CLI reported it banned", p)
}

// socketBanRate is bans/s with one ban per request from clients
// goroutines sharing n bans; group distinguishes the runs' addresses.
func (d *daemonProc) socketBanRate(ctx context.Context, clients, n, group int) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	t0 := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := control.NewClient(d.sock)
			defer c.Close()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				item := control.BanItem{Addr: fmt.Sprintf("2001:db8:5%x:%x::1", group, i), Jail: "socket", For: "1h"}
				if _, err := c.Ban(ctx, []control.BanItem{item}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	slog.Info("xdpban socket bans", "clients", clients, "n", n, "took", took)
	return float64(n) / took.Seconds(), nil
}

// writeImportList writes n distinct /64s of 2001:db8::/32, one a line.
func writeImportList(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write import list: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		fmt.Fprintf(w, "2001:db8:%x:%x::/64\n", 0x1000+i>>16, i&0xffff)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write import list: %w", err)
	}
	return f.Close()
}

// importFile runs `xdpban ban --from-file` and checks the maps hold it.
func (d *daemonProc) importFile(ctx context.Context, list string, n int) (time.Duration, error) {
	before, err := d.tableEntries(ctx, "ban_v6")
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	out, err := d.cli(ctx, "ban", "--from-file", list, "--jail", importJail, "--for", "1h")
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if want := fmt.Sprintf("banned %d addresses", n); !strings.Contains(out, want) {
		return 0, fmt.Errorf("xdpban ban --from-file said %q, want %q", strings.TrimSpace(out), want)
	}
	after, err := d.tableEntries(ctx, "ban_v6")
	if err != nil {
		return 0, err
	}
	if after-before != n {
		return 0, fmt.Errorf("ban_v6 went from %d to %d entries, want %d more", before, after, n)
	}
	slog.Info("xdpban import", "n", n, "took", took)
	return took, nil
}

func (d *daemonProc) status(ctx context.Context) (control.Status, error) {
	c := control.NewClient(d.sock)
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return st, fmt.Errorf("daemon status: %w", err)
	}
	return st, nil
}

func (d *daemonProc) tableEntries(ctx context.Context, name string) (int, error) {
	st, err := d.status(ctx)
	if err != nil {
		return 0, err
	}
	for _, t := range st.Tables {
		if t.Name == name {
			return t.Entries, nil
		}
	}
	return 0, fmt.Errorf("daemon status lists no table %s", name)
}

const (
	memSettle  = 3 * time.Second
	idleWindow = 5 * time.Second
	dropProbe  = 20
)

type daemonMem struct {
	rss, hwm, idleCPU, dbMiB float64
	active                   int
	dropped                  uint64
}

// memory reads the daemon's memory and idle CPU with the import active,
// and checks a packet from an imported prefix is dropped.
func (d *daemonProc) memory(ctx context.Context, importN int) (daemonMem, error) {
	var m daemonMem
	pid, err := d.pid()
	if err != nil {
		return m, err
	}
	select {
	case <-time.After(memSettle):
	case <-ctx.Done():
		return m, ctx.Err()
	}
	st, err := procStatus(pid)
	if err != nil {
		return m, err
	}
	m.rss, m.hwm = float64(st["VmRSS"])/1024, float64(st["VmHWM"])/1024
	c0, err := procCPU(pid)
	if err != nil {
		return m, err
	}
	t0 := time.Now()
	select {
	case <-time.After(idleWindow):
	case <-ctx.Done():
		return m, ctx.Err()
	}
	c1, err := procCPU(pid)
	if err != nil {
		return m, err
	}
	m.idleCPU = 100 * (c1 - c0).Seconds() / time.Since(t0).Seconds()
	if fi, err := os.Stat(filepath.Join(d.state, "xdpban.db")); err == nil {
		m.dbMiB = float64(fi.Size()) / (1 << 20)
	}
	stat, err := d.status(ctx)
	if err != nil {
		return m, err
	}
	m.active = stat.Bans
	if m.active < importN {
		return m, fmt.Errorf("daemon reports %d bans active, want at least the %d imported", m.active, importN)
	}
	m.dropped, err = d.dropCheck(ctx)
	return m, err
}

type failuresMem struct {
	rss, anon float64
	tracked   int
}

// failuresMemory appends n failure lines from n distinct addresses to the
// flood jail's log, waits until the jail counted them, and reads the
// daemon's memory.
func (d *daemonProc) failuresMemory(ctx context.Context, logPath string, n int) (failuresMem, error) {
	var m failuresMem
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return m, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	stamp := time.Now().Format(time.Stamp)
	for i := range n {
		fmt.Fprintf(w, "%s bastion sshd[%d]: Failed password for root from 2001:db8:%x:%x::1 port %d ssh2\n",
			stamp, 1000+i%30000, 0x2000+i>>16, i&0xffff, 1024+i%60000)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return m, err
	}
	f.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		js, err := d.client.JailStatus(ctx, "flood")
		if err != nil {
			return m, err
		}
		if js.TotalFailed >= n {
			m.tracked = js.CurrentlyFailed
			break
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("the flood jail counted %d of %d failures in 2 minutes", js.TotalFailed, n)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return m, ctx.Err()
		}
	}
	select {
	case <-time.After(memSettle):
	case <-ctx.Done():
		return m, ctx.Err()
	}
	pid, err := d.pid()
	if err != nil {
		return m, err
	}
	st, err := procStatus(pid)
	if err != nil {
		return m, err
	}
	m.rss, m.anon = float64(st["VmRSS"])/1024, float64(st["RssAnon"])/1024
	return m, nil
}

// dropCheck sends dropProbe datagrams from an address inside an imported
// prefix and returns how many the daemon's XDP program counted dropped.
func (d *daemonProc) dropCheck(ctx context.Context) (uint64, error) {
	st, err := d.status(ctx)
	if err != nil {
		return 0, err
	}
	before := st.Counters["dropped"]
	if err := sendFrom(d.p, netip.MustParseAddr("2001:db8:1000:5::1"), dropProbe); err != nil {
		return 0, err
	}
	var got uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st, err = d.status(ctx); err != nil {
			return 0, err
		}
		if got = st.Counters["dropped"] - before; got >= dropProbe {
			break
		}
	}
	if got != dropProbe {
		return got, fmt.Errorf("%d of %d packets from an imported prefix were dropped, want all", got, dropProbe)
	}
	return got, nil
}

// procStatus reads the kB fields of /proc/PID/status.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read daemon status: %w", err)
	}
	out := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			out[k], _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	return out, nil
}

// procCPU is the user+system time the process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read daemon cpu: %w", err)
	}
	// The command name may hold spaces: fields count from after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on every Linux ABI Go supports.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// fail2banCLIRate is bans/s with one `fail2ban-client set sshd banip`
// process per ban, until the action has run for each.
func fail2banCLIRate(ctx context.Context, o opts, n int) (float64, error) {
	if err := fail2banAvailable(); err != nil {
		return 0, err
	}
	client, err := exec.LookPath("fail2ban-client")
	if err != nil {
		return 0, fmt.Errorf("fail2ban-client not found: install fail2ban (apt-get install fail2ban, or `make deps-bench`)")
	}
	ns, err := newNS("f2bcli")
	if err != nil {
		return 0, err
	}
	f, err := startFail2ban(ctx, ns, filepath.Join(o.work, "fail2ban-cli"))
	if err != nil {
		return 0, err
	}
	defer f.stop()
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("2001:db8:f2b:%x::1", i))
	}
	t0 := time.Now()
	for _, a := range addrs {
		out, err := exec.CommandContext(ctx, client, "-s", f.sock, "set", "sshd", "banip", a.String()).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("fail2ban-client set sshd banip %s: %w: %s", a, err, strings.TrimSpace(string(out)))
		}
	}
	// The action may run after the client returned: wait for every stamp.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, ok, err := findStamp(f.stamps, addrs[n-1])
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("fail2ban's action did not run for %s within 60s of its banip", addrs[n-1])
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(t0)
	slog.Info("fail2ban cli bans", "n", n, "took", took)
	return float64(n) / took.Seconds(), nil
}

type ipsetResult struct {
	took     time.Duration
	memBytes int64
}

// ipsetRestore loads the list into a hash:net set with timeouts in ns,
// with one `ipset restore`, and checks the set holds every line.
func ipsetRestore(ctx context.Context, ns *nspair.NS, list string, n int) (ipsetResult, error) {
	var r ipsetResult
	if _, err := exec.LookPath("ipset"); err != nil {
		return r, fmt.Errorf("ipset not found: install ipset (apt-get install ipset, or `make deps`)")
	}
	const set = "xbb-import"
	in, err := os.Open(list)
	if err != nil {
		return r, fmt.Errorf("open import list: %w", err)
	}
	defer in.Close()
	// ipset restore reads commands: one create, then an add per line.
	pr, pw, err := os.Pipe()
	if err != nil {
		return r, fmt.Errorf("pipe to ipset: %w", err)
	}
	cmd := ns.Command(ctx, "ipset", "restore")
	cmd.Stdin = pr
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return r, fmt.Errorf("start ipset restore: %w", err)
	}
	pr.Close()
	werr := func() error {
		defer pw.Close()
		w := bufio.NewWriterSize(pw, 1<<20)
		fmt.Fprintf(w, "create %s hash:net family inet6 hashsize %d maxelem %d timeout 3600\n", set, 1<<20, mapSizeV6)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			fmt.Fprintf(w, "add %s %s\n", set, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return err
		}
		return w.Flush()
	}()
	err = cmd.Wait()
	r.took = time.Since(t0)
	if werr != nil {
		return r, fmt.Errorf("feed ipset restore: %w", werr)
	}
	if err != nil {
		return r, fmt.Errorf("ipset restore: %w: %s", err, lastLines(stderr.String(), 3))
	}
	out, err := ns.Output(ctx, "ipset", "list", "-t", set)
	if err != nil {
		return r, err
	}
	entries := -1
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Number of entries":
			entries, _ = strconv.Atoi(v)
		case "Size in memory":
			r.memBytes, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if entries != n {
		return r, fmt.Errorf("ipset set %s holds %d entries after restore, want %d", set, entries, n)
	}
	slog.Info("ipset restore", "n", n, "took", r.took)
	// Free the set's kernel memory now rather than at namespace deletion.
	_, _ = ns.Output(ctx, "ipset", "destroy", set)
	return r, nil
}

// sendFrom sends n UDP datagrams from src (an address the attacker
// gets) to the host.
func sendFrom(p *nspair.Pair, src netip.Addr, n int) error {
	if err := p.AddAttackerAddr(src); err != nil {
		return err
	}
	// A fresh IPv6 address is usable at once: nodad.
	return p.Attacker.Do(func() error {
		c, err := net.DialUDP("udp6", &net.UDPAddr{IP: src.AsSlice()}, &net.UDPAddr{IP: nspair.HostV6.AsSlice(), Port: 9})
		if err != nil {
			return fmt.Errorf("udp from %s: %w", src, err)
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("xdpban bench probe")); err != nil {
				return fmt.Errorf("send from %s: %w", src, err)
			}
		}
		return nil
	})
}
