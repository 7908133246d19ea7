package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
	"golang.org/x/sync/errgroup"
)

// banChunk is how many bans go in one request: well under control.MaxBody
// (an item is under 100 bytes of JSON).
const banChunk = 5000

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
	case *from != "" && !*jsonOut:
		// The file goes whole, as it is: the daemon (or the direct
		// mode, the same way) parses and checks it and names its bad
		// lines.
		return e.importFile(*from, control.ImportRequest{Jail: *jail, For: *forS, Force: *force})
	case *from != "":
		raw, err := e.readFromFile(*from)
		if err == nil {
			items, err = banFileItems(raw, control.ImportRequest{Jail: *jail, For: *forS})
		}
		if err != nil {
			return e.fail("ban", banFileErr(e, *from, err))
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

	svc, err := e.service(ctx)
	if err != nil {
		return e.fail("ban", err)
	}
	defer svc.Close()
	banned, err := svc.Ban(ctx, items)
	if err != nil {
		return e.fail("ban", err)
	}
	if *jsonOut {
		return e.printJSON(control.BanResponse{Banned: nonNil(banned)})
	}
	what := banFor(*forS)
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

// importFile bans --from-file's addresses as one import. A daemon from
// before imports gets them in checked parts instead (sendBans).
func (e *env) importFile(name string, req control.ImportRequest) int {
	if err := e.requireRoot("ban"); err != nil {
		return e.fail("ban", err)
	}
	raw, err := e.readFromFile(name)
	if err != nil {
		return e.fail("ban", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	svc, err := e.service(ctx)
	if err != nil {
		// Bad lines are the file's fault whatever runs: say so first.
		if _, ferr := banFileItems(raw, req); ferr != nil {
			return e.fail("ban", banFileErr(e, name, ferr))
		}
		return e.fail("ban", err)
	}
	defer svc.Close()
	n, err := svc.Import(ctx, req, bytes.NewReader(raw))
	if errors.Is(err, control.ErrNoImport) {
		var items []control.BanItem
		if items, err = banFileItems(raw, req); err == nil {
			var banned []string
			banned, err = svc.Ban(ctx, items)
			n = len(banned)
		}
	}
	if err != nil {
		return e.fail("ban", banFileErr(e, name, err))
	}
	fmt.Fprintf(e.stdout, "banned %d addresses in jail %s %s\n", n, req.Jail, banFor(req.For))
	return exitOK
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(bansInFlight)
	for i := 0; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error {
			got, err := c.Ban(gctx, items[i*banChunk:min((i+1)*banChunk, len(items))])
			res[i] = got
			return err
		})
	}
	first := g.Wait()
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

// banFor is how long --for bans, as the CLI says it: "for 1h",
// "permanently".
func banFor(forS string) string {
	d, _ := daemon.ParseBanTime(forS)
	if d == 0 {
		return "permanently"
	}
	return "for " + shortDuration(d)
}

// shortDuration is d as an operator writes it: 1h, 90m, 1h30m, 45s (Go's
// String gives 1h0m0s). JSON keeps Go's form, which scripts parse.
func shortDuration(d time.Duration) string {
	if d <= 0 || d%time.Second != 0 {
		return d.String()
	}
	h, m, sec := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec > 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

func fileName(f string) string {
	if f == "-" {
		return "standard input"
	}
	return f
}

// banFileErr is err of --from-file name, as the CLI reports it: every bad
// line on stderr, then the one-line summary.
func banFileErr(e *env, name string, err error) error {
	var bad *control.BadLinesError
	switch {
	case errors.As(err, &bad):
		for _, l := range bad.Lines {
			fmt.Fprintf(e.stderr, "xdpban: ban: %s: %s\n", fileName(name), l)
		}
		return usageErr("%s: %s", fileName(name), bad.Summary())
	case errors.Is(err, control.ErrLineTooLong):
		return usageErr("%s: %v", fileName(name), strings.TrimPrefix(err.Error(), control.ErrLineTooLong.Error()+": "))
	case errors.Is(err, errUsage):
		return usageErr("%s: %s", fileName(name), strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
	}
	return fmt.Errorf("%s: %w", fileName(name), err)
}

// readFromFile reads --from-file whole (a million lines are 25 MB).
func (e *env) readFromFile(name string) ([]byte, error) {
	var raw []byte
	var err error
	if name == "-" {
		raw, err = io.ReadAll(e.stdin)
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, usageErr("--from-file: %v", err)
	}
	return raw, nil
}

// banFileItems reads --from-file for bans sent one by one (--json, an
// older daemon): all or nothing, every bad line named (a
// control.BadLinesError), nothing banned.
func banFileItems(raw []byte, req control.ImportRequest) ([]control.BanItem, error) {
	var items []control.BanItem
	bad := &control.BadLinesError{}
	err := control.ScanBanText(string(raw), func(line int, s string) error {
		if err := checkBanAddr(s); err != nil {
			bad.Add(line, err)
			return nil
		}
		items = append(items, control.BanItem{Addr: s, Jail: req.Jail, For: req.For, Force: req.Force})
		return nil
	})
	switch {
	case err != nil: // ErrLineTooLong: fn refuses nothing
		return nil, err
	case bad.Total > 0:
		return nil, bad
	case len(items) == 0:
		return nil, usageErr("no addresses in it")
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
	svc, err := e.service(ctx)
	if err != nil {
		return e.fail("unban", err)
	}
	defer svc.Close()
	n, err := svc.Unban(ctx, control.UnbanRequest{Addrs: pos, Jail: *jail, All: *all})
	if err != nil {
		return e.fail("unban", err)
	}
	if *jsonOut {
		return e.printJSON(control.UnbanResponse{Removed: n})
	}
	fmt.Fprintf(e.stdout, "unbanned %d\n", n)
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
