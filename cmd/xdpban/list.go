package main

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
)

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
	svc, err := e.service(ctx)
	if err != nil {
		return e.fail("list", err)
	}
	defer svc.Close()
	entries, err := svc.List(ctx)
	if err != nil {
		return e.fail("list", err)
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
			left = shortDuration(max(b.Remaining(now).Round(time.Second), time.Second))
		}
		// The fleet node that decided it; "local" for this host's own.
		origin := cmp.Or(en.Origin, "local")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", en.Addr, en.Jail, left, en.Packets, en.Bytes, origin)
	}
	tw.Flush()
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
