// Package iptables enforces bans with netfilter when XDP cannot be used:
// an "xdpban" chain in the filter table, jumped to from INPUT (and
// FORWARD / DOCKER-USER when configured), matching a kernel ipset per
// address family, or, where ipset is missing, one rule per banned prefix
// as fail2ban's iptables action does.
//
// Everything xdpban adds carries its own name or an "xdpban" comment, so a
// restart adopts it and Detach removes exactly that, never another tool's
// rules, chains or sets.
package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// Mode is how bans are stored in netfilter.
type Mode string

const (
	// ModeAuto uses ipset when the kernel has hash:net and xt_set, and
	// per-address rules otherwise.
	ModeAuto Mode = ""
	// ModeIPSet keeps bans in a hash:net set per family, one rule each.
	ModeIPSet Mode = "ipset"
	// ModeRules keeps one rule per banned prefix.
	ModeRules Mode = "rules"
)

// Defaults for Options.
const (
	DefaultChain   = "xdpban"
	DefaultSetV4   = "xdpban-v4"
	DefaultSetV6   = "xdpban-v6"
	DefaultMaxElem = 1 << 18
	table          = "filter"
)

// ErrBadOption is wrapped by Open for options it cannot use.
var ErrBadOption = errors.New("bad fallback option")

// Options configure the netfilter backend. The zero value is the daemon's
// default: chain xdpban from INPUT, sets xdpban-v4/-v6, DROP, all ports.
type Options struct {
	// Chain is the chain xdpban owns; the REJECT helper chain is
	// Chain+"-rej".
	Chain string
	// SetV4 and SetV6 name the ipsets.
	SetV4, SetV6 string
	// From are the chains that jump to Chain: INPUT by default; FORWARD
	// and DOCKER-USER protect containers and routed traffic.
	From []string
	// Interfaces restrict the jumps to these input interfaces, as XDP is
	// attached to them; empty means every interface.
	Interfaces []string
	// BlockType is DROP (default) or REJECT: a TCP reset for TCP, ICMP
	// port unreachable for everything else.
	BlockType string
	// Mode picks ipset or per-rule storage; ModeAuto probes.
	Mode Mode
	// MaxElem is the capacity of each set.
	MaxElem int
	// Netns is the path of the network namespace to work in (for example
	// /run/netns/NAME); empty is the caller's own. Tests always set it.
	Netns string
	// Reason is reported in Status: why this backend was chosen.
	Reason string
	Logger *slog.Logger
	// Now is the clock, for tests; time.Now by default.
	Now func() time.Time
}

// OptionsFromConfig maps the daemon configuration to Options. Jails no
// longer matter here: each ban carries its scope.
func OptionsFromConfig(d config.Daemon, jails []config.Jail) (Options, error) {
	o := Options{
		From:       d.Chains,
		Interfaces: d.Interfaces,
		BlockType:  d.BlockType,
	}
	if n := d.MapSizes.V4 + d.MapSizes.V4Net; n > 0 {
		o.MaxElem = max(n, d.MapSizes.V6+d.MapSizes.V6Net)
	}
	return o, nil
}

// family is the per-address-family half of the backend.
type family struct {
	name   string // "ipv4" / "ipv6"
	af     uint8
	ipt    *iptables.IPTables
	set    string
	icmp   string // REJECT type for non-TCP traffic
	timeOK bool   // xt_time usable for in-kernel expiry of rules
	from   map[string]bool
}

// entry is one ban as the backend keeps it; specs are the per-rule
// mode's rules, one per protocol and port chunk of its scope (none while
// the ban is in no rule, e.g. added already expired).
type entry struct {
	ban   bans.Ban
	specs [][]string
}

// IPTables is the netfilter backend.
type IPTables struct {
	mu     sync.Mutex
	opts   Options
	log    *slog.Logger
	ns     nsRunner
	nl     *netlink.Handle
	sock   *nl.SocketHandle // for dumps, see ipsetList
	fams   []*family
	mode   Mode
	target string
	known  map[netip.Prefix]entry
	// scopes are the port scopes with sets (ipset mode), by scope text.
	scopes map[string]Scope
	closed bool
	// created is what the running Open made, undone if it fails.
	created []created
}

var _ bans.Backend = (*IPTables)(nil)

func (o *Options) defaults() error {
	if o.Chain == "" {
		o.Chain = DefaultChain
	}
	if o.SetV4 == "" {
		o.SetV4 = DefaultSetV4
	}
	if o.SetV6 == "" {
		o.SetV6 = DefaultSetV6
	}
	if len(o.From) == 0 {
		o.From = []string{"INPUT"}
	}
	if o.MaxElem <= 0 {
		o.MaxElem = DefaultMaxElem
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch strings.ToUpper(o.BlockType) {
	case "", "DROP":
		o.BlockType = "DROP"
	case "REJECT":
		o.BlockType = "REJECT"
	default:
		return fmt.Errorf("%w: blocktype %q: use DROP or REJECT", ErrBadOption, o.BlockType)
	}
	switch o.Mode {
	case ModeAuto, ModeIPSet, ModeRules:
	default:
		return fmt.Errorf("%w: mode %q: use ipset, rules or empty for auto", ErrBadOption, o.Mode)
	}
	// xtables chain names hold 28 characters, ipset names 31.
	if len(o.Chain)+len("-rej") > 28 || strings.ContainsAny(o.Chain, " \t\"'!") {
		return fmt.Errorf("%w: chain %q: use a name of at most 24 characters without spaces or quotes", ErrBadOption, o.Chain)
	}
	// Port-scoped bans use sets named after these, with a suffix.
	for _, s := range []string{o.SetV4, o.SetV6} {
		if len(s)+scopeSetSuffix > 31 || strings.ContainsAny(s, " \t\"'!") {
			return fmt.Errorf("%w: set name %q: use at most %d characters without spaces or quotes", ErrBadOption, s, 31-scopeSetSuffix)
		}
	}
	for _, c := range o.From {
		if c == "" || c == o.Chain || strings.ContainsAny(c, " \t\"'!") {
			return fmt.Errorf("%w: chain %q to jump from: use INPUT, FORWARD, DOCKER-USER or another existing filter chain", ErrBadOption, c)
		}
	}
	return nil
}

// Open sets up (or adopts, after a crash or restart) the chains, jumps
// and sets, and returns the backend. A probe failure that means the host
// cannot do netfilter wraps bans.ErrUnsupported.
func Open(ctx context.Context, opts Options) (*IPTables, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ns, err := openNS(opts.Netns)
	if err != nil {
		return nil, err
	}
	b := &IPTables{opts: opts, log: opts.Logger, ns: ns, known: map[netip.Prefix]entry{}, scopes: map[string]Scope{}, target: "DROP"}
	if opts.BlockType == "REJECT" {
		b.target = opts.Chain + "-rej"
	}
	if err := b.open(ctx); err != nil {
		b.closeHandles()
		return nil, err
	}
	b.created = nil
	return b, nil
}

func (b *IPTables) open(ctx context.Context) (err error) {
	err = b.ns.do(func() error {
		for _, p := range []struct {
			proto      iptables.Protocol
			name, set  string
			af         uint8
			icmpReject string
		}{
			{iptables.ProtocolIPv4, "ipv4", b.opts.SetV4, unix.AF_INET, "icmp-port-unreachable"},
			{iptables.ProtocolIPv6, "ipv6", b.opts.SetV6, unix.AF_INET6, "icmp6-port-unreachable"},
		} {
			ipt, err := iptables.New(iptables.IPFamily(p.proto), iptables.Timeout(5))
			if err != nil {
				return fmt.Errorf("%s: %w: %w", p.name, bans.ErrUnsupported, err)
			}
			b.fams = append(b.fams, &family{name: p.name, af: p.af, ipt: ipt, set: p.set, icmp: p.icmpReject})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("iptables backend: find iptables/ip6tables (install the iptables package): %w", err)
	}
	if b.ns.ns.IsOpen() {
		b.nl, err = netlink.NewHandleAt(b.ns.ns, unix.NETLINK_NETFILTER)
	} else {
		b.nl, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	}
	if err == nil {
		b.sock, err = openIpsetSocket(b.ns.ns)
	}
	if err != nil {
		return fmt.Errorf("iptables backend: open netfilter netlink socket: %w: %w", bans.ErrUnsupported, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Whatever this Open creates goes again if it fails: a half set-up
	// backend must not linger. What an earlier run left (bans!) stays.
	defer func() {
		if err != nil {
			b.rollback()
		}
	}()
	if err = b.ns.do(b.checkFrom); err != nil {
		return err
	}
	if b.target != "DROP" {
		if err = b.ns.do(func() error {
			for _, f := range b.fams {
				if err := b.ensureTarget(f); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}

	b.mode = b.opts.Mode
	if b.mode != ModeRules {
		if serr := b.setupSets(); serr != nil {
			if b.mode == ModeIPSet {
				return serr
			}
			b.log.Warn("ipset unusable, falling back to one iptables rule per ban", "err", serr)
			b.dropSets()
			b.mode = ModeRules
		} else {
			b.mode = ModeIPSet
		}
	}
	err = b.ns.do(func() error {
		for _, f := range b.fams {
			if err := b.setupChains(f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err = b.load(); err != nil {
		return err
	}
	if b.mode == ModeRules {
		if err = b.retarget(ctx); err != nil {
			return err
		}
	}
	return b.ns.do(func() error {
		for _, f := range b.fams {
			if err := b.setupJumps(f); err != nil {
				return err
			}
			if b.target == "DROP" {
				// REJECT before, DROP now: the helper chain is unused.
				if err := removeChain(f.ipt, b.opts.Chain+"-rej"); err != nil {
					return fmt.Errorf("%s: %w", f.name, err)
				}
			}
		}
		return nil
	})
}

// created is something Open made and undoes on failure.
type created struct {
	f     *family
	chain string // or
	set   string
}

func (b *IPTables) rollback() {
	_ = b.ns.do(func() error {
		for i := len(b.created) - 1; i >= 0; i-- {
			if c := b.created[i]; c.chain != "" {
				if err := removeChain(c.f.ipt, c.chain); err != nil {
					b.log.Warn("roll back chain", "chain", c.chain, "err", err)
				}
			}
		}
		return nil
	})
	b.dropSets()
	b.created = nil
}

// dropSets destroys the sets this Open created, with the rules using them.
func (b *IPTables) dropSets() {
	for _, c := range b.created {
		if c.set == "" {
			continue
		}
		_ = b.ns.do(func() error {
			rules, err := listRules(c.f.ipt, b.opts.Chain, false)
			if err != nil {
				return nil
			}
			for _, r := range rules {
				if r.opt("--match-set") == c.set {
					_ = c.f.ipt.Delete(table, b.opts.Chain, r.args...)
				}
			}
			return nil
		})
		if err := b.nl.IpsetDestroy(c.set); err != nil {
			b.log.Warn("roll back ipset", "set", c.set, "err", err)
		}
	}
	b.created = slices.DeleteFunc(b.created, func(c created) bool { return c.set != "" })
}

// checkFrom verifies the chains to jump from before anything is changed.
func (b *IPTables) checkFrom() error {
	for _, f := range b.fams {
		chains, err := f.ipt.ListChains(table)
		if err != nil {
			return fmt.Errorf("%s: list chains: %w", f.name, err)
		}
		f.from = map[string]bool{}
		for _, c := range b.opts.From {
			if slices.Contains(chains, c) {
				f.from[c] = true
				continue
			}
			if f.af == unix.AF_INET6 {
				b.log.Warn("chain missing for ipv6, not protected", "chain", c)
				continue
			}
			return fmt.Errorf("%s: chain %s does not exist in table filter: start the tool that creates it (Docker for DOCKER-USER) or remove it from chains", f.name, c)
		}
	}
	return nil
}

// retarget rewrites per-address rules whose target is not the configured
// blocktype (DROP <-> REJECT changed across a restart), add before delete.
func (b *IPTables) retarget(ctx context.Context) error {
	batch := map[*family][]string{}
	for p, e := range b.known {
		changed := false
		for i, old := range e.specs {
			if slices.Equal(old[len(old)-2:], []string{"-j", b.target}) {
				continue
			}
			f := b.fam(p)
			spec := append(slices.Clone(old[:len(old)-2]), "-j", b.target)
			batch[f] = append(batch[f], "-A "+b.opts.Chain+" "+quoteArgs(spec), "-D "+b.opts.Chain+" "+quoteArgs(old))
			e.specs[i] = spec
			changed = true
		}
		if changed {
			b.known[p] = e
		}
	}
	if err := b.restore(ctx, batch); err != nil {
		return fmt.Errorf("switch ban rules to %s: %w", b.target, err)
	}
	return nil
}

// setupSets creates or adopts both sets, and checks that xt_set can use
// them by installing the chain's match rule.
func (b *IPTables) setupSets() error {
	for _, f := range b.fams {
		if err := b.ensureSet(f); err != nil {
			return err
		}
	}
	return b.ns.do(func() error {
		for _, f := range b.fams {
			if err := b.ensureChain(f, b.opts.Chain); err != nil {
				return err
			}
			if err := f.ipt.AppendUnique(table, b.opts.Chain, b.setSpec(f)...); err != nil {
				return fmt.Errorf("%s: %w: set match (-m set) unavailable: %w", f.name, bans.ErrUnsupported, err)
			}
		}
		return nil
	})
}

func (b *IPTables) setSpec(f *family) []string {
	return []string{"-m", "set", "--match-set", f.set, "src", "-j", b.target}
}

// scopeSpecs are the rules matching scope sc's set: its protocols and
// ports, then the source in the set.
func (b *IPTables) scopeSpecs(f *family, sc Scope) [][]string {
	var out [][]string
	for _, m := range scopeMatches(sc) {
		spec := append(slices.Clone(m), "-m", "set", "--match-set", scopeSetName(f.set, sc), "src",
			"-m", "comment", "--comment", scopeTag(sc), "-j", b.target)
		out = append(out, spec)
	}
	return uniqSpecs(out)
}

// ensureScope makes scope sc's sets and rules, in both families, the
// first time a ban needs them.
func (b *IPTables) ensureScope(sc Scope) error {
	if _, ok := b.scopes[sc.String()]; ok {
		return nil
	}
	for _, f := range b.fams {
		if err := b.ensureNamedSet(f, scopeSetName(f.set, sc)); err != nil {
			return fmt.Errorf("scope %s: %w", sc, err)
		}
	}
	err := b.ns.do(func() error {
		for _, f := range b.fams {
			for _, spec := range b.scopeSpecs(f, sc) {
				if err := f.ipt.AppendUnique(table, b.opts.Chain, spec...); err != nil {
					return fmt.Errorf("%s: add scope %s match to %s: %w", f.name, sc, b.opts.Chain, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.scopes[sc.String()] = sc
	return nil
}

// setOf is the set holding a ban of scope sc in family f.
func (b *IPTables) setOf(f *family, sc Scope) string {
	if sc.All() {
		return f.set
	}
	return scopeSetName(f.set, sc)
}

// sets are every set of family f with the scope of its bans.
func (b *IPTables) sets(f *family) []struct {
	name  string
	scope Scope
} {
	out := []struct {
		name  string
		scope Scope
	}{{f.set, Scope{}}}
	for _, k := range slices.Sorted(maps.Keys(b.scopes)) {
		sc := b.scopes[k]
		out = append(out, struct {
			name  string
			scope Scope
		}{scopeSetName(f.set, sc), sc})
	}
	return out
}

func (b *IPTables) ensureSet(f *family) error { return b.ensureNamedSet(f, f.set) }

func (b *IPTables) ensureNamedSet(f *family, name string) error {
	if res, err := listIpset(b.sock, name); err == nil {
		if res.typeName != "hash:net" || res.family != f.af {
			return fmt.Errorf("ipset %s exists as %s family %d, not hash:net %s: destroy it (ipset destroy %s) or configure another set name", name, res.typeName, res.family, f.name, name)
		}
		if !res.hasTimeout {
			return fmt.Errorf("ipset %s exists without timeout support: destroy it (ipset destroy %s) so xdpban can recreate it", name, name)
		}
		b.log.Info("adopted existing ipset", "set", name, "entries", len(res.entries))
		return nil
	}
	zero := uint32(0)
	var lastErr error
	// hash:net revisions 4..7 all have comments and counters; the newest
	// the kernel knows is picked, as the ipset tool does.
	for rev := uint8(7); rev >= 4; rev-- {
		lastErr = b.nl.IpsetCreate(name, "hash:net", netlink.IpsetCreateOptions{
			Timeout:     &zero,
			Counters:    true,
			Comments:    true,
			Family:      f.af,
			Revision:    rev,
			MaxElements: uint32(b.opts.MaxElem),
		})
		if lastErr == nil {
			b.created = append(b.created, created{f: f, set: name})
			return nil
		}
	}
	return fmt.Errorf("%w: create ipset %s hash:net %s: %w", bans.ErrUnsupported, name, f.name, lastErr)
}

func (b *IPTables) ensureChain(f *family, chain string) error {
	ok, err := f.ipt.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("%s: check chain %s: %w", f.name, chain, err)
	}
	if ok {
		return nil
	}
	if err := f.ipt.NewChain(table, chain); err != nil {
		return fmt.Errorf("%s: create chain %s: %w", f.name, chain, err)
	}
	b.created = append(b.created, created{f: f, chain: chain})
	return nil
}

// ensureTarget sets up the REJECT helper chain: TCP reset for TCP, ICMP
// port unreachable for the rest.
func (b *IPTables) ensureTarget(f *family) error {
	if err := b.ensureChain(f, b.target); err != nil {
		return err
	}
	want := [][]string{
		{"-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"},
		{"-j", "REJECT", "--reject-with", f.icmp},
	}
	for _, spec := range want {
		if err := f.ipt.AppendUnique(table, b.target, spec...); err != nil {
			return fmt.Errorf("%s: fill chain %s: %w", f.name, b.target, err)
		}
	}
	return nil
}

// setupChains makes the chains hold what this configuration wants,
// keeping every ban already there.
func (b *IPTables) setupChains(f *family) error {
	if err := b.ensureChain(f, b.opts.Chain); err != nil {
		return err
	}
	if b.mode == ModeIPSet {
		// Insert the current match first, then drop matches with another
		// target (blocktype changed): no window without enforcement.
		want := b.setSpec(f)
		if ok, _ := f.ipt.Exists(table, b.opts.Chain, want...); !ok {
			if err := f.ipt.Insert(table, b.opts.Chain, 1, want...); err != nil {
				return fmt.Errorf("%s: add set match to %s: %w", f.name, b.opts.Chain, err)
			}
		}
		rules, err := listRules(f.ipt, b.opts.Chain, false)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		// The port scopes an earlier run made sets for: their rules are
		// rewritten for this blocktype, and their sets adopted.
		wanted := [][]string{want}
		for _, r := range rules {
			sc, ok := scopeOfTag(r.opt("--comment"))
			if !ok || r.opt("--match-set") != scopeSetName(f.set, sc) {
				continue
			}
			b.scopes[sc.String()] = sc
			for _, spec := range b.scopeSpecs(f, sc) {
				wanted = append(wanted, spec)
				if ok, _ := f.ipt.Exists(table, b.opts.Chain, spec...); !ok {
					if err := f.ipt.Append(table, b.opts.Chain, spec...); err != nil {
						return fmt.Errorf("%s: add scope %s match to %s: %w", f.name, sc, b.opts.Chain, err)
					}
				}
			}
		}
		for _, r := range rules {
			if slices.Contains(r.args, "--match-set") && !slices.ContainsFunc(wanted, func(w []string) bool { return slices.Equal(w, r.args) }) {
				if err := f.ipt.Delete(table, b.opts.Chain, r.args...); err != nil {
					return fmt.Errorf("%s: remove stale rule %q: %w", f.name, r.line, err)
				}
			}
		}
	} else {
		f.timeOK = b.probeTime(f)
	}
	return nil
}

// probeTime checks xt_time, which lets a per-address rule stop matching
// at its expiry even while the daemon is down. The probe rule lives in
// our own chain and goes at once.
func (b *IPTables) probeTime(f *family) bool {
	spec := []string{"-m", "time", "--datestop", "2037-01-01T00:00:00", "-m", "comment", "--comment", commentTag + " probe", "-j", "RETURN"}
	if err := f.ipt.Append(table, b.opts.Chain, spec...); err != nil {
		b.log.Info("xt_time unavailable: per-rule bans expire only at the sweep", "family", f.name, "err", err)
		return false
	}
	if err := f.ipt.Delete(table, b.opts.Chain, spec...); err != nil {
		b.log.Warn("remove xt_time probe rule", "family", f.name, "err", err)
	}
	return true
}

// jumpSpecs are the rules in each From chain that lead to our chain.
func (b *IPTables) jumpSpecs() [][]string {
	base := jumpSpec(b.opts.Chain)
	if len(b.opts.Interfaces) == 0 {
		return [][]string{base}
	}
	var out [][]string
	for _, ifc := range b.opts.Interfaces {
		out = append(out, append([]string{"-i", ifc}, base...))
	}
	return out
}

// setupJumps removes jumps to our chain that the configuration no longer
// wants (and duplicates a crash may have left), then adds missing ones at
// the top of each From chain so other tools' ACCEPTs cannot bypass a ban.
func (b *IPTables) setupJumps(f *family) error {
	want := b.jumpSpecs()
	chains, err := f.ipt.ListChains(table)
	if err != nil {
		return fmt.Errorf("%s: list chains: %w", f.name, err)
	}
	from := f.from
	for _, c := range chains {
		if c == b.opts.Chain || c == b.target {
			continue
		}
		rules, err := listRules(f.ipt, c, false)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		var kept [][]string
		for _, r := range rules {
			if r.jump() != b.opts.Chain {
				continue
			}
			keep := from[c] && slices.ContainsFunc(want, func(w []string) bool { return slices.Equal(w, r.args) }) &&
				!slices.ContainsFunc(kept, func(k []string) bool { return slices.Equal(k, r.args) })
			if keep {
				kept = append(kept, r.args)
				continue
			}
			if err := f.ipt.Delete(table, c, r.args...); err != nil {
				return fmt.Errorf("%s: remove stale jump %q: %w", f.name, r.line, err)
			}
		}
	}
	for _, c := range b.opts.From {
		if !from[c] {
			continue
		}
		for i := len(want) - 1; i >= 0; i-- {
			ok, err := f.ipt.Exists(table, c, want[i]...)
			if err != nil {
				return fmt.Errorf("%s: check jump in %s: %w", f.name, c, err)
			}
			if ok {
				continue
			}
			if err := f.ipt.Insert(table, c, 1, want[i]...); err != nil {
				return fmt.Errorf("%s: add jump from %s to %s: %w", f.name, c, b.opts.Chain, err)
			}
		}
	}
	return nil
}

// load rebuilds the in-memory view from the kernel: set elements or
// per-address rules, with jail and expiry from their comments.
func (b *IPTables) load() error {
	now := b.opts.Now()
	b.known = map[netip.Prefix]entry{}
	if b.mode == ModeIPSet {
		for _, f := range b.fams {
			es, err := b.allSetEntries(f, now)
			if err != nil {
				return err
			}
			for _, e := range es {
				b.known[e.Prefix] = entry{ban: e}
			}
		}
		// Per-address rules left by an earlier run in rules mode move
		// into the set.
		return b.migrateRules()
	}
	return b.ns.do(func() error {
		for _, f := range b.fams {
			rs, err := b.chainBans(f)
			if err != nil {
				return err
			}
			for _, r := range rs {
				b.known[r.ban.Prefix] = r
			}
		}
		return nil
	})
}

func (b *IPTables) migrateRules() error {
	var moved []entry
	err := b.ns.do(func() error {
		for _, f := range b.fams {
			rs, err := b.chainBans(f)
			if err != nil {
				return err
			}
			moved = append(moved, rs...)
		}
		return nil
	})
	if err != nil || len(moved) == 0 {
		return err
	}
	now := b.opts.Now()
	for _, e := range moved {
		if err := b.addSet(e.ban, now); err != nil {
			return fmt.Errorf("move rule ban %s into set: %w", e.ban.Prefix, err)
		}
		b.known[e.ban.Prefix] = entry{ban: e.ban}
	}
	err = b.ns.do(func() error {
		for _, e := range moved {
			f := b.fam(e.ban.Prefix)
			for _, spec := range e.specs {
				if err := f.ipt.Delete(table, b.opts.Chain, spec...); err != nil {
					return fmt.Errorf("remove migrated rule for %s: %w", e.ban.Prefix, err)
				}
			}
		}
		return nil
	})
	b.log.Info("moved per-rule bans into ipset", "count", len(moved))
	return err
}

func (b *IPTables) fam(p netip.Prefix) *family {
	if p.Addr().Is4() {
		return b.fams[0]
	}
	return b.fams[1]
}

// Kind implements bans.Backend.
func (b *IPTables) Kind() string { return "iptables" }

// Mode reports the storage in use, after auto-probing.
func (b *IPTables) Mode() Mode { return b.mode }

func (b *IPTables) check(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("invalid prefix %v: give an address or CIDR", p)
	}
	if p.Addr().Is4In6() || p != p.Masked() {
		return fmt.Errorf("prefix %s is not canonical: pass it through bans.Widen first", p)
	}
	if p.Bits() == 0 {
		return fmt.Errorf("prefix %s would ban every address: use a prefix length of at least 1", p)
	}
	return nil
}

// Add implements bans.Backend.
func (b *IPTables) Add(ctx context.Context, bs ...bans.Ban) error {
	for _, x := range bs {
		if err := b.check(x.Prefix); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	now := b.opts.Now()
	if b.mode == ModeIPSet {
		for _, x := range bs {
			if err := ctx.Err(); err != nil {
				return err
			}
			x.Packets, x.Bytes = 0, 0
			if old, ok := b.known[x.Prefix]; ok && !sameScope(old.ban.Scope, x.Scope) {
				// A new scope replaces the old: out of the old scope's
				// set once in the new one, so the prefix is never free.
				if err := b.addSet(x, now); err != nil {
					return err
				}
				f := b.fam(x.Prefix)
				if err := b.delFrom(f, b.setOf(f, old.ban.Scope), x.Prefix); err != nil && !errors.Is(err, bans.ErrNotBanned) {
					return err
				}
				b.known[x.Prefix] = entry{ban: x}
				continue
			}
			if err := b.addSet(x, now); err != nil {
				return err
			}
			b.known[x.Prefix] = entry{ban: x}
		}
		return nil
	}
	return b.addRules(ctx, bs, now)
}

// kernelTimeout is the set element timeout for a ban: its remaining time
// rounded up (the kernel counts seconds), 0 for permanent. Beyond ipset's
// limit the element is permanent and the sweep ends it.
func kernelTimeout(x bans.Ban, now time.Time) uint32 {
	const ipsetMax = (1<<31 - 1) / 1000
	if x.Permanent() {
		return 0
	}
	r := x.Remaining(now)
	s := (r + time.Second - 1) / time.Second
	if s > ipsetMax {
		return 0
	}
	return uint32(max(s, 1))
}

func setEntry(p netip.Prefix) *netlink.IPSetEntry {
	return &netlink.IPSetEntry{IP: net.IP(p.Addr().AsSlice()), CIDR: uint8(p.Bits())}
}

func (b *IPTables) addSet(x bans.Ban, now time.Time) error {
	f := b.fam(x.Prefix)
	if x.Expired(now) {
		// Nothing to enforce; List still shows it until the sweep.
		if err := b.delSet(f, x.Prefix); err != nil && !errors.Is(err, bans.ErrNotBanned) {
			return err
		}
		return nil
	}
	if !x.Scope.All() {
		if err := b.ensureScope(x.Scope); err != nil {
			return fmt.Errorf("ban %s: %w", x.Prefix, err)
		}
	}
	set := b.setOf(f, x.Scope)
	e := setEntry(x.Prefix)
	t := kernelTimeout(x, now)
	e.Timeout = &t
	e.Comment = banComment(x)
	e.Replace = true
	if err := b.nl.IpsetAdd(set, e); err != nil {
		if errors.Is(err, nl.IPSetError(nl.IPSET_ERR_TYPE_SPECIFIC) /* IPSET_ERR_HASH_FULL */) {
			return fmt.Errorf("ban %s: ipset %s: %w (raise the map size)", x.Prefix, set, bans.ErrFull)
		}
		return fmt.Errorf("ban %s: add to ipset %s: %w", x.Prefix, set, err)
	}
	return nil
}

// delSet removes p from whichever of f's sets holds it: the one its
// known scope names first, then the others (a ban the view lost).
func (b *IPTables) delSet(f *family, p netip.Prefix) error {
	first := f.set
	if e, ok := b.known[p]; ok {
		first = b.setOf(f, e.ban.Scope)
	}
	err := b.delFrom(f, first, p)
	if !errors.Is(err, bans.ErrNotBanned) {
		return err
	}
	for _, s := range b.sets(f) {
		if s.name == first {
			continue
		}
		if derr := b.delFrom(f, s.name, p); !errors.Is(derr, bans.ErrNotBanned) {
			return derr
		}
	}
	return err
}

func (b *IPTables) delFrom(f *family, set string, p netip.Prefix) error {
	err := b.nl.IpsetDel(set, setEntry(p))
	if err == nil {
		return nil
	}
	if errors.Is(err, nl.IPSetError(nl.IPSET_ERR_EXIST)) {
		return bans.ErrNotBanned
	}
	return fmt.Errorf("unban %s: delete from ipset %s: %w", p, set, err)
}

// ruleSpecs render the per-address rules for a ban: one per protocol
// and multiport chunk of its scope, one for all traffic.
func (b *IPTables) ruleSpecs(f *family, x bans.Ban) [][]string {
	var out [][]string
	for _, m := range scopeMatches(x.Scope) {
		spec := append([]string{"-s", x.Prefix.String()}, m...)
		out = append(out, b.ruleTail(f, x, spec))
	}
	return uniqSpecs(out)
}

func (b *IPTables) ruleTail(f *family, x bans.Ban, spec []string) []string {
	spec = append(spec, "-m", "comment", "--comment", banComment(x))
	if f.timeOK && !x.Permanent() {
		// xt_time compares whole seconds and matches through the stop
		// second, so the rule ends at the whole second at or before the
		// expiry: up to a second early, never late (the sweep deletes
		// it soon after either way).
		stop := x.Expires.UTC().Truncate(time.Second).Add(-time.Second)
		if stop.Year() < 2038 && stop.Year() >= 1970 {
			spec = append(spec, "-m", "time", "--datestop", stop.Format("2006-01-02T15:04:05"))
		}
	}
	return append(spec, "-j", b.target)
}

func (b *IPTables) addRules(ctx context.Context, bs []bans.Ban, now time.Time) error {
	batch := map[*family][]string{}
	next := map[netip.Prefix]entry{}
	for _, x := range bs {
		x.Packets, x.Bytes = 0, 0
		f := b.fam(x.Prefix)
		old, had := next[x.Prefix]
		if !had {
			old, had = b.known[x.Prefix]
		}
		var specs [][]string
		if !x.Expired(now) {
			specs = b.ruleSpecs(f, x)
			for _, spec := range specs {
				batch[f] = append(batch[f], "-A "+b.opts.Chain+" "+quoteArgs(spec))
			}
		}
		if had {
			for _, spec := range old.specs {
				batch[f] = append(batch[f], "-D "+b.opts.Chain+" "+quoteArgs(spec))
			}
		}
		next[x.Prefix] = entry{ban: x, specs: specs}
	}
	if err := b.restore(ctx, batch); err != nil {
		return fmt.Errorf("add %d bans as rules: %w", len(bs), err)
	}
	for p, e := range next {
		b.known[p] = e
	}
	return nil
}

// restore applies rule changes per family in one iptables-restore
// transaction: one exec per family instead of one per ban, which is what
// makes 100,000 per-address rules loadable at all.
func (b *IPTables) restore(ctx context.Context, batch map[*family][]string) error {
	for _, f := range b.fams {
		lines := batch[f]
		if len(lines) == 0 {
			continue
		}
		var in bytes.Buffer
		in.WriteString("*filter\n")
		for _, l := range lines {
			in.WriteString(l)
			in.WriteByte('\n')
		}
		in.WriteString("COMMIT\n")
		bin := "iptables-restore"
		if f.af == unix.AF_INET6 {
			bin = "ip6tables-restore"
		}
		var out bytes.Buffer
		err := b.ns.do(func() error {
			cmd := exec.CommandContext(ctx, bin, "--noflush", "--wait", "5")
			cmd.Stdin = &in
			cmd.Stdout, cmd.Stderr = &out, &out
			return cmd.Run()
		})
		if err != nil {
			return fmt.Errorf("%s: %w: %s", bin, err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

// Delete implements bans.Backend.
func (b *IPTables) Delete(ctx context.Context, ps ...netip.Prefix) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed
	}
	return b.delete(ctx, ps)
}

func (b *IPTables) delete(ctx context.Context, ps []netip.Prefix) (int, error) {
	n := 0
	if b.mode == ModeIPSet {
		for _, p := range ps {
			if !p.IsValid() {
				continue
			}
			err := b.delSet(b.fam(p), p)
			_, had := b.known[p]
			delete(b.known, p)
			switch {
			case err == nil, errors.Is(err, bans.ErrNotBanned) && had:
				n++
			case errors.Is(err, bans.ErrNotBanned):
			default:
				return n, err
			}
		}
		return n, nil
	}
	batch := map[*family][]string{}
	var gone []netip.Prefix
	for _, p := range ps {
		e, ok := b.known[p]
		if !ok || slices.Contains(gone, p) {
			continue
		}
		f := b.fam(p)
		for _, spec := range e.specs {
			batch[f] = append(batch[f], "-D "+b.opts.Chain+" "+quoteArgs(spec))
		}
		gone = append(gone, p)
	}
	if err := b.restore(ctx, batch); err != nil {
		return 0, fmt.Errorf("delete %d ban rules: %w", len(gone), err)
	}
	for _, p := range gone {
		delete(b.known, p)
	}
	return len(gone) + n, nil
}

// Flush implements bans.Backend.
func (b *IPTables) Flush(ctx context.Context) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed
	}
	if b.mode == ModeIPSet {
		cur, err := b.list(b.opts.Now())
		if err != nil {
			return 0, err
		}
		for _, f := range b.fams {
			for _, s := range b.sets(f) {
				if err := b.nl.IpsetFlush(s.name); err != nil {
					return 0, fmt.Errorf("flush ipset %s: %w", s.name, err)
				}
			}
		}
		b.known = map[netip.Prefix]entry{}
		return len(cur), nil
	}
	n := len(b.known)
	err := b.ns.do(func() error {
		for _, f := range b.fams {
			if err := f.ipt.ClearChain(table, b.opts.Chain); err != nil {
				return fmt.Errorf("%s: flush chain %s: %w", f.name, b.opts.Chain, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	b.known = map[netip.Prefix]entry{}
	return n, nil
}

// List implements bans.Backend.
func (b *IPTables) List(ctx context.Context) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	return b.list(b.opts.Now())
}

func (b *IPTables) list(now time.Time) ([]bans.Ban, error) {
	var out []bans.Ban
	if b.mode == ModeIPSet {
		seen := map[netip.Prefix]bool{}
		for _, f := range b.fams {
			es, err := b.allSetEntries(f, now)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				seen[e.Prefix] = true
				out = append(out, e)
			}
		}
		// The kernel drops timed-out elements itself; until the sweep has
		// seen them they are listed like XDP's expired entries. Anything
		// else missing was removed behind our back and is forgotten.
		for p, e := range b.known {
			if seen[p] {
				continue
			}
			if e.ban.Expired(now) {
				out = append(out, e.ban)
			} else {
				delete(b.known, p)
			}
		}
	} else {
		err := b.ns.do(func() error {
			for _, f := range b.fams {
				rs, err := b.chainBans(f)
				if err != nil {
					return err
				}
				for _, r := range rs {
					out = append(out, r.ban)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// Bans added already expired have no rule.
		for _, e := range b.known {
			if len(e.specs) == 0 {
				out = append(out, e.ban)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.String() < out[j].Prefix.String() })
	return out, nil
}

// allSetEntries lists every set of f, each ban with its set's scope.
func (b *IPTables) allSetEntries(f *family, now time.Time) ([]bans.Ban, error) {
	var out []bans.Ban
	for _, s := range b.sets(f) {
		es, err := b.setEntries(f, s.name, now)
		if err != nil {
			return nil, err
		}
		for i := range es {
			es[i].Scope = s.scope
		}
		out = append(out, es...)
	}
	return out, nil
}

func (b *IPTables) setEntries(f *family, set string, now time.Time) ([]bans.Ban, error) {
	res, err := listIpset(b.sock, set)
	if err != nil {
		return nil, fmt.Errorf("list ipset %s: %w", set, err)
	}
	out := make([]bans.Ban, 0, len(res.entries))
	for _, e := range res.entries {
		p := e.prefix
		if f.af == unix.AF_INET {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
		}
		x := bans.Ban{Prefix: p, Packets: e.packets, Bytes: e.bytes}
		jail, exp, ours, perr := parseComment(e.comment)
		switch {
		case ours && perr == nil:
			x.Jail, x.Expires = jail, exp
		default:
			if perr != nil {
				b.log.Warn("unreadable ipset comment", "set", set, "err", perr)
			}
			if e.timeout > 0 {
				x.Expires = now.Add(time.Duration(e.timeout) * time.Second)
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// chainBans reads the per-address rules of our chain with their counters.
// Must run inside ns.do.
func (b *IPTables) chainBans(f *family) ([]entry, error) {
	rules, err := listRules(f.ipt, b.opts.Chain, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	var out []entry
	at := map[netip.Prefix]int{}
	for _, r := range rules {
		src, comment := r.opt("-s"), r.opt("--comment")
		if src == "" || comment == "" {
			continue
		}
		jail, exp, sc, ours, perr := parseBanComment(comment)
		if !ours {
			continue
		}
		if perr != nil {
			b.log.Warn("unreadable rule comment", "rule", r.line, "err", perr)
			continue
		}
		p, err := netip.ParsePrefix(src)
		if err != nil {
			a, aerr := netip.ParseAddr(src)
			if aerr != nil {
				b.log.Warn("unreadable rule source", "rule", r.line)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		// A scoped ban is several rules: one entry, counters summed.
		if i, ok := at[p]; ok {
			out[i].specs = append(out[i].specs, r.args)
			out[i].ban.Packets += r.pkts
			out[i].ban.Bytes += r.bytes
			continue
		}
		x := bans.Ban{Prefix: p, Jail: jail, Expires: exp, Scope: sc, Packets: r.pkts, Bytes: r.bytes}
		at[p] = len(out)
		out = append(out, entry{ban: x, specs: [][]string{r.args}})
	}
	return out, nil
}

// Expire implements bans.Backend.
func (b *IPTables) Expire(ctx context.Context, now time.Time) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	cur, err := b.list(now)
	if err != nil {
		return nil, err
	}
	var done []bans.Ban
	var ps []netip.Prefix
	for _, x := range cur {
		if x.Expired(now) {
			done = append(done, x)
			ps = append(ps, x.Prefix)
		}
	}
	if len(ps) == 0 {
		return nil, nil
	}
	if _, err := b.delete(ctx, ps); err != nil {
		return nil, err
	}
	return done, nil
}

// Status implements bans.Backend.
func (b *IPTables) Status(ctx context.Context) (bans.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bans.Status{}, errClosed
	}
	st := bans.Status{Backend: "iptables", Reason: b.opts.Reason, Counters: map[string]uint64{}}
	ifs := b.opts.Interfaces
	if len(ifs) == 0 {
		ifs = []string{"*"}
	}
	for _, i := range ifs {
		st.Interfaces = append(st.Interfaces, bans.IfaceStatus{Name: i, Mode: "netfilter"})
	}
	if b.mode == ModeIPSet {
		for _, f := range b.fams {
			for _, s := range b.sets(f) {
				res, err := listIpset(b.sock, s.name)
				if err != nil {
					return bans.Status{}, fmt.Errorf("list ipset %s: %w", s.name, err)
				}
				st.Tables = append(st.Tables, bans.TableStatus{Name: s.name, Entries: len(res.entries), Capacity: int(res.maxElem)})
			}
		}
	}
	err := b.ns.do(func() error {
		for _, f := range b.fams {
			rules, err := listRules(f.ipt, b.opts.Chain, true)
			if err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			n := 0
			for _, r := range rules {
				if r.jump() != b.target {
					continue
				}
				n++
				st.Counters["dropped"] += r.pkts
				st.Counters["dropped_bytes"] += r.bytes
			}
			if b.mode == ModeRules {
				st.Tables = append(st.Tables, bans.TableStatus{Name: b.opts.Chain + " (" + f.name + " rules)", Entries: n})
			}
		}
		return nil
	})
	if err != nil {
		return bans.Status{}, err
	}
	st.Counters["entries"] = uint64(len(b.known))
	return st, nil
}

var errClosed = errors.New("iptables backend closed")

func (b *IPTables) closeHandles() {
	if b.nl != nil {
		b.nl.Close()
		b.nl = nil
	}
	if b.sock != nil {
		b.sock.Close()
		b.sock = nil
	}
	b.ns.close()
}

// Close implements bans.Backend: the chain, jumps and sets stay, so
// traffic stays blocked while the daemon restarts.
func (b *IPTables) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.closeHandles()
	return nil
}

// Detach implements bans.Backend: it removes the jumps to our chain from
// every chain, our chains, and our sets, and nothing else.
func (b *IPTables) Detach() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	var errs []error
	err := b.ns.do(func() error {
		for _, f := range b.fams {
			errs = append(errs, removeOurs(f.ipt, b.opts.Chain, b.opts.Chain+"-rej"))
		}
		return nil
	})
	errs = append(errs, err)
	for _, f := range b.fams {
		for _, s := range b.sets(f) {
			if err := b.nl.IpsetDestroy(s.name); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, nl.IPSetError(nl.IPSET_ERR_PROTOCOL)) {
				if _, lerr := listIpset(b.sock, s.name); lerr == nil {
					errs = append(errs, fmt.Errorf("destroy ipset %s: %w", s.name, err))
				}
			}
		}
	}
	b.closed = true
	b.closeHandles()
	return errors.Join(errs...)
}

func removeOurs(ipt *iptables.IPTables, chain, rej string) error {
	chains, err := ipt.ListChains(table)
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		if c == chain || c == rej {
			continue
		}
		rules, err := listRules(ipt, c, false)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if j := r.jump(); j == chain || j == rej {
				if err := ipt.Delete(table, c, r.args...); err != nil {
					return fmt.Errorf("remove jump %q: %w", r.line, err)
				}
			}
		}
	}
	for _, c := range []string{chain, rej} {
		if !slices.Contains(chains, c) {
			continue
		}
		if err := ipt.ClearAndDeleteChain(table, c); err != nil {
			return fmt.Errorf("remove chain %s: %w", c, err)
		}
	}
	return nil
}

// removeChain deletes one of our chains and every rule jumping to it.
func removeChain(ipt *iptables.IPTables, chain string) error {
	ok, err := ipt.ChainExists(table, chain)
	if err != nil || !ok {
		return err
	}
	chains, err := ipt.ListChains(table)
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		if c == chain {
			continue
		}
		rules, err := listRules(ipt, c, false)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.jump() == chain {
				if err := ipt.Delete(table, c, r.args...); err != nil {
					return fmt.Errorf("remove jump %q: %w", r.line, err)
				}
			}
		}
	}
	if err := ipt.ClearAndDeleteChain(table, chain); err != nil {
		return fmt.Errorf("remove chain %s: %w", chain, err)
	}
	return nil
}

// rule is one line of `iptables -S [-v] CHAIN`, split into arguments.
type rule struct {
	line        string
	args        []string // without "-A CHAIN" and "-c P B"
	pkts, bytes uint64
}

func (r rule) opt(name string) string {
	for i := 0; i+1 < len(r.args); i++ {
		if r.args[i] == name {
			return r.args[i+1]
		}
	}
	return ""
}

func (r rule) jump() string { return r.opt("-j") }

func listRules(ipt *iptables.IPTables, chain string, counters bool) ([]rule, error) {
	var lines []string
	var err error
	if counters {
		lines, err = ipt.ListWithCounters(table, chain)
	} else {
		lines, err = ipt.List(table, chain)
	}
	if err != nil {
		return nil, fmt.Errorf("list chain %s: %w", chain, err)
	}
	var out []rule
	for _, l := range lines {
		r, ok, err := parseRuleLine(l)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", chain, err)
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// parseRuleLine reads "-A CHAIN args... [-c P B] ...". ok is false for
// policy and chain lines.
func parseRuleLine(l string) (rule, bool, error) {
	toks, err := splitArgs(l)
	if err != nil {
		return rule{}, false, fmt.Errorf("rule %q: %w", l, err)
	}
	if len(toks) < 2 || toks[0] != "-A" {
		return rule{}, false, nil
	}
	r := rule{line: l}
	rest := toks[2:]
	for i := 0; i < len(rest); i++ {
		if rest[i] == "-c" && i+2 < len(rest) {
			p, err1 := strconv.ParseUint(rest[i+1], 10, 64)
			by, err2 := strconv.ParseUint(rest[i+2], 10, 64)
			if err1 == nil && err2 == nil {
				r.pkts, r.bytes = p, by
				i += 2
				continue
			}
		}
		r.args = append(r.args, rest[i])
	}
	return r, true, nil
}

// splitArgs splits an iptables-save style line: whitespace separated,
// double quotes group, backslash escapes inside quotes.
func splitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quoted, esc := false, false, false
	for _, c := range s {
		switch {
		case esc:
			cur.WriteRune(c)
			esc = false
		case quoted && c == '\\':
			esc = true
		case c == '"':
			quoted = !quoted
			in = true
		case !quoted && (c == ' ' || c == '\t'):
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if quoted || esc {
		return nil, errors.New("unterminated quote")
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// quoteArgs is splitArgs' inverse for iptables-restore input.
func quoteArgs(args []string) string {
	var sb strings.Builder
	for i, a := range args {
		if i > 0 {
			sb.WriteByte(' ')
		}
		if a != "" && !strings.ContainsAny(a, " \t\"\\") {
			sb.WriteString(a)
			continue
		}
		sb.WriteByte('"')
		for _, c := range a {
			if c == '"' || c == '\\' {
				sb.WriteByte('\\')
			}
			sb.WriteRune(c)
		}
		sb.WriteByte('"')
	}
	return sb.String()
}
