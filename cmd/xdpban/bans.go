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

	svc, err := e.service(ctx)
	if err != nil {
		return e.fail("ban", err)
	}
	defer svc.Close()
	var banned []string
	imported := false
	if *from != "" && !*jsonOut && len(items) > 1 {
		// A file goes whole, as text: checked, enforced and stored in
		// one step (an older daemon takes it in parts).
		n, err := importBans(ctx, svc, items, *jail, *forS, *force)
		switch {
		case errors.Is(err, control.ErrNoImport):
		case err != nil:
			return e.fail("ban", err)
		default:
			imported, banned = true, make([]string, n) // only the count is printed
		}
	}
	if !imported {
		if banned, err = svc.Ban(ctx, items); err != nil {
			return e.fail("ban", err)
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
func importBans(ctx context.Context, c control.Service, items []control.BanItem, jail, forS string, force bool) (int, error) {
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

func durText(s string) string {
	d, _ := daemon.ParseBanTime(s)
	return shortDuration(d)
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
