package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// banChunk is how many bans go in one request: well under control.MaxBody
// (an item is under 100 bytes of JSON).
const banChunk = 5000

// maxReported bounds the bad lines listed for --from-file.
const maxReported = 20

func (e *env) requireRoot(what string) error {
	if e.geteuid != nil && e.geteuid() != 0 {
		return usageErr("%s needs root (CAP_BPF, CAP_NET_ADMIN and the control socket): run it with sudo", what)
	}
	return nil
}

func cmdBan(e *env, args []string) int {
	fs := e.newFlags("ban")
	forS := fs.String("for", "", "ban `DURATION` (90s, 10m, 1h; 0 = permanent; default 1h)")
	jail := fs.String("jail", daemon.DefaultJail, "jail `NAME` the ban is recorded under")
	from := fs.String("from-file", "", "read addresses/CIDRs from `FILE`, one a line (- for stdin)")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	force := fs.Bool("force", false, "ban even an address in ignoreip, the host's own or loopback, or a prefix covering one (refused otherwise)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("ban", err)
	}
	if _, err := daemon.ParseBanTime(*forS); err != nil {
		return e.fail("ban", usageErr("--for: %v", err))
	}
	if *jail == "" {
		// The daemon would file it under the default jail while this
		// command reported an empty one: say so instead of guessing.
		return e.fail("ban", usageErr("--jail: empty jail name: leave --jail out for the %s jail", daemon.DefaultJail))
	}
	var items []control.BanItem
	switch {
	case *from != "" && len(pos) > 0:
		return e.fail("ban", usageErr("give addresses or --from-file, not both"))
	case *from != "":
		items, err = e.readBanFile(*from, *jail, *forS)
		if err != nil {
			return e.fail("ban", err)
		}
		if len(items) == 0 {
			return e.fail("ban", usageErr("%s: no addresses in it", fileName(*from)))
		}
	case len(pos) == 0:
		return e.fail("ban", usageErr("no address: usage: xdpban ban ADDR|CIDR [--for DURATION] [--jail NAME], or --from-file FILE"))
	default:
		for _, a := range pos {
			if err := checkBanAddr(a); err != nil {
				return e.fail("ban", usageErr("%v", err))
			}
			items = append(items, control.BanItem{Addr: a, Jail: *jail, For: *forS})
		}
	}
	for i := range items {
		items[i].Force = *force
	}
	if _, err := daemon.ParseItems(items[:1], bans.Widen{}, time.Now(), daemon.ItemRules{}); err != nil {
		return e.fail("ban", usageErr("%v", err))
	}
	if err := e.requireRoot("ban"); err != nil {
		return e.fail("ban", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()

	var banned []string
	c, err := e.daemonClient(ctx)
	if err != nil {
		return e.fail("ban", err)
	}
	if c != nil {
		defer c.Close()
		imported := false
		if *from != "" && !*jsonOut && len(items) > 1 {
			// A file goes whole, as text: checked, enforced and stored
			// by the daemon in one step (an older daemon: in chunks).
			n, err := importBans(ctx, c, items, *jail, *forS, *force)
			switch {
			case errors.Is(err, control.ErrNoImport):
			case err != nil:
				return e.fail("ban", remote(err))
			default:
				imported, banned = true, make([]string, n) // only the count is printed
			}
		}
		if !imported {
			if banned, err = sendBans(ctx, c, items); err != nil {
				return e.fail("ban", remote(err))
			}
		}
	} else {
		d, err := e.openDirect(ctx)
		if err != nil {
			return e.fail("ban", err)
		}
		defer d.Close()
		var protected *bans.IgnoreList
		if !*force {
			cfg, err := loadConfig(e.config, "")
			if err == nil {
				protected, err = daemon.Protected(cfg)
			}
			if err != nil {
				return e.fail("ban", fmt.Errorf("cannot tell which addresses are protected (ignoreip): %w; fix the configuration, or pass --force", err))
			}
		}
		bs, err := daemon.ParseItems(items, d.widen, time.Now(), daemon.ItemRules{Scope: e.directJailScope(*jail), Protected: protected})
		if err != nil {
			return e.fail("ban", usageErr("%v", err))
		}
		if _, err := d.core.CheckRoom(bs, nil); err != nil {
			return e.fail("ban", err)
		}
		for i := 0; i < len(bs); i += banChunk {
			chunk := bs[i:min(i+banChunk, len(bs))]
			if err := d.core.Ban(ctx, chunk); err != nil {
				if len(banned) > 0 {
					err = fmt.Errorf("%w (the first %d were banned)", err, len(banned))
				}
				return e.fail("ban", err)
			}
			for _, b := range chunk {
				banned = append(banned, b.Prefix.String())
			}
		}
	}
	if *jsonOut {
		return e.printJSON(control.BanResponse{Banned: nonNil(banned)})
	}
	what := "for " + durText(*forS)
	if d, _ := daemon.ParseBanTime(*forS); d == 0 {
		what = "permanently"
	}
	// banned is in the items' order (sendBans, and the direct mode's
	// ParseItems): say when a prefix is not what was typed.
	var notes []string
	for i, p := range banned {
		if pp, err := netip.ParsePrefix(p); err == nil && i < len(items) {
			if n := daemon.Normalised(items[i].Addr, pp); n != "" {
				notes = append(notes, n)
			}
		}
	}
	switch {
	case len(banned) == 1 && len(notes) == 1:
		fmt.Fprintf(e.stdout, "banned %s (%s) in jail %s %s\n", banned[0], notes[0], *jail, what)
	case len(banned) == 1:
		fmt.Fprintf(e.stdout, "banned %s in jail %s %s\n", banned[0], *jail, what)
	case len(notes) > 0:
		fmt.Fprintf(e.stdout, "banned %d addresses in jail %s %s (%d normalised: --json lists the prefixes banned)\n", len(banned), *jail, what, len(notes))
	default:
		fmt.Fprintf(e.stdout, "banned %d addresses in jail %s %s\n", len(banned), *jail, what)
	}
	return exitOK
}

// importBans sends items as one import: the file's lines, already
// checked here so that every bad line is reported, not the first.
func importBans(ctx context.Context, c *control.Client, items []control.BanItem, jail, forS string, force bool) (int, error) {
	var body bytes.Buffer
	for _, it := range items {
		body.WriteString(it.Addr)
		body.WriteByte('\n')
	}
	return c.Import(ctx, control.ImportRequest{Jail: jail, For: forS, Force: force}, &body)
}

// bansInFlight is how many chunks of a large ban are sent at once: the
// daemon decodes and parses one chunk while it enforces and commits
// another. (Chunks this size take nearly all of the daemon's prefix
// locks, so their commits do not share an fsync.)
const bansInFlight = 4

// sendBans sends items in chunks, several at a time, and returns the
// banned prefixes in the items' order. Concurrent chunks may apply out of
// order, which only matters for a prefix given twice: --from-file gives
// every line the same jail and duration.
func sendBans(ctx context.Context, c *control.Client, items []control.BanItem) ([]string, error) {
	n := (len(items) + banChunk - 1) / banChunk
	if n > 1 {
		// All or nothing: every part is checked to fit, adding up,
		// before any is banned (one request is checked by the daemon).
		pending := map[string]int{}
		for i := 0; i < n; i++ {
			add, err := c.CheckBan(ctx, items[i*banChunk:min((i+1)*banChunk, len(items))], pending)
			if err != nil {
				return nil, err
			}
			for t, k := range add {
				pending[t] += k
			}
		}
	}
	res := make([][]string, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		mu    sync.Mutex
		first error
	)
	for range min(bansInFlight, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				got, err := c.Ban(ctx, items[i*banChunk:min((i+1)*banChunk, len(items))])
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
				res[i] = got
			}
		}()
	}
	wg.Wait()
	var banned []string
	for _, r := range res {
		banned = append(banned, r...)
	}
	if first != nil {
		if len(banned) > 0 {
			first = fmt.Errorf("%w (%d were banned before it)", first, len(banned))
		}
		return nil, first
	}
	return banned, nil
}

func durText(s string) string {
	d, _ := daemon.ParseBanTime(s)
	return d.String()
}

func fileName(f string) string {
	if f == "-" {
		return "standard input"
	}
	return f
}

// readBanFile reads --from-file: one address or CIDR a line, blank lines
// and # comments skipped. It is all-or-nothing: any bad line fails the
// whole file, every bad line reported with its number, nothing banned.
func (e *env) readBanFile(name, jail, forS string) ([]control.BanItem, error) {
	var r io.Reader
	if name == "-" {
		r = e.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageErr("--from-file: %v", err)
		}
		defer f.Close()
		r = f
	}
	var items []control.BanItem
	var bad []string
	nbad := 0
	err := control.ScanBanFile(r, func(line int, s string) error {
		if err := checkBanAddr(s); err != nil {
			nbad++
			if len(bad) < maxReported {
				bad = append(bad, fmt.Sprintf("line %d: %v", line, err))
			}
			return nil
		}
		items = append(items, control.BanItem{Addr: s, Jail: jail, For: forS})
		return nil
	})
	if errors.Is(err, control.ErrLineTooLong) {
		return nil, usageErr("%s: %v", fileName(name), strings.TrimPrefix(err.Error(), control.ErrLineTooLong.Error()+": "))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", fileName(name), err)
	}
	if nbad > 0 {
		// Every bad line on stderr, then the one-line summary.
		for _, b := range bad {
			fmt.Fprintf(e.stderr, "xdpban: ban: %s: %s\n", fileName(name), b)
		}
		more := ""
		if nbad > len(bad) {
			more = fmt.Sprintf(" (first %d shown)", len(bad))
		}
		return nil, usageErr("%s: %d bad lines%s; nothing was banned: fix them and run again", fileName(name), nbad, more)
	}
	return items, nil
}

// checkBanAddr is the client-side check of one address to ban, so that
// every bad one is reported before anything is sent.
func checkBanAddr(a string) error {
	p, err := (bans.Widen{}).Parse(a)
	if err != nil {
		return err
	}
	return daemon.CheckWidth(p, a)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// remote turns a daemon's bad-request answer into a usage error (exit 2).
// An unknown jail is a name the operator typed; "not banned" stays exit 1
// (documented) so scripts can tell it from a typo.
func remote(err error) error {
	if errors.Is(err, control.ErrBadRequest) || errors.Is(err, control.ErrForbidden) || errors.Is(err, control.ErrUnknownJail) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}

func cmdUnban(e *env, args []string) int {
	fs := e.newFlags("unban")
	jail := fs.String("jail", "", "only lift bans of jail `NAME`")
	all := fs.Bool("all", false, "lift every ban (of --jail when given)")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("unban", err)
	}
	switch {
	case *all && len(pos) > 0:
		return e.fail("unban", usageErr("give addresses or --all, not both"))
	case !*all && len(pos) == 0:
		return e.fail("unban", usageErr("no address: usage: xdpban unban ADDR|CIDR [--jail NAME], or xdpban unban --all"))
	}
	for _, a := range pos {
		if _, err := (bans.Widen{}).Parse(a); err != nil {
			return e.fail("unban", fmt.Errorf("%w: %w", errUsage, err))
		}
	}
	if err := e.requireRoot("unban"); err != nil {
		return e.fail("unban", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	var n int
	c, err := e.daemonClient(ctx)
	if err != nil {
		return e.fail("unban", err)
	}
	if c != nil {
		defer c.Close()
		n, err = c.Unban(ctx, control.UnbanRequest{Addrs: pos, Jail: *jail, All: *all})
		err = remote(err)
	} else {
		d, derr := e.openDirect(ctx)
		if derr != nil {
			return e.fail("unban", derr)
		}
		defer d.Close()
		if *all {
			if *jail != "" {
				// No daemon runs: the jails it would run are the enabled
				// ones of the configuration, when it loads.
				var enabled []string
				if cfg, err := loadConfig(e.config, ""); err == nil {
					for _, j := range cfg.Enabled() {
						enabled = append(enabled, j.Name)
					}
				}
				if err := daemon.CheckJailKnown(*jail, daemon.KnownJails(d.core, enabled)); err != nil {
					return e.fail("unban", fmt.Errorf("%w: %w", errUsage, err))
				}
			}
			n, err = d.core.UnbanAll(ctx, *jail)
		} else {
			ps := make([]netip.Prefix, len(pos))
			for i, a := range pos {
				ps[i], _ = d.widen.Parse(a)
			}
			n, err = d.core.Unban(ctx, ps, *jail)
		}
	}
	if err != nil {
		return e.fail("unban", err)
	}
	if *jsonOut {
		return e.printJSON(control.UnbanResponse{Removed: n})
	}
	fmt.Fprintf(e.stdout, "unbanned %d\n", n)
	return exitOK
}

func cmdList(e *env, args []string) int {
	fs := e.newFlags("list")
	jsonOut := fs.Bool("json", false, "print a JSON array of {addr, jail, expires, packets, bytes}")
	jail := fs.String("jail", "", "only the bans of jail `J`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("list", err)
	}
	if len(pos) > 1 {
		return e.fail("list", usageErr("unexpected argument %q: usage: xdpban list [ADDR|CIDR] [--jail J] [--json]", pos[1]))
	}
	// list ADDR answers fail2ban-client's "banned ADDR": is it banned,
	// by which entries (an address is covered by its /64, a prefix, ...).
	var want netip.Prefix
	if len(pos) == 1 {
		p, err := bans.Widen{IPv6: 128}.Parse(pos[0])
		if err != nil {
			return e.fail("list", usageErr("%v", err))
		}
		want = p
	}
	if err := e.requireRoot("list"); err != nil {
		return e.fail("list", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	var entries []control.Entry
	c, err := e.daemonClient(ctx)
	if err != nil {
		return e.fail("list", err)
	}
	if c != nil {
		defer c.Close()
		entries, err = c.List(ctx)
		if err != nil {
			return e.fail("list", remote(err))
		}
	} else {
		d, err := e.openDirect(ctx)
		if err != nil {
			return e.fail("list", err)
		}
		defer d.Close()
		bs, err := d.core.List(ctx)
		if err != nil {
			return e.fail("list", err)
		}
		for _, b := range bs {
			entries = append(entries, control.EntryOf(b))
		}
	}
	entries = filterEntries(entries, want, *jail)
	code := exitOK
	if want.IsValid() && len(entries) == 0 {
		// Scripts branch on it, as on `fail2ban-client banned ADDR`.
		code = exitFailure
		if !*jsonOut {
			fmt.Fprintf(e.stderr, "xdpban: list: %s is not banned\n", pos[0])
			return code
		}
	}
	if *jsonOut {
		if c := e.printJSON(entries); c != exitOK {
			return c
		}
		return code
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tJAIL\tTIME LEFT\tPACKETS\tBYTES\tORIGIN")
	now := time.Now()
	for _, en := range entries {
		b, err := en.Ban()
		left := "permanent"
		if err == nil && !b.Permanent() {
			left = b.Remaining(now).Round(time.Second).String()
		}
		// The fleet node that decided it; "local" for this host's own.
		origin := cmp.Or(en.Origin, "local")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", en.Addr, en.Jail, left, en.Packets, en.Bytes, origin)
	}
	tw.Flush()
	return exitOK
}

func cmdStatus(e *env, args []string) int {
	fs := e.newFlags("status")
	jsonOut := fs.Bool("json", false, "print the status as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("status", err)
	}
	if len(pos) > 1 {
		return e.fail("status", usageErr("usage: xdpban status [JAIL] [--json]"))
	}
	if len(pos) == 1 && pos[0] == "" {
		return e.fail("status", usageErr("empty jail name: usage: xdpban status [JAIL] [--json]"))
	}
	if err := e.requireRoot("status"); err != nil {
		return e.fail("status", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	c, err := e.daemonClient(ctx)
	if err != nil {
		return e.fail("status", err)
	}
	var d *direct
	if c != nil {
		defer c.Close()
	} else {
		d, err = e.openDirect(ctx)
		if err != nil {
			return e.fail("status", err)
		}
		defer d.Close()
	}
	if len(pos) == 1 {
		var js control.JailStatus
		if c != nil {
			js, err = c.JailStatus(ctx, pos[0])
			err = remote(err)
		} else {
			js = directJailStatus(d, pos[0])
		}
		if err != nil {
			return e.fail("status", err)
		}
		if *jsonOut {
			return e.printJSON(js)
		}
		printJailStatus(e.stdout, js)
		return exitOK
	}
	var st control.Status
	if c != nil {
		st, err = c.Status(ctx)
		err = remote(err)
	} else {
		st, err = directStatus(ctx, d)
	}
	if err != nil {
		return e.fail("status", err)
	}
	if *jsonOut {
		return e.printJSON(st)
	}
	printStatus(e.stdout, st)
	return exitOK
}

func directStatus(ctx context.Context, d *direct) (control.Status, error) {
	bst, err := d.x.Status(ctx)
	if err != nil {
		return control.Status{}, err
	}
	st := control.Status{Status: bst, Mode: "direct", DB: d.st.Path()}
	active := d.core.Active("")
	st.Bans = len(active)
	per := map[string]int{}
	var names []string
	for _, b := range active {
		if per[b.Jail] == 0 {
			names = append(names, b.Jail)
		}
		per[b.Jail]++
	}
	for _, n := range names {
		st.Jails = append(st.Jails, control.JailSummary{Name: n, Banned: per[n]})
	}
	return st, nil
}

func directJailStatus(d *direct, jail string) control.JailStatus {
	js := control.JailStatus{Name: jail, BannedAddrs: []string{}, Files: []string{}}
	for _, b := range d.core.Active(jail) {
		js.BannedAddrs = append(js.BannedAddrs, b.Prefix.String())
	}
	js.CurrentlyBanned = len(js.BannedAddrs)
	return js
}

func printStatus(w io.Writer, st control.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	reason := ""
	if st.Reason != "" {
		reason = " (" + st.Reason + ")"
	}
	fmt.Fprintf(tw, "backend:\t%s%s\n", st.Backend, reason)
	mode := st.Mode
	if mode == "direct" {
		mode = "direct (no daemon running: read from the pinned maps)"
	}
	fmt.Fprintf(tw, "mode:\t%s\n", mode)
	if st.Starting {
		fmt.Fprintf(tw, "state:\tstarting (comparing the kernel's bans with the store; bans wait for it)\n")
	}
	if st.Uptime != "" {
		fmt.Fprintf(tw, "uptime:\t%s\n", st.Uptime)
	}
	if st.StoreBacklog > 0 {
		fmt.Fprintf(tw, "store:\tFAILING: %d bans/unbans enforced but not yet written to %s, retried every second (%s)\n", st.StoreBacklog, st.DB, st.StoreError)
	}
	for _, i := range st.Interfaces {
		fmt.Fprintf(tw, "interface:\t%s\t%s\n", i.Name, i.Mode)
	}
	for _, t := range st.Tables {
		if t.Limit > 0 {
			fmt.Fprintf(tw, "table:\t%s\t%d / %d\t(takes %d bans: the rest is room the kernel's LRU needs to never evict)\n", t.Name, t.Entries, t.Capacity, t.Limit)
		} else {
			fmt.Fprintf(tw, "table:\t%s\t%d / %d\n", t.Name, t.Entries, t.Capacity)
		}
	}
	for _, k := range sortedKeys(st.Counters) {
		fmt.Fprintf(tw, "counter:\t%s\t%d\n", k, st.Counters[k])
	}
	fmt.Fprintf(tw, "bans:\t%d\n", st.Bans)
	if f := st.Fleet; f != nil {
		conn := "DISCONNECTED: bans decided here are enforced and wait in the outbox"
		if f.Connected {
			conn = "connected to " + f.Server
			if !f.InStep {
				conn += ", catching up with the bucket"
			}
		}
		fmt.Fprintf(tw, "fleet:\tnode %s, %s\n", f.Node, conn)
		fmt.Fprintf(tw, "fleet servers:\t%s\n", strings.Join(f.Servers, ", "))
		if f.Embedded != "" {
			fmt.Fprintf(tw, "fleet embedded node:\t%s\n", f.Embedded)
		}
		fmt.Fprintf(tw, "fleet bucket:\t%s\t%d values\n", f.Bucket, f.Values)
		fmt.Fprintf(tw, "fleet outbox:\t%d\n", f.Outbox)
		fmt.Fprintf(tw, "fleet published / received:\t%d / %d\n", f.Published, f.Received)
		for _, k := range sortedKeys(f.Refused) {
			fmt.Fprintf(tw, "fleet refused:\t%s\t%d\n", k, f.Refused[k])
		}
		if f.Error != "" {
			fmt.Fprintf(tw, "fleet error:\t%s\n", f.Error)
		}
	}
	for _, j := range st.Jails {
		if j.RateLimit != "" {
			fmt.Fprintf(tw, "rate-limited SYNs dropped:\t%s\t%s\t(ratelimit %s)\n", j.Name, rateLimitedText(j.RateLimited), j.RateLimit)
		}
	}
	tw.Flush()
	names := make([]string, len(st.Jails))
	for i, j := range st.Jails {
		names[i] = j.Name
	}
	fmt.Fprintf(w, "Status\n|- Number of jail:\t%d\n`- Jail list:\t%s\n", len(st.Jails), strings.Join(names, ", "))
}

func printJailStatus(w io.Writer, js control.JailStatus) {
	fmt.Fprintf(w, "Status for the jail: %s\n", js.Name)
	fmt.Fprintf(w, "|- Filter\n")
	fmt.Fprintf(w, "|  |- Currently failed:\t%d\n", js.CurrentlyFailed)
	fmt.Fprintf(w, "|  |- Total failed:\t%d\n", js.TotalFailed)
	if len(js.Journal) > 0 {
		fmt.Fprintf(w, "|  |- File list:\t%s\n", strings.Join(js.Files, " "))
		fmt.Fprintf(w, "|  `- Journal matches:\t%s\n", strings.Join(js.Journal, " + "))
	} else {
		fmt.Fprintf(w, "|  `- File list:\t%s\n", strings.Join(js.Files, " "))
	}
	if js.RateLimit != "" {
		fmt.Fprintf(w, "|- Rate limit\n")
		fmt.Fprintf(w, "|  |- Setting:\t%s\n", js.RateLimit)
		fmt.Fprintf(w, "|  `- Rate-limited SYNs dropped:\t%s\n", rateLimitedText(js.RateLimited))
	}
	if t := js.Timings; t != nil {
		fmt.Fprintf(w, "|- Timings\n")
		fmt.Fprintf(w, "|  |- maxretry:\t%d\n", t.MaxRetry)
		fmt.Fprintf(w, "|  |- findtime:\t%s\n", t.FindTime)
		if t.Increment {
			fmt.Fprintf(w, "|  |- bantime:\t%s\n", t.BanTime)
			maxt := t.MaxTime
			if maxt == "" {
				maxt = "none"
			}
			fmt.Fprintf(w, "|  `- bantime.increment:\tfactor %g, maxtime %s\n", t.Factor, maxt)
		} else {
			fmt.Fprintf(w, "|  `- bantime:\t%s\n", t.BanTime)
		}
	}
	fmt.Fprintf(w, "`- Actions\n")
	fmt.Fprintf(w, "   |- Currently banned:\t%d\n", js.CurrentlyBanned)
	fmt.Fprintf(w, "   |- Total banned:\t%d\n", js.TotalBanned)
	fmt.Fprintf(w, "   `- Banned IP list:\t%s\n", strings.Join(js.BannedAddrs, " "))
}

// rateLimitedText is a jail's rate-limited SYN count, or "n/a" when the
// backend does not rate-limit (iptables): the limit is set but unenforced.
func rateLimitedText(n *uint64) string {
	if n == nil {
		return "n/a"
	}
	return strconv.FormatUint(*n, 10)
}

func sortedKeys(m map[string]uint64) []string {
	return slices.Sorted(maps.Keys(m))
}

func cmdReload(e *env, args []string) int {
	fs := e.newFlags("reload")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("reload", err)
	}
	if len(pos) > 1 {
		return e.fail("reload", usageErr("usage: xdpban reload [JAIL]"))
	}
	if len(pos) == 1 && pos[0] == "" {
		return e.fail("reload", usageErr("empty jail name: usage: xdpban reload [JAIL]"))
	}
	if err := e.requireRoot("reload"); err != nil {
		return e.fail("reload", err)
	}
	jail := ""
	if len(pos) == 1 {
		jail = pos[0]
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	c, err := e.daemonClient(ctx)
	if err != nil {
		return e.fail("reload", err)
	}
	if c == nil {
		return e.fail("reload", fmt.Errorf("no daemon answers on %s: start it with 'xdpban run' (or systemctl start xdpban)", e.socketPath()))
	}
	defer c.Close()
	warns, err := c.Reload(ctx, jail)
	if err != nil {
		return e.fail("reload", remote(err))
	}
	// The reload happened: warnings do not change the exit code.
	for _, w := range warns {
		fmt.Fprintf(e.stderr, "xdpban: reload: warning: %s\n", w)
	}
	if jail == "" {
		fmt.Fprintln(e.stdout, "reloaded")
	} else {
		fmt.Fprintf(e.stdout, "reloaded jail %s\n", jail)
	}
	return exitOK
}

func cmdDetach(e *env, args []string) int {
	fs := e.newFlags("detach")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("detach", err)
	}
	if len(pos) > 0 {
		return e.fail("detach", usageErr("unexpected argument %q: usage: xdpban detach", pos[0]))
	}
	if err := e.requireRoot("detach"); err != nil {
		return e.fail("detach", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	c, err := e.daemonClient(ctx)
	if err != nil {
		return e.fail("detach", err)
	}
	if c != nil {
		defer c.Close()
		if err := c.Detach(ctx); err != nil {
			return e.fail("detach", remote(err))
		}
		fmt.Fprintln(e.stdout, "detached; the daemon stopped, stored bans come back at its next start")
		return exitOK
	}
	b, _, err := enforce.Adopt(ctx, e.pinDir(), func() (*config.Config, error) { return loadConfig(e.config, "") })
	if errors.Is(err, enforce.ErrNothingToAdopt) {
		fmt.Fprintf(e.stdout, "nothing attached at %s and no nftables table or iptables chain to remove\n", e.pinDir())
		return exitOK
	}
	if err != nil {
		return e.fail("detach", err)
	}
	if err := b.Detach(); err != nil {
		return e.fail("detach", err)
	}
	if b.Kind() == "xdp" {
		fmt.Fprintf(e.stdout, "detached %s; stored bans come back at the daemon's next start\n", e.pinDir())
		return exitOK
	}
	if b.Kind() == "nftables" {
		fmt.Fprintln(e.stdout, "removed the nftables table inet xdpban; stored bans come back at the daemon's next start")
		return exitOK
	}
	fmt.Fprintln(e.stdout, "removed the iptables chain and sets; stored bans come back at the daemon's next start")
	return exitOK
}

func (e *env) printJSON(v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.fail("", err)
	}
	return exitOK
}

// filterEntries keeps the entries that cover or overlap want (all when
// want is the zero prefix) and belong to jail (all when "").
func filterEntries(es []control.Entry, want netip.Prefix, jail string) []control.Entry {
	out := []control.Entry{}
	for _, en := range es {
		if jail != "" && en.Jail != jail {
			continue
		}
		if want.IsValid() {
			p, err := netip.ParsePrefix(en.Addr)
			if err != nil || !p.Overlaps(want) {
				continue
			}
		}
		out = append(out, en)
	}
	return out
}
