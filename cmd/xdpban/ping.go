package main

import (
	"context"
	"fmt"
	"time"
)

func init() {
	commands = append(commands, command{"ping", "check that the daemon answers on its socket (ping [--json]); exit 1 when it does not", cmdPing})
	summaries["ping"] = commands[len(commands)-1].summary
}

// cmdPing is fail2ban-client's ping: health checks and scripts wait on it.
func cmdPing(e *env, args []string) int {
	fs := e.newFlags("ping")
	jsonOut := fs.Bool("json", false, "print {socket, answered, rtt_ms} as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("ping", err)
	}
	if len(pos) > 0 {
		return e.fail("ping", usageErr("unexpected argument %q: usage: xdpban ping [--json]", pos[0]))
	}
	ctx, cancel := context.WithTimeout(e.ctx, requestTimeout)
	defer cancel()
	start := time.Now()
	c, err := e.daemonClient(ctx)
	rtt := time.Since(start)
	if c != nil {
		c.Close()
	}
	if err == nil && c == nil {
		err = fmt.Errorf("no daemon answers on %s: start it (systemctl start xdpban, or xdpban run)", e.socketPath())
	}
	if *jsonOut {
		out := map[string]any{"socket": e.socketPath(), "answered": err == nil}
		if err == nil {
			out["rtt_ms"] = float64(rtt.Microseconds()) / 1000
		} else {
			out["error"] = err.Error()
		}
		if c := e.printJSON(out); c != exitOK {
			return c
		}
		if err != nil {
			return exitFailure
		}
		return exitOK
	}
	if err != nil {
		return e.fail("ping", err)
	}
	fmt.Fprintf(e.stdout, "pong from %s in %s\n", e.socketPath(), rtt.Round(time.Microsecond))
	return exitOK
}
