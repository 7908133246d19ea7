package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
)

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
	svc, err := e.service(ctx)
	if err != nil {
		return e.fail("status", err)
	}
	defer svc.Close()
	if len(pos) == 1 {
		js, err := svc.JailStatus(ctx, pos[0])
		if err != nil {
			return e.fail("status", err)
		}
		if *jsonOut {
			return e.printJSON(js)
		}
		printJailStatus(e.stdout, js)
		return exitOK
	}
	st, err := svc.Status(ctx)
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
	for _, k := range slices.Sorted(maps.Keys(st.Counters)) {
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
		for _, k := range slices.Sorted(maps.Keys(f.Refused)) {
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
		fmt.Fprintf(w, "|  |- findtime:\t%s\n", shortText(t.FindTime))
		if t.Increment {
			fmt.Fprintf(w, "|  |- bantime:\t%s\n", shortText(t.BanTime))
			maxt := shortText(t.MaxTime)
			maxt = cmp.Or(maxt, "none")
			fmt.Fprintf(w, "|  `- bantime.increment:\tfactor %g, maxtime %s\n", t.Factor, maxt)
		} else {
			fmt.Fprintf(w, "|  `- bantime:\t%s\n", shortText(t.BanTime))
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

// shortText is shortDuration of a duration in Go's form ("1h0m0s" -> "1h");
// anything else as it is.
func shortText(s string) string {
	if d, err := time.ParseDuration(s); err == nil {
		return shortDuration(d)
	}
	return s
}
