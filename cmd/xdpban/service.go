package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/control"
)

// service opens the CLI's one way to xdpban's state (control.Service):
// the daemon over its socket when one answers, else the pins and the
// store a stopped daemon left (direct mode). Commands use it alike.
func (e *env) service(ctx context.Context) (control.Service, error) {
	c, err := e.daemonClient(ctx)
	if err != nil {
		return nil, err
	}
	if c != nil {
		return daemonService{c}, nil
	}
	d, err := e.openDirect(ctx)
	if err != nil {
		return nil, err
	}
	return &directService{d: d}, nil
}

// daemonService is the daemon's socket, its refusals made the CLI's bad
// input (exit 2) and a large ban sent in checked parts (sendBans).
type daemonService struct{ *control.Client }

func (s daemonService) Ban(ctx context.Context, items []control.BanItem) ([]string, error) {
	out, err := sendBans(ctx, s.Client, items)
	return out, remote(err)
}

func (s daemonService) Import(ctx context.Context, req control.ImportRequest, body io.Reader) (int, error) {
	n, err := s.Client.Import(ctx, req, body)
	return n, remote(err)
}

func (s daemonService) Unban(ctx context.Context, req control.UnbanRequest) (int, error) {
	n, err := s.Client.Unban(ctx, req)
	return n, remote(err)
}

func (s daemonService) List(ctx context.Context) ([]control.Entry, error) {
	es, err := s.Client.List(ctx)
	return es, remote(err)
}

func (s daemonService) Status(ctx context.Context) (control.Status, error) {
	st, err := s.Client.Status(ctx)
	return st, remote(err)
}

func (s daemonService) JailStatus(ctx context.Context, jail string) (control.JailStatus, error) {
	js, err := s.Client.JailStatus(ctx, jail)
	return js, remote(err)
}

// directService works on what a stopped daemon left: the pinned maps (or
// netfilter table) and the store, through the same ledger the daemon
// keeps its bans with.
type directService struct{ d *direct }

func (s *directService) Close() { s.d.Close() }

func (s *directService) Ban(ctx context.Context, items []control.BanItem) ([]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	rules, err := s.rules(items[0].Jail, items[0].Force)
	if err != nil {
		return nil, err
	}
	bs, err := daemon.ParseItems(items, s.d.widen, time.Now(), rules)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if _, err := s.d.core.CheckRoom(bs, nil); err != nil {
		return nil, err
	}
	var banned []string
	for i := 0; i < len(bs); i += banChunk {
		chunk := bs[i:min(i+banChunk, len(bs))]
		if err := s.d.core.Ban(ctx, chunk); err != nil {
			if len(banned) > 0 {
				err = fmt.Errorf("%w (the first %d were banned)", err, len(banned))
			}
			return banned, err
		}
		for _, b := range chunk {
			banned = append(banned, b.Prefix.String())
		}
	}
	return banned, nil
}

// rules are what a manual ban of jail is checked against, as the daemon
// checks it (daemon.Daemon's manualRules).
func (s *directService) rules(jail string, force bool) (daemon.ItemRules, error) {
	rules := daemon.ItemRules{Scope: s.d.jailScope(jail)}
	if force {
		return rules, nil
	}
	err := s.d.cfgErr
	if err == nil {
		rules.Protected, err = daemon.Protected(s.d.cfg)
	}
	if err != nil {
		return rules, fmt.Errorf("cannot tell which addresses are protected (ignoreip): %w; fix the configuration, or pass --force", err)
	}
	return rules, nil
}

func (s *directService) Import(ctx context.Context, req control.ImportRequest, body io.Reader) (int, error) {
	rules, err := s.rules(req.Jail, req.Force)
	if err != nil {
		return 0, err
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return 0, err
	}
	tmpl, ps, _, err := daemon.ParseBanFile(string(raw), req, s.d.widen, time.Now(), rules)
	if err != nil {
		return 0, remote(err)
	}
	return s.d.core.Import(ctx, tmpl, ps, daemon.ImportPart)
}

func (s *directService) Unban(ctx context.Context, req control.UnbanRequest) (int, error) {
	if req.All {
		if req.Jail != "" {
			// No daemon runs: the jails it would run are the enabled
			// ones of the configuration, when it loads.
			var enabled []string
			if s.d.cfgErr == nil {
				for _, j := range s.d.cfg.Enabled() {
					enabled = append(enabled, j.Name)
				}
			}
			if err := daemon.CheckJailKnown(req.Jail, daemon.KnownJails(s.d.core, enabled)); err != nil {
				return 0, fmt.Errorf("%w: %w", errUsage, err)
			}
		}
		return s.d.core.UnbanAll(ctx, req.Jail)
	}
	ps := make([]netip.Prefix, len(req.Addrs))
	for i, a := range req.Addrs {
		ps[i], _ = s.d.widen.Parse(a)
	}
	return s.d.core.Unban(ctx, ps, req.Jail)
}

func (s *directService) List(ctx context.Context) ([]control.Entry, error) {
	bs, err := s.d.core.List(ctx)
	if err != nil {
		return nil, err
	}
	es := make([]control.Entry, 0, len(bs))
	for _, b := range bs {
		es = append(es, control.EntryOf(b))
	}
	return es, nil
}

func (s *directService) Status(ctx context.Context) (control.Status, error) {
	return directStatus(ctx, s.d)
}

func (s *directService) JailStatus(_ context.Context, jail string) (control.JailStatus, error) {
	return directJailStatus(s.d, jail), nil
}
