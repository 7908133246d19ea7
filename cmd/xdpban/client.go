package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/banlog"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/daemon/ledger"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// requestTimeout bounds one CLI request to the daemon.
const requestTimeout = 2 * time.Minute

// pingTimeout is how long the CLI waits for a daemon on the socket to
// answer before saying it is stuck (a variable for tests).
var pingTimeout = 5 * time.Second

func (e *env) socketPath() string {
	if e.socket != "" {
		return e.socket
	}
	return cmp.Or(e.daemonSettings().Socket, control.DefaultSocket)
}

func (e *env) pinDir() string {
	if e.pinPath != "" {
		return e.pinPath
	}
	return cmp.Or(e.daemonSettings().PinPath, daemon.DefaultPinPath)
}

func (e *env) stateDirPath() string {
	if e.stateDir != "" {
		return e.stateDir
	}
	return cmp.Or(e.daemonSettings().StateDir, daemon.DefaultStateDir)
}

// daemonClient returns a client when a daemon answers on the socket, nil
// when none runs (the caller then works on the pinned maps directly), or
// an error for anything else (permission).
func (e *env) daemonClient(ctx context.Context) (*control.Client, error) {
	c := control.NewClient(e.socketPath())
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	err := c.Ping(pctx)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, control.ErrNoDaemon):
		c.Close()
		return nil, nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// Something holds the socket and never answers: a stopped or
		// stuck daemon. The maps must not be touched behind it.
		c.Close()
		return nil, fmt.Errorf("the daemon on %s does not answer (waited %s): it is stopped or stuck; see its log (journalctl -u xdpban) or restart it", e.socketPath(), pingTimeout)
	default:
		c.Close()
		return nil, err
	}
}

// direct is the CLI working without a daemon: on the pinned XDP maps and
// the ban database, through the same Core the daemon uses, so the next
// daemon start finds the store and the kernel in agreement.
type direct struct {
	core  *ledger.Core
	st    *store.Store
	bl    *banlog.Log
	x     bans.Backend
	widen bans.Widen
	// cfg is the configuration, read once for the whole command; cfgErr
	// why it did not load (a direct ban then refuses to guess what is
	// protected).
	cfg    *config.Config
	cfgErr error
}

func (e *env) openDirect(ctx context.Context) (*direct, error) {
	cfg, cfgErr := loadConfig(e.config, "")
	x, widen, err := e.openDirectBackend(ctx, func() (*config.Config, error) { return cfg, cfgErr })
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(e.stateDirPath(), daemon.DBFile), quiet)
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("ban database: %w", err)
	}
	bl, err := banlog.Open(e.banLogPath(), quiet)
	if err != nil {
		// The ban log is a record, not enforcement: go on without it.
		bl, _ = banlog.Open("", quiet)
	}
	c := ledger.NewCore(x, st, bl, quiet)
	if cfgErr == nil && cfg.Daemon.Fleet.Enabled {
		// What is banned or unbanned here reaches the fleet at the
		// daemon's next start.
		c.Observers = append(c.Observers, daemon.FleetQueue(st, cfg.Daemon.Fleet.Node, func(err error) {
			fmt.Fprintf(e.stderr, "xdpban: warning: the change holds here but could not be queued for the fleet: %v\n", err)
		}))
	}
	if _, err := c.Restore(ctx); err != nil {
		x.Close()
		st.Close()
		return nil, err
	}
	return &direct{core: c, st: st, bl: bl, x: x, widen: widen, cfg: cfg, cfgErr: cfgErr}, nil
}

// openDirectBackend opens what a stopped daemon left enforcing
// (enforce.Adopt). It never creates anything: no pins and no chain is an
// error.
func (e *env) openDirectBackend(ctx context.Context, load func() (*config.Config, error)) (bans.Backend, bans.Widen, error) {
	b, w, err := enforce.Adopt(ctx, e.pinDir(), load)
	if errors.Is(err, enforce.ErrNothingToAdopt) {
		return nil, bans.Widen{}, fmt.Errorf("no daemon answers on %s, %w: start the daemon with 'xdpban run', or pass the --socket/--pin-path it uses", e.socketPath(), err)
	}
	return b, w, err
}

// jailScope gives, with no daemon to ask, the scope of bans given --jail:
// the jail's in the configuration. A configuration that does not read
// bans all traffic, the safe side.
func (d *direct) jailScope(jail string) func(string) bans.Scope {
	if jail == "" || d.cfgErr != nil {
		return nil
	}
	return func(j string) bans.Scope { return daemon.JailScope(d.cfg, j) }
}

func (d *direct) Close() {
	d.x.Close()
	d.st.Close()
	d.bl.Close()
}

func (e *env) banLogPath() string {
	v := cmp.Or(e.daemonSettings().BanLog, banlog.DefaultPath)
	if v == "none" {
		return ""
	}
	return v
}
