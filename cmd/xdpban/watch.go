package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/daemon/enforce"
)

// cmdWatch streams drop events live: from the daemon over the control
// socket, or straight from the pinned ring buffer when no daemon runs.
// Output is drops' line format, or one JSON object a line with --json.
func cmdWatch(e *env, args []string) int {
	fs := e.newFlags("watch")
	jsonOut := fs.Bool("json", false, "print one JSON object per drop event")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return e.fail("watch", err)
	}
	if len(pos) > 1 {
		return e.fail("watch", usageErr("too many arguments %q: usage: xdpban watch [--json] [ADDR|CIDR]", pos))
	}
	var filterArg string
	if len(pos) == 1 {
		filterArg = pos[0]
	}
	filter, err := drops.ParseFilter(filterArg)
	if err != nil {
		return e.fail("watch", usageErr("%v", err))
	}
	if err := e.requireRoot("watch"); err != nil {
		return e.fail("watch", err)
	}
	out := &eventWriter{w: bufio.NewWriter(e.stdout), json: *jsonOut}
	ctx := e.ctx
	c, err := e.daemonClient(ctx)
	if err != nil {
		return e.fail("watch", err)
	}
	if c != nil {
		defer c.Close()
		err = c.WatchDrops(ctx, filterArg, out.write)
	} else {
		err = e.watchPinned(ctx, func(ev drops.Event) error {
			if !drops.Match(filter, ev) {
				return nil
			}
			return out.write(ev)
		})
	}
	switch {
	case err == nil, ctx.Err() != nil, errors.Is(err, errStdoutGone):
		return exitOK
	default:
		return e.fail("watch", remote(err))
	}
}

// errStdoutGone: the reader of our output went away (`| head`).
var errStdoutGone = errors.New("output closed")

type eventWriter struct {
	w    *bufio.Writer
	json bool
	buf  []byte
}

// write prints one event and flushes at once: watch is read live.
func (o *eventWriter) write(ev drops.Event) error {
	if o.json {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		o.buf = append(b, '\n')
	} else {
		o.buf = append(ev.AppendLine(o.buf[:0]), '\n')
	}
	if _, err := o.w.Write(o.buf); err != nil {
		return fmt.Errorf("%w: %w", errStdoutGone, err)
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errStdoutGone, err)
	}
	return nil
}

// watchPinned reads drop events without a daemon, straight from the
// pinned ring buffer (which has one reader: the daemon, when it runs).
func (e *env) watchPinned(ctx context.Context, fn func(drops.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, closeFn, err := enforce.AdoptDrops(ctx, e.pinDir())
	if errors.Is(err, enforce.ErrNothingToAdopt) {
		return fmt.Errorf("no daemon answers on %s and %w: start the daemon with 'xdpban run', or pass the --socket/--pin-path it uses", e.socketPath(), err)
	}
	if err != nil {
		return err
	}
	defer closeFn()
	for ev := range events {
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}
