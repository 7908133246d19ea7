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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
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
