// Command bench is `make bench`: it measures xdpban against the tools
// it replaces or competes with (xdp-filter, fail2ban, iptables with a chain
// of per-address rules, iptables with ipset) in one run on one machine,
// and writes bench/results.md (for people) and bench/results.json (the
// same figures for programs).
//
// Everything that touches a network runs inside network namespaces this
// program creates and removes, on exit, on SIGINT/SIGTERM and after a
// panic; a run killed with SIGKILL is cleaned up by the next run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/xdpban/xdpban/internal/nspair"
)

// opts are the command-line settings every section sees.
type opts struct {
	quick bool
	// bin is the xdpban binary the daemon sections run.
	bin string
	// work is the run's scratch directory (logs, configs, sockets).
	work string
}

type sectionDef struct {
	id, title string
	run       func(ctx context.Context, o opts, s *Section) error
	// budget bounds the section so the whole run stays under 15 min.
	budget time.Duration
}

var sections = []sectionDef{
	{"xdp_prog", "Per-packet cost in XDP (BPF_PROG_TEST_RUN)", sectionXDPProg, 4 * time.Minute},
	{"flood", "Enforcement under flood: XDP vs nftables vs iptables+ipset vs per-address chain, IPv4 and IPv6", sectionFlood, 5 * time.Minute},
	{"log_match", "Log matching: xdpban vs fail2ban-regex", sectionLogMatch, 3 * time.Minute},
	{"ban_latency", "Ban latency: log line appended → first packet dropped", sectionLatency, 4 * time.Minute},
	{"control", "Control plane: bans/s through the CLI, 1M-address import, daemon RSS", sectionControl, 3 * time.Minute},
	{"fleet", "Fleet: a ban on one host → first packet dropped on the others (NATS JetStream, 3 embedded nodes, replicas 3)", sectionFleet, 4 * time.Minute},
}

func main() {
	os.Exit(run())
}

func run() (code int) {
	var (
		out   = flag.String("out", "bench", "directory for results.md and results.json")
		only  = flag.String("only", "", "comma-separated section ids to run (default all): "+sectionIDs())
		quick = flag.Bool("quick", false, "fewer repeats and smaller sizes (smoke test; figures not comparable)")
		bin   = flag.String("bin", "bin/xdpban", "xdpban binary for the daemon sections (make build)")
	)
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (network namespaces, XDP, netfilter): run `sudo make bench`")
		return 2
	}
	want := map[string]bool{}
	for _, id := range strings.Split(*only, ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		if !slices.ContainsFunc(sections, func(d sectionDef) bool { return d.id == id }) {
			fmt.Fprintf(os.Stderr, "bench: unknown section %q in -only: use one of %s\n", id, sectionIDs())
			return 2
		}
		want[id] = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if p := recover(); p != nil {
			slog.Error("panic", "panic", p, "stack", string(debug.Stack()))
			code = 1
		}
		runCleanups()
	}()
	sweepStale()

	// Named with the pid (nspair.NewID) so that sweepStale removes it
	// after a run killed with SIGKILL.
	work, err := os.MkdirTemp("", pinPrefix+nspair.NewID()+"-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: create scratch dir: %v\n", err)
		return 1
	}
	atCleanup(func() { os.RemoveAll(work) })
	o := opts{quick: *quick, work: work}
	if o.bin, err = filepath.Abs(*bin); err != nil {
		fmt.Fprintf(os.Stderr, "bench: binary path %q: %v\n", *bin, err)
		return 2
	}

	start := time.Now()
	rep := &Report{Generated: start, Machine: probeMachine(), Quick: *quick}
	for _, d := range sections {
		if len(want) > 0 && !want[d.id] {
			continue
		}
		s := &Section{ID: d.id, Title: d.title, Machine: rep.Machine, Figures: []Figure{}, Generated: time.Now()}
		rep.Sections = append(rep.Sections, s)
		slog.Info("section start", "section", d.id)
		t0 := time.Now()
		sctx, cancel := context.WithTimeout(ctx, d.budget)
		err := d.run(sctx, o, s)
		cancel()
		s.Elapsed = time.Since(t0).Round(100 * time.Millisecond).String()
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "bench: interrupted; cleaning up, no report written")
				return 130
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("over its %s budget: %w", d.budget, err)
			}
			// A failed section is reported, not hidden: the others still run.
			s.Skipped = "failed: " + err.Error()
			slog.Error("section failed", "section", d.id, "err", err)
		}
		slog.Info("section done", "section", d.id, "elapsed", s.Elapsed, "skipped", s.Skipped)
	}
	rep.Duration = time.Since(start).Round(time.Second).String()
	if len(want) > 0 {
		// A partial run replaces its sections in the committed report
		// and keeps the others, each with the time it ran.
		if err := rep.mergeInto(filepath.Join(*out, "results.json")); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	}

	if err := rep.writeJSON(filepath.Join(*out, "results.json")); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if err := rep.writeMarkdown(filepath.Join(*out, "results.md")); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Printf("wrote %s and %s in %s\n", filepath.Join(*out, "results.md"), filepath.Join(*out, "results.json"), rep.Duration)
	return 0
}

func sectionIDs() string {
	ids := make([]string, len(sections))
	for i, d := range sections {
		ids[i] = d.id
	}
	return strings.Join(ids, ",")
}
