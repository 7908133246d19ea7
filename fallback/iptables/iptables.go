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
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
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
	o.Chain = cmp.Or(o.Chain, DefaultChain)
	o.SetV4 = cmp.Or(o.SetV4, DefaultSetV4)
	o.SetV6 = cmp.Or(o.SetV6, DefaultSetV6)
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
