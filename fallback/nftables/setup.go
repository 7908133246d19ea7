package nftables

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/google/nftables"

	"github.com/xdpban/xdpban/internal/bans"
)

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
