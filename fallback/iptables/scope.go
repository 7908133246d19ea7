package iptables

import (
	"fmt"
	"slices"
	"strings"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// Scope and PortRange are the ban scope every backend shares.
type (
	Scope     = bans.Scope
	PortRange = bans.PortRange
)

// ScopesFromJails is the union of the enabled jails' scopes. One jail
// without a port makes the whole chain unscoped: bans apply everywhere,
// since the netfilter backend keeps a single ban list as XDP does.
func ScopesFromJails(jails []config.Jail) ([]Scope, error) {
	var out []Scope
	for _, j := range jails {
		if !j.Enabled {
			continue
		}
		s, err := bans.ParseScope(j.Protocol, j.Port)
		if err != nil {
			return nil, fmt.Errorf("jail %s (%s): %w", j.Name, j.Source, err)
		}
		if len(s.Ports) == 0 && s.Proto == "all" {
			return nil, nil
		}
		out = append(out, s)
	}
	return out, nil
}

// jumpSpecs renders the rule specs (without chain) that send scoped
// traffic to the xdpban chain. xt_multiport takes at most 15 ports, a
// range counting as two, so long lists become several rules.
func jumpSpecs(scopes []Scope, target string) [][]string {
	tag := []string{"-m", "comment", "--comment", commentTag + " jump"}
	if len(scopes) == 0 {
		return [][]string{append(slices.Clone(tag), "-j", target)}
	}
	var out [][]string
	for _, s := range scopes {
		protos := []string{s.Proto}
		if s.Proto == "all" {
			if len(s.Ports) == 0 {
				out = append(out, append(slices.Clone(tag), "-j", target))
				continue
			}
			protos = []string{"tcp", "udp"}
		}
		for _, p := range protos {
			if len(s.Ports) == 0 {
				out = append(out, append([]string{"-p", p}, append(slices.Clone(tag), "-j", target)...))
				continue
			}
			for _, chunk := range chunkPorts(s.Ports) {
				spec := []string{"-p", p, "-m", "multiport", "--dports", chunk}
				out = append(out, append(spec, append(slices.Clone(tag), "-j", target)...))
			}
		}
	}
	// Identical specs (two jails on ssh) would be one rule in the kernel
	// but two in our bookkeeping.
	var uniq [][]string
	for _, s := range out {
		if !slices.ContainsFunc(uniq, func(u []string) bool { return slices.Equal(u, s) }) {
			uniq = append(uniq, s)
		}
	}
	return uniq
}

func chunkPorts(rs []PortRange) []string {
	var out []string
	var cur []string
	weight := 0
	for _, r := range rs {
		w := 1
		if r.From != r.To {
			w = 2
		}
		if weight+w > 15 {
			out = append(out, strings.Join(cur, ","))
			cur, weight = nil, 0
		}
		cur = append(cur, r.String())
		weight += w
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, ","))
	}
	return out
}
