// Package enforce picks the enforcement backend: XDP when the kernel and
// the interfaces allow it, else nftables where the kernel has nf_tables,
// else iptables + ipset, and says why, so `xdpban status` can show the operator which one runs and
// for what reason.
package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/xdpban/xdpban/fallback/iptables"
	"github.com/xdpban/xdpban/fallback/nftables"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/loader"
)

// ErrBadBackend is returned for a backend setting that is none of auto,
// xdp, nftables and iptables.
var ErrBadBackend = errors.New("unknown backend")

// Options make the choice testable: every step can be replaced.
type Options struct {
	// Jails give the iptables backend its port scope.
	Jails []config.Jail
	// ProbeXDP says whether XDP can work here; nil uses DefaultProbe.
	// An error means "use iptables" under backend = auto.
	ProbeXDP func(ctx context.Context, d config.Daemon) error
	// OpenXDP opens the XDP backend; nil uses loader.Open.
	OpenXDP func(ctx context.Context, d config.Daemon) (bans.Backend, error)
	// OpenIPTables opens the netfilter backend with the reason it was
	// chosen; nil uses iptables.Open with Netns.
	OpenIPTables func(ctx context.Context, d config.Daemon, reason string) (bans.Backend, error)
	// ProbeNFT says whether nftables can work here (auto, after XDP);
	// nil uses nftables.Probe in Netns: a scratch table made and deleted.
	ProbeNFT func(ctx context.Context, d config.Daemon) error
	// OpenNFTables opens the nftables backend; nil uses nftables.Open
	// with Netns.
	OpenNFTables func(ctx context.Context, d config.Daemon, reason string) (bans.Backend, error)
	// Netns is passed to the netfilter backends (tests); empty is the
	// caller's.
	Netns  string
	Logger *slog.Logger
}

// Opener adapts Open to the daemon's BackendOpener signature.
func (o Options) Opener() func(ctx context.Context, d config.Daemon) (bans.Backend, string, error) {
	return func(ctx context.Context, d config.Daemon) (bans.Backend, string, error) {
		return Open(ctx, d, o)
	}
}

// DefaultProbe checks what XDP needs before anything is loaded: the
// program and map types and helpers (loader.Probe, which also fails
// without CAP_BPF), and that every configured interface exists.
func DefaultProbe(_ context.Context, d config.Daemon) error {
	if err := loader.Probe(); err != nil {
		return err
	}
	for _, name := range d.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return fmt.Errorf("interface %q: %w", name, err)
		}
	}
	return nil
}

// Open opens the backend d.Backend names. Under "auto" (or empty) it
// probes XDP and opens it, and falls back to nftables, then to iptables,
// when the probe or the attach fails for a reason the host imposes (no
// XDP support, missing capability, driver refusing; no nf_tables, as on
// an iptables-legacy kernel); a configuration mistake (a bad pin path)
// is returned instead of hidden behind the fallback. reason is also what
// Status reports.
func Open(ctx context.Context, d config.Daemon, o Options) (b bans.Backend, reason string, err error) {
	o = o.withDefaults()
	switch strings.ToLower(strings.TrimSpace(d.Backend)) {
	case "xdp":
		reason = "backend = xdp"
		b, err = o.OpenXDP(ctx, d)
		if err != nil {
			return nil, "", fmt.Errorf("xdp backend: %w", err)
		}
		return withReason(b, reason), reason, nil
	case "nftables":
		reason = "backend = nftables"
		b, err = o.OpenNFTables(ctx, d, reason)
		if err != nil {
			return nil, "", fmt.Errorf("nftables backend: %w", err)
		}
		return b, reason, nil
	case "iptables":
		reason = "backend = iptables"
		b, err = o.OpenIPTables(ctx, d, reason)
		if err != nil {
			return nil, "", fmt.Errorf("iptables backend: %w", err)
		}
		return b, reason, nil
	case "", "auto":
	default:
		return nil, "", fmt.Errorf("%w %q in [xdpban] backend: use auto, xdp, nftables or iptables", ErrBadBackend, d.Backend)
	}

	why := o.ProbeXDP(ctx, d)
	if why == nil {
		b, err = o.OpenXDP(ctx, d)
		if err == nil {
			reason = "auto: xdp supported"
			o.Logger.Info("enforcing with xdp", "reason", reason)
			return withReason(b, reason), reason, nil
		}
		if !hostLimit(err) {
			return nil, "", fmt.Errorf("xdp backend: %w", err)
		}
		why = err
	}
	nftWhy := o.ProbeNFT(ctx, d)
	if nftWhy == nil {
		reason = "auto: xdp unavailable (" + oneLine(why) + "), using nftables"
		b, err = o.OpenNFTables(ctx, d, reason)
		if err == nil {
			o.Logger.Warn("xdp unavailable, enforcing with nftables", "reason", oneLine(why))
			return b, reason, nil
		}
		if !errors.Is(err, bans.ErrUnsupported) {
			return nil, "", fmt.Errorf("xdp unavailable (%s) and nftables backend failed: %w", oneLine(why), err)
		}
		nftWhy = err
	}
	reason = "auto: xdp unavailable (" + oneLine(why) + "), nftables unavailable (" + oneLine(nftWhy) + "), using iptables"
	o.Logger.Warn("xdp and nftables unavailable, enforcing with iptables", "xdp", oneLine(why), "nftables", oneLine(nftWhy))
	b, err = o.OpenIPTables(ctx, d, reason)
	if err != nil {
		return nil, "", fmt.Errorf("xdp unavailable (%s), nftables unavailable (%s) and iptables backend failed: %w", oneLine(why), oneLine(nftWhy), err)
	}
	return b, reason, nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ProbeXDP == nil {
		o.ProbeXDP = DefaultProbe
	}
	if o.OpenXDP == nil {
		jails := o.Jails
		o.OpenXDP = func(ctx context.Context, d config.Daemon) (bans.Backend, error) {
			rules, err := rateLimitRules(jails)
			if err != nil {
				return nil, err
			}
			return loader.Open(ctx, loader.Options{
				Interfaces: d.Interfaces, PinPath: d.PinPath, MapSizes: loader.MapSizes(d.MapSizes),
				IPv6Prefix: d.IPv6Prefix, Logger: o.Logger,
				DropLogRate: d.DropLogRate, DropLogGlobal: d.DropLogGlobal, RateLimits: rules,
			})
		}
	}
	if o.OpenIPTables == nil {
		netns, log := o.Netns, o.Logger
		o.OpenIPTables = func(ctx context.Context, d config.Daemon, reason string) (bans.Backend, error) {
			fo := iptablesOptions(d)
			fo.Reason, fo.Netns, fo.Logger = reason, netns, log
			return iptables.Open(ctx, fo)
		}
	}
	if o.ProbeNFT == nil {
		netns := o.Netns
		o.ProbeNFT = func(ctx context.Context, _ config.Daemon) error { return nftables.Probe(ctx, netns) }
	}
	if o.OpenNFTables == nil {
		netns, log := o.Netns, o.Logger
		o.OpenNFTables = func(ctx context.Context, d config.Daemon, reason string) (bans.Backend, error) {
			no := NFTablesOptions(d)
			no.Reason, no.Netns, no.Logger = reason, netns, log
			return nftables.Open(ctx, no)
		}
	}
	return o
}

// NFTablesOptions maps the daemon configuration to the nftables backend,
// with the iptables backend's settings: chains (INPUT: the input hook;
// FORWARD, DOCKER-USER: forward), interfaces, blocktype, map sizes. Port
// scope is per ban there, never per chain.
func NFTablesOptions(d config.Daemon) nftables.Options {
	o := nftables.Options{From: d.Chains, Interfaces: d.Interfaces, BlockType: d.BlockType}
	if n := d.MapSizes.V4 + d.MapSizes.V4Net; n > 0 {
		o.MaxElem = max(n, d.MapSizes.V6+d.MapSizes.V6Net)
	}
	return o
}

// hostLimit reports whether an XDP open failure comes from the host (so
// auto should fall back) rather than from the configuration.
func hostLimit(err error) bool {
	return errors.Is(err, bans.ErrUnsupported) ||
		errors.Is(err, os.ErrPermission) ||
		errors.Is(err, syscall.EOPNOTSUPP) ||
		errors.Is(err, syscall.Errno(524)) || // ENOTSUPP: driver without XDP
		errors.Is(err, syscall.ENOSYS)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// reasoned carries the selection reason into Status for a backend that
// does not know it (loader.XDP).
type reasoned struct {
	bans.Backend
	reason string
}

func withReason(b bans.Backend, reason string) bans.Backend { return &reasoned{b, reason} }

func (r *reasoned) Status(ctx context.Context) (bans.Status, error) {
	st, err := r.Backend.Status(ctx)
	if err == nil && st.Reason == "" {
		st.Reason = r.reason
	}
	return st, err
}

// Unwrap returns the backend itself (for *loader.XDP methods).
func (r *reasoned) Unwrap() bans.Backend { return r.Backend }

// Unwrap returns the concrete backend behind one Open returned.
func Unwrap(b bans.Backend) bans.Backend {
	if u, ok := b.(interface{ Unwrap() bans.Backend }); ok {
		return u.Unwrap()
	}
	return b
}
