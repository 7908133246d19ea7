// Command demo is `make demo`: it shows xdpban banning an SSH password
// guesser, live, on any Linux box with root. It builds a bastion and an
// attacker network namespace joined by a veth pair (documentation
// addresses, no default route, nothing in the root namespace), starts
// bin/xdpban in the bastion with the shipped sshd jail pointed at a
// scratch log, lets the attacker fail logins while it sends traffic, and
// narrates: failures counted, the ban, packets dropped in XDP, the unban
// when the short bantime runs out, and the pinned map as bpftool sees it.
//
// Everything it creates is removed on exit, on Ctrl-C/SIGTERM and on
// failure; what a run killed with SIGKILL left behind is removed by the
// next run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(cli(os.Args[1:]))
}

func cli(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	o := defaultOptions()
	fs.StringVar(&o.XDPBan, "xdpban", o.XDPBan, "xdpban `BINARY` to run (make build)")
	fs.DurationVar(&o.BanTime, "bantime", o.BanTime, "how long the ban lasts (the jail's bantime)")
	fs.IntVar(&o.MaxRetry, "maxretry", o.MaxRetry, "failed logins before the ban (the jail's maxretry)")
	fs.SetOutput(io.Discard)
	const usage = "usage: go run ./cmd/xdpban-demo [-xdpban BINARY] [-bantime D] [-maxretry N]"
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println(usage)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(os.Stderr, "demo: %v: %s\n", err, usage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected argument %q: %s\n", fs.Arg(0), usage)
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (network namespaces, XDP): run `sudo make demo`")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Out = os.Stdout
	_, err := run(ctx, o)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "demo: interrupted; everything it created has been removed")
		return 130
	default:
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
}

// wait sleeps for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
