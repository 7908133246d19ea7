package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/xdpban/xdpban/internal/nspair"
)

// Networks are internal/nspair pairs; everything this program creates is
// registered with the cleanup stack, which main runs on exit, on
// SIGINT/SIGTERM and after a panic.

// nsPrefix and pinPrefix name every namespace and pin dir this program
// creates, with its pid, so a later run can remove what a killed run
// (SIGKILL) left behind.
const (
	nsPrefix  = "xbb-"
	pinPrefix = "xdpban-bench-"
	bpffs     = "/sys/fs/bpf"
)

// cleanups is the process-wide undo stack.
var cleanups struct {
	sync.Mutex
	fns []func()
}

func atCleanup(f func()) {
	cleanups.Lock()
	cleanups.fns = append(cleanups.fns, f)
	cleanups.Unlock()
}

// runCleanups undoes everything, newest first. Safe to call twice.
func runCleanups() {
	cleanups.Lock()
	fns := cleanups.fns
	cleanups.fns = nil
	cleanups.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// sweepStale deletes namespaces, pin dirs and scratch dirs of earlier
// runs whose process is gone (a run killed with SIGKILL cannot clean up
// itself; its daemon was told to stop by Pdeathsig).
func sweepStale() {
	ns, err := nspair.Sweep(nsPrefix)
	pins, perr := nspair.SweepDir(bpffs, pinPrefix)
	tmps, terr := nspair.SweepDir(os.TempDir(), pinPrefix)
	if len(ns) > 0 || len(pins) > 0 || len(tmps) > 0 {
		slog.Info("removed what an earlier run left behind", "netns", ns, "pin_dirs", pins, "scratch_dirs", tmps)
	}
	if err := errors.Join(err, perr, terr); err != nil {
		slog.Warn("sweeping an earlier run's leftovers", "err", err)
	}
}

// pinDir returns a fresh bpffs directory name of this run (not created),
// removed at cleanup.
func pinDir() string {
	dir := filepath.Join(bpffs, pinPrefix+nspair.NewID())
	atCleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// newPair builds the host and attacker namespaces and the veth between
// them, deleted at cleanup.
func newPair() (*nspair.Pair, error) {
	p, err := nspair.New(nspair.Config{Prefix: nsPrefix, IfPrefix: "xbb"})
	if err != nil {
		return nil, fmt.Errorf("namespace pair: %w", err)
	}
	atCleanup(func() {
		if err := p.Close(); err != nil {
			slog.Warn("delete namespace pair", "err", err)
		}
	})
	return p, nil
}

// newNS is a lone namespace of this run, deleted at cleanup.
func newNS(role string) (*nspair.NS, error) {
	ns, err := nspair.NewNS(nsPrefix, role)
	if err != nil {
		return nil, err
	}
	atCleanup(func() {
		if err := ns.Close(); err != nil {
			slog.Warn("delete netns", "netns", ns.Name, "err", err)
		}
	})
	return ns, nil
}
