package enforce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	goiptables "github.com/coreos/go-iptables/iptables"

	dropevents "github.com/xdpban/xdpban/daemon/drops"
	"github.com/xdpban/xdpban/fallback/iptables"
	"github.com/xdpban/xdpban/fallback/nftables"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/loader"
)

var (
	// ErrNothingToAdopt: no daemon left a backend enforcing (no XDP maps
	// pinned, no nftables table, no iptables chain).
	ErrNothingToAdopt = errors.New("nothing left enforcing")
	// ErrPinPath: pin_path is not under a bpf filesystem, a setting to
	// fix (the CLI exits 2 for it).
	ErrPinPath = loader.ErrPinPath
)

// Adopt opens what a stopped daemon left enforcing, for the CLI working
// without a daemon: the XDP maps pinned at pinDir, or else the nftables
// table inet xdpban, or else the iptables chain and sets. It never
// creates anything. load reads the
// configuration, only to adopt iptables, so that adopting changes no rule
// the daemon set up.
// The Widen returned is the policy the backend was set up with.
func Adopt(ctx context.Context, pinDir string, load func() (*config.Config, error)) (bans.Backend, bans.Widen, error) {
	x, err := loader.OpenPinned(pinDir)
	if err == nil {
		return x, x.Widen(), nil
	}
	if _, serr := os.Stat(pinDir); serr == nil && !errors.Is(err, loader.ErrNotLoaded) {
		return nil, bans.Widen{}, err
	}
	b, w, ok, err := adoptNFTables(ctx, load)
	if err != nil || ok {
		return b, w, err
	}
	b, w, ok, err = adoptIPTables(ctx, load)
	if err != nil {
		return nil, bans.Widen{}, err
	}
	if !ok {
		return nil, bans.Widen{}, nothing(fmt.Sprintf("no XDP maps are pinned at %s, there is no nftables table inet %s and no %s iptables chain", pinDir, nftables.DefaultTable, iptables.DefaultChain))
	}
	return b, w, nil
}

func adoptNFTables(ctx context.Context, load func() (*config.Config, error)) (bans.Backend, bans.Widen, bool, error) {
	if ok, err := nftables.Exists("", ""); err != nil || !ok {
		return nil, bans.Widen{}, false, nil // no table, or no nf_tables: nothing to adopt
	}
	cfg, err := load()
	if err != nil {
		return nil, bans.Widen{}, false, fmt.Errorf("configuration (to adopt the nftables backend as the daemon set it up): %w", err)
	}
	o := NFTablesOptions(cfg.Daemon)
	o.Existing, o.Logger = true, slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := nftables.Open(ctx, o)
	if err != nil {
		return nil, bans.Widen{}, false, fmt.Errorf("adopt the nftables backend: %w", err)
	}
	return b, bans.Widen{IPv6: cfg.Daemon.IPv6Prefix}, true, nil
}

func adoptIPTables(ctx context.Context, load func() (*config.Config, error)) (bans.Backend, bans.Widen, bool, error) {
	ipt, err := goiptables.New()
	if err != nil {
		return nil, bans.Widen{}, false, nil // no iptables here: nothing to adopt
	}
	exists, err := ipt.ChainExists("filter", iptables.DefaultChain)
	if err != nil || !exists {
		return nil, bans.Widen{}, false, nil
	}
	cfg, err := load()
	if err != nil {
		return nil, bans.Widen{}, false, fmt.Errorf("configuration (to adopt the iptables backend as the daemon set it up): %w", err)
	}
	o := iptablesOptions(cfg.Daemon)
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := iptables.Open(ctx, o)
	if err != nil {
		return nil, bans.Widen{}, false, fmt.Errorf("adopt the iptables backend: %w", err)
	}
	return b, bans.Widen{IPv6: cfg.Daemon.IPv6Prefix}, true, nil
}

// AdoptDrops reads the drop events of the XDP program a stopped daemon
// left pinned at pinDir (the ring buffer has one reader: the daemon, when
// it runs), until ctx ends; closing releases the maps afterwards.
// ErrNothingToAdopt when no XDP program is pinned there.
func AdoptDrops(ctx context.Context, pinDir string) (events <-chan dropevents.Event, closeFn func(), err error) {
	x, err := loader.OpenPinned(pinDir)
	if err != nil {
		if _, serr := os.Stat(pinDir); errors.Is(serr, os.ErrNotExist) || errors.Is(err, loader.ErrNotLoaded) {
			return nil, nil, nothing("no XDP program is pinned at " + pinDir)
		}
		return nil, nil, err
	}
	evs, err := x.DropEvents(ctx)
	if err != nil {
		x.Close()
		return nil, nil, err
	}
	return dropevents.Convert(ctx, evs), func() { x.Close() }, nil
}

// nothing is ErrNothingToAdopt saying what was looked for, so the CLI can
// put it in a sentence of its own.
type nothing string

func (n nothing) Error() string        { return string(n) }
func (n nothing) Is(target error) bool { return target == ErrNothingToAdopt }
