package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/internal/config"
)

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
