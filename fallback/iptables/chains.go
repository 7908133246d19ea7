package iptables

import (
	"fmt"
	"slices"

	"github.com/coreos/go-iptables/iptables"
)

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
