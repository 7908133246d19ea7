// Package nftables enforces bans with nftables: a table of its own, inet
// xdpban, with kernel sets that expire their elements by themselves.
//
// Layout of the table (nft list table inet xdpban):
//
//	set all4_32  { type ipv4_addr; flags timeout; counter }                 single addresses, all traffic
//	set all4_24  { type ipv4_addr; flags interval,timeout; counter }        a /24 ban, all traffic
//	set port4_32 { type ipv4_addr . inet_proto . inet_service; flags interval,timeout; counter }  scoped bans
//	(and all6_128, all6_64, port6_64, …: one set per family, prefix length and kind in use)
//	chain bans    { ip saddr @all4_32 counter drop; ip saddr . meta l4proto . th dport @port4_32 counter drop; … }
//	chain input   { type filter hook input priority filter - 10; iifname "eth0" jump bans }
//	chain forward { … same, when FORWARD or DOCKER-USER is configured }
//	chain reject  { meta l4proto tcp reject with tcp reset; reject with icmpx port-unreachable } (blocktype REJECT)
//
// Element timeouts are the bans' remaining time, so expiry is the
// kernel's even while the daemon is down; permanent bans have none. Each
// element carries its own counter and a comment with the jail and the
// wall-clock end. Nothing outside this table is read or written.
package nftables

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"

	"github.com/xdpban/xdpban/internal/bans"
)

// Defaults for Options.
const (
	DefaultTable   = "xdpban"
	DefaultMaxElem = 1 << 18
)

// ErrBadOption is wrapped by Open for options it cannot use.
var ErrBadOption = errors.New("bad nftables option")

// ErrNoTable: Open with Existing found no table to adopt.
var ErrNoTable = errors.New("no xdpban nftables table")

// Options configure the backend. The zero value is the daemon's default:
// table inet xdpban, hooked at input on every interface, DROP.
type Options struct {
	// Table is the inet table xdpban owns.
	Table string
	// From are the iptables chain names the iptables backend jumps from:
	// INPUT hooks input; FORWARD or DOCKER-USER hooks forward (routed and
	// container traffic). Default INPUT.
	From []string
	// Interfaces restrict enforcement to these input interfaces, as XDP
	// is attached to them; empty means every interface.
	Interfaces []string
	// BlockType is DROP (default) or REJECT: a TCP reset for TCP, ICMP
	// port unreachable for the rest.
	BlockType string
	// MaxElem is the capacity of each set, in bans.
	MaxElem int
	// Netns is the path of the network namespace to work in (for example
	// /run/netns/NAME); empty is the caller's own. Tests always set it.
	Netns string
	// Existing adopts the table a daemon left and creates nothing: with
	// no table, Open returns ErrNoTable (the CLI working without a
	// daemon).
	Existing bool
	// Reason is reported in Status: why this backend was chosen.
	Reason string
	Logger *slog.Logger
	// Now is the clock, for tests; time.Now by default.
	Now func() time.Time
}

func (o *Options) defaults() error {
	o.Table = cmp.Or(o.Table, DefaultTable)
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
	switch strings.ToUpper(strings.TrimSpace(o.BlockType)) {
	case "", "DROP":
		o.BlockType = "DROP"
	case "REJECT":
		o.BlockType = "REJECT"
	default:
		return fmt.Errorf("%w: blocktype %q: use DROP or REJECT", ErrBadOption, o.BlockType)
	}
	if len(o.Table) > 255 || strings.ContainsAny(o.Table, " \t\"'") {
		return fmt.Errorf("%w: table %q: use a name without spaces or quotes", ErrBadOption, o.Table)
	}
	for _, c := range o.From {
		if _, ok := hookOf(c); !ok {
			return fmt.Errorf("%w: chain %q to protect: the nftables backend hooks INPUT (input) and FORWARD or DOCKER-USER (forward)", ErrBadOption, c)
		}
	}
	for _, i := range o.Interfaces {
		if i == "" || len(i) >= 16 {
			return fmt.Errorf("%w: interface %q: want a name of 1 to 15 characters", ErrBadOption, i)
		}
	}
	return nil
}

// hookOf maps an iptables chain name to the base chain that sees the same
// packets.
func hookOf(chain string) (string, bool) {
	switch strings.ToUpper(chain) {
	case "INPUT":
		return chainInput, true
	case "FORWARD", "DOCKER-USER":
		return chainFwd, true
	}
	return "", false
}

// entry is one ban as the backend keeps it; inKernel is false for a ban
// added already expired (nothing to enforce, listed until the sweep).
type entry struct {
	ban      bans.Ban
	inKernel bool
}

// Backend is the nftables backend.
type Backend struct {
	mu     sync.Mutex
	opts   Options
	log    *slog.Logger
	nsf    *os.File
	conn   *nftables.Conn
	table  *nftables.Table
	sets   map[kind]*nftables.Set
	known  map[netip.Prefix]entry
	closed bool
}

var _ bans.Backend = (*Backend)(nil)

// Open sets up the table, or adopts the one a stopped daemon left with
// its bans, and makes its chains match opts. A host without nf_tables
// gets an error wrapping bans.ErrUnsupported.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	conn, nsf, err := dial(opts.Netns)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		opts: opts, log: opts.Logger, nsf: nsf, conn: conn,
		table: &nftables.Table{Family: nftables.TableFamilyINet, Name: opts.Table},
		sets:  map[kind]*nftables.Set{}, known: map[netip.Prefix]entry{},
	}
	if err := b.setup(ctx); err != nil {
		b.closeHandles()
		return nil, err
	}
	return b, nil
}

// dial opens a lasting netlink socket in the namespace at path.
func dial(path string) (*nftables.Conn, *os.File, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		// A batch of a thousand elements is about 100 kB; a dump of a
		// million is read in pieces but faster with room.
		_ = c.SetReadBuffer(8 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		return nil
	})}
	var f *os.File
	if path != "" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, nil, fmt.Errorf("open network namespace %s: %w", path, err)
		}
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, nil, fmt.Errorf("nftables: open netlink socket: %w: %w", bans.ErrUnsupported, err)
	}
	return c, f, nil
}

func (b *Backend) setup(ctx context.Context) (err error) {
	tables, err := b.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nftables: list tables (is nf_tables in the kernel?): %w: %w", bans.ErrUnsupported, err)
	}
	fresh := !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == b.opts.Table })
	if fresh && b.opts.Existing {
		return fmt.Errorf("%w: no table inet %s", ErrNoTable, b.opts.Table)
	}
	defer func() {
		// A table this Open made goes again if it fails; one an earlier
		// run left (with its bans) stays.
		if err != nil && fresh {
			b.conn.DelTable(b.table)
			_ = b.conn.Flush()
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}

	// Table and the regular chains first: the base chains jump to them.
	b.conn.AddTable(b.table)
	b.conn.AddChain(&nftables.Chain{Name: chainBans, Table: b.table})
	if b.opts.BlockType == "REJECT" {
		b.conn.AddChain(&nftables.Chain{Name: chainReject, Table: b.table})
	}
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: create table inet %s: %w", b.opts.Table, unsupported(err))
	}
	if err := b.loadSets(); err != nil {
		return err
	}
	if err := b.load(); err != nil {
		return err
	}
	return b.syncChains()
}

// unsupported marks errors that mean the kernel lacks what we use.
func unsupported(err error) error {
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EPROTONOSUPPORT) ||
		errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.ENOENT) && strings.Contains(err.Error(), "netlink") {
		return fmt.Errorf("%w: %w", bans.ErrUnsupported, err)
	}
	return err
}

// loadSets finds the sets an earlier run made.
func (b *Backend) loadSets() error {
	sets, err := b.conn.GetSets(b.table)
	if err != nil {
		return fmt.Errorf("nftables: list sets of inet %s: %w", b.opts.Table, err)
	}
	for _, s := range sets {
		k, ok := parseKind(s.Name)
		if !ok {
			b.log.Warn("nftables: set of unknown name in xdpban's table, left alone", "table", b.opts.Table, "set", s.Name)
			continue
		}
		b.sets[k] = k.set(b.table, b.opts.MaxElem)
	}
	return nil
}

func (b *Backend) sortedKinds() []kind {
	ks := make([]kind, 0, len(b.sets))
	for k := range b.sets {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].less(ks[j]) })
	return ks
}

// syncChains makes the rules say what this configuration wants, in one
// transaction: rules already right are kept with their counters; the
// others are replaced with no moment where a ban is not enforced.
func (b *Backend) syncChains() error {
	chains, err := b.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nftables: list chains: %w", err)
	}
	have := map[string]*nftables.Chain{}
	for _, c := range chains {
		if c.Table.Name == b.opts.Table {
			have[c.Name] = c
		}
	}
	changed := false
	replace := func(c *nftables.Chain, want []*nftables.Rule) error {
		cur, err := b.conn.GetRules(b.table, c)
		if err != nil {
			return fmt.Errorf("nftables: list rules of chain %s: %w", c.Name, err)
		}
		if sameRules(cur, want) {
			return nil
		}
		b.conn.FlushChain(c)
		for _, r := range want {
			b.conn.AddRule(r)
		}
		changed = true
		return nil
	}

	bansChain := &nftables.Chain{Name: chainBans, Table: b.table}
	var want []*nftables.Rule
	for _, k := range b.sortedKinds() {
		want = append(want, b.setRule(k, b.sets[k]))
	}
	if err := replace(bansChain, want); err != nil {
		return err
	}
	if b.opts.BlockType == "REJECT" {
		rc := &nftables.Chain{Name: chainReject, Table: b.table}
		if err := replace(rc, b.rejectRules(rc)); err != nil {
			return err
		}
	} else if c, ok := have[chainReject]; ok {
		// REJECT before, DROP now: the bans rules above no longer jump
		// there, in this same transaction.
		b.conn.FlushChain(c)
		b.conn.DelChain(c)
		changed = true
	}

	hooks := map[string]bool{}
	for _, f := range b.opts.From {
		h, _ := hookOf(f)
		hooks[h] = true
	}
	for _, name := range []string{chainInput, chainFwd} {
		c, exists := have[name]
		if !hooks[name] {
			if exists {
				b.conn.FlushChain(c)
				b.conn.DelChain(c)
				changed = true
			}
			continue
		}
		hook := nftables.ChainHookInput
		if name == chainFwd {
			hook = nftables.ChainHookForward
		}
		wantChain := &nftables.Chain{
			Name: name, Table: b.table, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: priority, Policy: ptr(nftables.ChainPolicyAccept),
		}
		if exists && (c.Hooknum == nil || *c.Hooknum != *hook || c.Priority == nil || *c.Priority != *priority) {
			// Made by another version with another hook or priority:
			// a base chain's hook cannot change in place.
			b.conn.FlushChain(c)
			b.conn.DelChain(c)
			exists = false
		}
		if !exists {
			b.conn.AddChain(wantChain)
			for _, r := range b.jumpRules(wantChain) {
				b.conn.AddRule(r)
			}
			changed = true
			continue
		}
		if err := replace(wantChain, b.jumpRules(wantChain)); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: set up chains of inet %s: %w", b.opts.Table, unsupported(err))
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// ensureSets creates the sets (and their rules, at their place in the
// order) that bans of kinds ks need.
func (b *Backend) ensureSets(ks []kind) error {
	var missing []kind
	for _, k := range ks {
		if _, ok := b.sets[k]; !ok && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].less(missing[j]) })
	bansChain := &nftables.Chain{Name: chainBans, Table: b.table}
	for _, k := range missing {
		rules, err := b.conn.GetRules(b.table, bansChain)
		if err != nil {
			return fmt.Errorf("nftables: list rules of chain %s: %w", chainBans, err)
		}
		s := k.set(b.table, b.opts.MaxElem)
		if err := b.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables: set %s: %w", s.Name, err)
		}
		r := b.setRule(k, s)
		// Before the first rule of a kind that sorts after k.
		for _, have := range rules {
			if hk, ok := ruleKind(have); ok && k.less(hk) {
				r.Position = have.Handle
				break
			}
		}
		if r.Position != 0 {
			b.conn.InsertRule(r)
		} else {
			b.conn.AddRule(r)
		}
		if err := b.conn.Flush(); err != nil {
			return fmt.Errorf("nftables: create set %s and its rule: %w", s.Name, err)
		}
		b.sets[k] = k.set(b.table, b.opts.MaxElem)
	}
	return nil
}

// Kind implements bans.Backend.
func (b *Backend) Kind() string { return "nftables" }

func check(x bans.Ban) error {
	p := x.Prefix
	if !p.IsValid() {
		return fmt.Errorf("invalid prefix %v: give an address or CIDR", p)
	}
	if p.Addr().Is4In6() || p != p.Masked() {
		return fmt.Errorf("prefix %s is not canonical: pass it through bans.Widen first", p)
	}
	if p.Bits() == 0 {
		return fmt.Errorf("prefix %s would ban every address: use a prefix length of at least 1", p)
	}
	switch x.Scope.Proto {
	case "", "all", "tcp", "udp":
	default:
		return fmt.Errorf("ban %s: scope protocol %q: use tcp, udp or all", p, x.Scope.Proto)
	}
	for _, r := range x.Scope.Ports {
		if r.To < r.From {
			return fmt.Errorf("ban %s: port range %s runs backwards", p, r)
		}
	}
	return nil
}

// maxTimeout bounds an element's timeout; a longer ban is permanent in
// the kernel and ended by the sweep.
const maxTimeout = 10 * 365 * 24 * time.Hour

// timeoutMs is a ban's element timeout: its remaining time rounded up to
// the millisecond the kernel counts in, 0 for none.
func timeoutMs(x bans.Ban, now time.Time) int64 {
	if x.Permanent() {
		return 0
	}
	r := x.Remaining(now)
	if r > maxTimeout {
		return 0
	}
	return max(int64((r+time.Millisecond-1)/time.Millisecond), 1)
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// batchElems bounds one netlink transaction.
const batchElems = 1000

// op is one ban's change: the elements to remove (the ban it replaces)
// and to add, applied in one transaction so a re-ban is never lifted.
type op struct {
	ban      bans.Ban
	old      *bans.Ban
	add, del []nftables.SetElement
	addSet   *nftables.Set
	delSet   *nftables.Set
}

func (b *Backend) queue(o op) error {
	if len(o.del) > 0 {
		if err := b.conn.SetDeleteElements(o.delSet, o.del); err != nil {
			return err
		}
	}
	if len(o.add) > 0 {
		if err := b.conn.SetAddElements(o.addSet, o.add); err != nil {
			return err
		}
	}
	return nil
}

// Add implements bans.Backend.
func (b *Backend) Add(ctx context.Context, bs ...bans.Ban) error {
	for _, x := range bs {
		if err := check(x); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	now := b.opts.Now()
	var ks []kind
	for _, x := range bs {
		if !x.Expired(now) {
			ks = append(ks, kindOf(x))
		}
	}
	if err := b.ensureSets(ks); err != nil {
		return err
	}

	var ops []op
	pending := map[netip.Prefix]entry{}
	for _, x := range bs {
		x.Packets, x.Bytes = 0, 0
		o := op{ban: x}
		old, had := pending[x.Prefix]
		if !had {
			old, had = b.known[x.Prefix]
		}
		if k := kindOf(old.ban); had && old.inKernel && b.sets[k] != nil {
			o.old, o.delSet, o.del = &old.ban, b.sets[k], k.elems(old.ban, "", 0)
		}
		if !x.Expired(now) {
			k := kindOf(x)
			o.addSet, o.add = b.sets[k], k.elems(x, formatComment(x.Jail, x.Expires), timeoutMs(x, now))
		}
		pending[x.Prefix] = entry{ban: x, inKernel: len(o.add) > 0}
		ops = append(ops, o)
	}

	for start := 0; start < len(ops); {
		if err := ctx.Err(); err != nil {
			return err
		}
		end, n := start, 0
		for end < len(ops) && (n == 0 || n+len(ops[end].add)+len(ops[end].del) <= batchElems) {
			n += len(ops[end].add) + len(ops[end].del)
			end++
		}
		if err := b.apply(ops[start:end]); err != nil {
			return err
		}
		for _, o := range ops[start:end] {
			b.known[o.ban.Prefix] = entry{ban: o.ban, inKernel: len(o.add) > 0}
		}
		start = end
	}
	return nil
}

// apply runs ops in one transaction. If it fails because an element to
// replace is gone (the kernel expired it meanwhile), each op is retried
// alone, its old elements removed one by one where still there.
func (b *Backend) apply(ops []op) error {
	for _, o := range ops {
		if err := b.queue(o); err != nil {
			return err
		}
	}
	err := b.conn.Flush()
	if err == nil {
		return nil
	}
	if len(ops) == 1 && (len(ops[0].del) == 0 || !errors.Is(err, syscall.ENOENT)) {
		return banErr(ops[0].ban.Prefix, err)
	}
	for _, o := range ops {
		if err := b.queue(o); err != nil {
			return err
		}
		err := b.conn.Flush()
		if err == nil {
			continue
		}
		if len(o.del) == 0 || !errors.Is(err, syscall.ENOENT) {
			return banErr(o.ban.Prefix, err)
		}
		if err := b.delTolerant(o.delSet, o.del); err != nil {
			return fmt.Errorf("nftables: replace ban %s: %w", o.ban.Prefix, err)
		}
		if len(o.add) == 0 {
			continue
		}
		if err := b.conn.SetAddElements(o.addSet, o.add); err != nil {
			return err
		}
		if err := b.conn.Flush(); err != nil {
			return banErr(o.ban.Prefix, err)
		}
	}
	return nil
}

func banErr(p netip.Prefix, err error) error {
	if errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("ban %s: nftables set: %w (raise the map size)", p, bans.ErrFull)
	}
	return fmt.Errorf("nftables: ban %s: %w", p, err)
}

// delTolerant removes elements one transaction each, ignoring those
// already gone. An interval's start and end go together.
func (b *Backend) delTolerant(s *nftables.Set, es []nftables.SetElement) error {
	for i := 0; i < len(es); i++ {
		group := es[i : i+1]
		if i+1 < len(es) && es[i+1].IntervalEnd {
			group = es[i : i+2]
			i++
		}
		if err := b.conn.SetDeleteElements(s, group); err != nil {
			return err
		}
		if err := b.conn.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	return nil
}

// Delete implements bans.Backend.
func (b *Backend) Delete(ctx context.Context, ps ...netip.Prefix) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed
	}
	return b.delete(ctx, ps)
}

func (b *Backend) delete(ctx context.Context, ps []netip.Prefix) (int, error) {
	var ops []op
	seen := map[netip.Prefix]bool{}
	n := 0
	for _, p := range ps {
		e, ok := b.known[p]
		if seen[p] || !p.IsValid() {
			continue
		}
		if !ok {
			// Not in our view (a dump at Open may have skipped it):
			// the kernel may still have it as an all-traffic ban.
			gone, err := b.deleteUnknown(p)
			if err != nil {
				return n, err
			}
			if gone {
				seen[p] = true
				n++
			}
			continue
		}
		seen[p] = true
		o := op{ban: e.ban}
		if k := kindOf(e.ban); e.inKernel && b.sets[k] != nil {
			o.delSet, o.del = b.sets[k], k.elems(e.ban, "", 0)
		}
		ops = append(ops, o)
	}
	for start := 0; start < len(ops); {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		end, cnt := start, 0
		for end < len(ops) && (cnt == 0 || cnt+len(ops[end].del) <= batchElems) {
			cnt += len(ops[end].del)
			end++
		}
		if err := b.applyDelete(ops[start:end]); err != nil {
			return n, err
		}
		for _, o := range ops[start:end] {
			delete(b.known, o.ban.Prefix)
			n++
		}
		start = end
	}
	return n, nil
}

// deleteUnknown removes p from the all-traffic set of its length if the
// kernel has it there; gone reports whether it did.
func (b *Backend) deleteUnknown(p netip.Prefix) (gone bool, err error) {
	k := kindOf(bans.Ban{Prefix: p})
	s, ok := b.sets[k]
	if !ok {
		return false, nil
	}
	if err := b.conn.SetDeleteElements(s, k.elems(bans.Ban{Prefix: p}, "", 0)); err != nil {
		return false, err
	}
	err = b.conn.Flush()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.ENOENT):
		return false, nil
	}
	return false, fmt.Errorf("nftables: unban %s: %w", p, err)
}

func (b *Backend) applyDelete(ops []op) error {
	for _, o := range ops {
		if err := b.queue(o); err != nil {
			return err
		}
	}
	err := b.conn.Flush()
	if err == nil || !errors.Is(err, syscall.ENOENT) {
		if err != nil {
			return fmt.Errorf("nftables: unban %d: %w", len(ops), err)
		}
		return nil
	}
	// Some were expired by the kernel already.
	for _, o := range ops {
		if len(o.del) == 0 {
			continue
		}
		if err := b.delTolerant(o.delSet, o.del); err != nil {
			return fmt.Errorf("nftables: unban %s: %w", o.ban.Prefix, err)
		}
	}
	return nil
}

// Flush implements bans.Backend.
func (b *Backend) Flush(ctx context.Context) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed
	}
	cur, err := b.list(b.opts.Now())
	if err != nil {
		return 0, err
	}
	for _, s := range b.sets {
		b.conn.FlushSet(s)
	}
	if err := b.conn.Flush(); err != nil {
		return 0, fmt.Errorf("nftables: flush sets: %w", err)
	}
	b.known = map[netip.Prefix]entry{}
	return len(cur), nil
}

// load rebuilds the in-memory view from the kernel (adopting a table).
func (b *Backend) load() error {
	got, err := b.read(b.opts.Now())
	if err != nil {
		return err
	}
	b.known = map[netip.Prefix]entry{}
	for _, x := range got {
		b.known[x.Prefix] = entry{ban: x, inKernel: true}
	}
	if len(got) > 0 {
		b.log.Info("nftables: adopted bans left in the table", "table", b.opts.Table, "bans", len(got))
	}
	return nil
}

// read dumps every set: one ban per prefix, its scope rebuilt from its
// elements, its counters summed over them.
func (b *Backend) read(now time.Time) ([]bans.Ban, error) {
	type acc struct {
		ban    bans.Ban
		ranges []protoRange
	}
	byPrefix := map[netip.Prefix]*acc{}
	var order []netip.Prefix
	for _, k := range b.sortedKinds() {
		s := b.sets[k]
		es, err := b.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables: list set %s: %w", s.Name, err)
		}
		for _, e := range es {
			if e.IntervalEnd {
				continue
			}
			p, pr, err := k.parseElem(e)
			if err != nil {
				b.log.Warn("nftables: unreadable element", "err", err)
				continue
			}
			a := byPrefix[p]
			if a == nil {
				a = &acc{ban: bans.Ban{Prefix: p}}
				jail, exp, ours, perr := parseComment(e.Comment)
				switch {
				case ours && perr == nil:
					a.ban.Jail, a.ban.Expires = jail, exp
				default:
					if perr != nil {
						b.log.Warn("nftables: unreadable element comment", "set", s.Name, "err", perr)
					}
					if e.Timeout > 0 {
						a.ban.Expires = now.Add(e.Expires)
					}
				}
				byPrefix[p] = a
				order = append(order, p)
			}
			if e.Counter != nil {
				a.ban.Packets += e.Counter.Packets
				a.ban.Bytes += e.Counter.Bytes
			}
			if k.scoped {
				a.ranges = append(a.ranges, pr)
			}
		}
	}
	out := make([]bans.Ban, 0, len(order))
	for _, p := range order {
		a := byPrefix[p]
		if len(a.ranges) > 0 {
			a.ban.Scope = scopeOf(a.ranges)
		}
		out = append(out, a.ban)
	}
	return out, nil
}

// List implements bans.Backend.
func (b *Backend) List(ctx context.Context) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	return b.list(b.opts.Now())
}

func (b *Backend) list(now time.Time) ([]bans.Ban, error) {
	got, err := b.read(now)
	if err != nil {
		return nil, err
	}
	seen := map[netip.Prefix]bool{}
	for i, x := range got {
		seen[x.Prefix] = true
		// The scope as it was given, when the kernel's says the same
		// (the kernel's form merges and sorts the port ranges).
		if e, ok := b.known[x.Prefix]; ok && sameScope(e.ban.Scope, x.Scope) {
			got[i].Scope = e.ban.Scope
		}
	}
	// The kernel removes timed-out elements itself; until the sweep has
	// seen them they are listed like XDP's expired entries. A ban missing
	// before its end is listed too, never forgotten: a dump of a set the
	// kernel is still resizing after a bulk insert can skip elements
	// (seen with 200k), and forgetting one would leave it unliftable.
	for p, e := range b.known {
		if !seen[p] {
			got = append(got, e.ban)
		}
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Prefix.String() < got[j].Prefix.String() })
	return got, nil
}

func sameScope(a, b bans.Scope) bool {
	if a.All() || b.All() {
		return a.All() == b.All()
	}
	pa, pb := portElems(a), portElems(b)
	return slices.Equal(pa, pb)
}

// Expire implements bans.Backend. It works from the bans this backend
// holds, without a dump: the kernel ends the elements by itself, so what
// is left to do is forget them (and delete any the kernel still has, for
// bans longer than the kernel's timeout). A dump of a large set costs
// seconds; a sweep must not.
func (b *Backend) Expire(ctx context.Context, now time.Time) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	var done []bans.Ban
	var ps []netip.Prefix
	for p, e := range b.known {
		if e.ban.Expired(now) {
			done = append(done, e.ban)
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil, nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Prefix.String() < done[j].Prefix.String() })
	if _, err := b.delete(ctx, ps); err != nil {
		return nil, err
	}
	return done, nil
}

// Status implements bans.Backend. Table entries are the bans this
// backend holds per set (counting the kernel's would dump every element).
func (b *Backend) Status(ctx context.Context) (bans.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bans.Status{}, errClosed
	}
	st := bans.Status{Backend: "nftables", Reason: b.opts.Reason, Counters: map[string]uint64{}}
	ifs := b.opts.Interfaces
	if len(ifs) == 0 {
		ifs = []string{"*"}
	}
	for _, i := range ifs {
		st.Interfaces = append(st.Interfaces, bans.IfaceStatus{Name: i, Mode: "netfilter"})
	}
	count := map[kind]int{}
	for _, e := range b.known {
		if e.inKernel {
			count[kindOf(e.ban)]++
		}
	}
	for _, k := range b.sortedKinds() {
		st.Tables = append(st.Tables, bans.TableStatus{Name: b.opts.Table + "/" + k.name(), Entries: count[k], Capacity: b.opts.MaxElem})
	}
	rules, err := b.conn.GetRules(b.table, &nftables.Chain{Name: chainBans, Table: b.table})
	if err != nil {
		return bans.Status{}, fmt.Errorf("nftables: list rules of chain %s: %w", chainBans, err)
	}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				st.Counters["dropped"] += c.Packets
				st.Counters["dropped_bytes"] += c.Bytes
			}
		}
	}
	st.Counters["entries"] = uint64(len(b.known))
	return st, nil
}

var errClosed = errors.New("nftables backend closed")

func (b *Backend) closeHandles() {
	if b.conn != nil {
		_ = b.conn.CloseLasting()
	}
	if b.nsf != nil {
		b.nsf.Close()
		b.nsf = nil
	}
}

// Close implements bans.Backend: the table stays, so traffic stays
// blocked (and bans keep expiring) while the daemon restarts.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.closeHandles()
	return nil
}

// Detach implements bans.Backend: it deletes the table inet xdpban, with
// its sets, chains and hooks, and nothing else.
func (b *Backend) Detach() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	b.conn.DelTable(b.table)
	err := b.conn.Flush()
	if errors.Is(err, syscall.ENOENT) {
		err = nil
	}
	b.closed = true
	b.closeHandles()
	if err != nil {
		return fmt.Errorf("nftables: delete table inet %s: %w", b.opts.Table, err)
	}
	return nil
}
