package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// JailScope is the scope a ban given to jail by name drops in cfg: the
// jail's own (banscope), or all traffic for a name no jail has.
func JailScope(cfg *config.Config, jail string) bans.Scope {
	if cfg == nil {
		return bans.Scope{}
	}
	if j, ok := cfg.Jail(jail); ok {
		return j.Scope
	}
	return bans.Scope{}
}

// manualBans parses a request's ban items against the running
// configuration, once the start is done; a dry-run daemon refuses them.
func (d *Daemon) manualBans(ctx context.Context, items []control.BanItem) ([]bans.Ban, error) {
	if err := d.waitUp(ctx); err != nil {
		return nil, err
	}
	if d.core == nil {
		return nil, ErrDryRun
	}
	rules, err := d.manualRules(false) // an item's own Force skips the guard
	if err != nil {
		return nil, err
	}
	bs, err := parseItems(items, d.widen, d.opt.Now(), rules, func(i int, wide, got netip.Prefix) {
		d.log.Warn("manual ban narrowed: the widened prefix would cover a protected address (ignoreip, the host's own)",
			"addr", items[i].Addr, "banned", got, "instead_of", wide)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	}
	return bs, nil
}

// manualRules are the rules of the CLI's bans (and imports) in the running
// configuration: its jails' scopes and, unless force, the addresses no
// ban may cover.
func (d *Daemon) manualRules(force bool) (ItemRules, error) {
	// One snapshot of the configuration for the whole request: a reload
	// swaps d.cfg under d.mu.
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	rules := ItemRules{Scope: func(jail string) bans.Scope { return JailScope(cfg, jail) }}
	if force {
		return rules, nil
	}
	protected, err := Protected(cfg)
	if err != nil {
		// Without the list a ban could lock the host out: refuse.
		return rules, fmt.Errorf("list the addresses bans must not cover: %w", err)
	}
	rules.Protected = protected
	return rules, nil
}

// ItemRules are what the configuration adds to ParseItems. Scope, when
// set, gives a jail's ban scope (a ban given --jail sshd drops what sshd's
// bans drop); without it, and for a name no jail has, a ban drops all
// traffic. Protected (Protected) is what an item without Force may not
// name or cover; a single address's widened prefix is narrowed around it.
type ItemRules struct {
	Scope     func(jail string) bans.Scope
	Protected *bans.IgnoreList
}

// ParseItems turns CLI ban items into bans: jail defaults to manual, for
// to 1h, "0" is permanent. The first bad item, or one rules refuse, fails
// the lot.
func ParseItems(items []control.BanItem, w bans.Widen, now time.Time, rules ItemRules) ([]bans.Ban, error) {
	return parseItems(items, w, now, rules, nil)
}

// parseItems is ParseItems telling narrowed, when set, of each item whose
// widened prefix was narrowed around a protected address.
func parseItems(items []control.BanItem, w bans.Widen, now time.Time, rules ItemRules, narrowed func(i int, wide, got netip.Prefix)) ([]bans.Ban, error) {
	out := make([]bans.Ban, 0, len(items))
	for i, it := range items {
		b, wide, err := parseItem(it, w, now, rules)
		if err == nil && narrowed != nil && wide != b.Prefix {
			narrowed(i, wide, b.Prefix)
		}
		if err != nil {
			if len(items) > 1 {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ParseItem is ParseItems for one item.
func ParseItem(it control.BanItem, w bans.Widen, now time.Time, rules ItemRules) (bans.Ban, error) {
	b, _, err := parseItem(it, w, now, rules)
	return b, err
}

// parseItem is ParseItem that also returns the prefix the item widens to,
// before the guard narrowed it (the ban's prefix when it did not).
func parseItem(it control.BanItem, w bans.Widen, now time.Time, rules ItemRules) (b bans.Ban, wide netip.Prefix, err error) {
	wide, err = w.Parse(it.Addr)
	if err == nil {
		err = CheckWidth(wide, it.Addr)
	}
	p := wide
	if err == nil && !it.Force {
		p, err = guard(rules.Protected, it.Addr, p)
	}
	if err != nil {
		return bans.Ban{}, wide, err
	}
	if b, err = banTemplate(it.Jail, it.For, now, rules); err != nil {
		return bans.Ban{}, wide, err
	}
	b.Prefix = p
	return b, wide, nil
}

// banTemplate is a manual ban without its prefix: jail (default manual)
// checked, for (default 1h, 0 permanent) from now, the jail's scope.
func banTemplate(jail, forS string, now time.Time, rules ItemRules) (bans.Ban, error) {
	if jail == "" {
		jail = DefaultJail
	}
	if err := checkJailName(jail); err != nil {
		return bans.Ban{}, err
	}
	d, err := ParseBanTime(forS)
	if err != nil {
		return bans.Ban{}, err
	}
	b := bans.Ban{Jail: jail}
	if rules.Scope != nil {
		b.Scope = rules.Scope(jail)
	}
	if d > 0 {
		b.Expires = now.Add(d)
	}
	return b, nil
}

// Widest prefixes a ban may name. 0.0.0.0/0 (or /1 …) drops a large part
// of the internet, the operator's own session included: a typo for /32
// far more often than a wish, and one that locks the operator out.
const (
	minBanBits4 = 8
	minBanBits6 = 16
)

// CheckWidth refuses a prefix wider than a ban may be; typed is what the
// operator wrote, named too when it differs from p.
func CheckWidth(p netip.Prefix, typed string) error {
	min, fam := minBanBits4, "IPv4"
	if p.Addr().Is6() {
		min, fam = minBanBits6, "IPv6"
	}
	if p.Bits() < min {
		return fmt.Errorf("%s is too wide a ban: it would drop a large share of all %s traffic, your own session likely included; ban a /%d or narrower", named(p, typed), fam, min)
	}
	return nil
}

// DefaultBanTime is a CLI ban's duration unless --for says otherwise.
const DefaultBanTime = time.Hour

// ParseBanTime reads --for in fail2ban's duration forms ("600", "90s",
// "10m", "1h30m", "1d", "1w"), with 0, -1 or "permanent" for a permanent
// ban. Empty is DefaultBanTime. It returns 0 for permanent.
func ParseBanTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return DefaultBanTime, nil
	case "0", "-1", "permanent":
		return 0, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid ban duration %q: use a duration such as 90s, 10m, 1h, 1d, or 0 for permanent", s)
	}
	if d < time.Second {
		return 0, fmt.Errorf("invalid ban duration %q: shorter than a second; use at least 1s, or 0 for permanent", s)
	}
	return d, nil
}

func checkJailName(j string) error {
	if len(j) > 64 || strings.ContainsAny(j, "[]/\n\r\t ") {
		return fmt.Errorf("invalid jail name %q: use up to 64 characters without spaces, brackets or slashes", j)
	}
	return nil
}
