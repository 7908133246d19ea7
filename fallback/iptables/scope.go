package iptables

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// Scope and PortRange are the ban scope every backend shares.
type (
	Scope     = bans.Scope
	PortRange = bans.PortRange
)

// Each ban carries its own scope. In ipset mode a ban of all traffic is
// an element of the family's set (SetV4/SetV6), matched for every packet;
// a port-scoped ban is an element of that scope's own set, matched only
// by the scope's rules (-p tcp -m multiport --dports 22 -m set ...), which
// carry the scope in their comment so a restart finds the sets again. In
// rules mode a scoped ban is one rule per protocol and multiport chunk.
// Either way the scope is also in the ban's comment ("scope=tcp/22").

// scopeSetName is the ipset of scope s in a family whose all-traffic set
// is base: named by a hash of the scope, so the same scope always gets
// the same set, across restarts too.
func scopeSetName(base string, s Scope) string {
	h := fnv.New32a()
	h.Write([]byte(s.String()))
	return fmt.Sprintf("%s-%08x", base, h.Sum32())
}

// scopeSetSuffix is how much scopeSetName adds to a set name.
const scopeSetSuffix = len("-01234567")

// scopeMatches renders the protocol and port matches that select a
// scope's packets, one per rule: xt_multiport takes at most 15 ports, a
// range counting as two, so long lists become several rules. All traffic
// is one empty match.
func scopeMatches(s Scope) [][]string {
	if s.All() {
		return [][]string{nil}
	}
	protos := []string{s.Proto}
	if s.Proto == "all" || s.Proto == "" {
		protos = []string{"tcp", "udp"}
	}
	var out [][]string
	for _, p := range protos {
		if len(s.Ports) == 0 {
			out = append(out, []string{"-p", p})
			continue
		}
		for _, chunk := range chunkPorts(s.Ports) {
			out = append(out, []string{"-p", p, "-m", "multiport", "--dports", chunk})
		}
	}
	return out
}

// jumpSpec is the rule (without chain) that sends traffic to the xdpban
// chain: all of it, since each ban inside says what it drops.
func jumpSpec(target string) []string {
	return []string{"-m", "comment", "--comment", commentTag + " jump", "-j", target}
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

// scopeTag is the comment of a scope set's match rules.
func scopeTag(s Scope) string { return commentTag + " scope=" + s.String() }

// scopeOfTag reads scopeTag back; ok is false for any other comment.
func scopeOfTag(c string) (Scope, bool) {
	v, ok := strings.CutPrefix(c, commentTag+" scope=")
	if !ok {
		return Scope{}, false
	}
	s, err := bans.ParseScopeString(v)
	if err != nil || s.All() {
		return Scope{}, false
	}
	return s, true
}

// banComment is a ban's comment: jail and end, and its scope unless all.
func banComment(x bans.Ban) string {
	if x.Scope.All() {
		return formatComment(x.Jail, x.Expires, 0)
	}
	suffix := " scope=" + x.Scope.String()
	return formatComment(x.Jail, x.Expires, len(suffix)) + suffix
}

// parseBanComment is banComment's inverse.
func parseBanComment(c string) (jail string, exp time.Time, sc Scope, ours bool, err error) {
	jail, exp, ours, err = parseComment(c)
	if !ours || err != nil {
		return jail, exp, Scope{}, ours, err
	}
	for _, f := range strings.Fields(c) {
		if v, ok := strings.CutPrefix(f, "scope="); ok {
			if sc, err = bans.ParseScopeString(v); err != nil {
				return jail, exp, Scope{}, true, fmt.Errorf("comment %q: %w", c, err)
			}
		}
	}
	return jail, exp, sc, true, nil
}

func sameScope(a, b Scope) bool { return a.String() == b.String() }

// uniqSpecs drops repeated specs: identical rules are one in the kernel
// but would be two in the bookkeeping.
func uniqSpecs(in [][]string) [][]string {
	var out [][]string
	for _, s := range in {
		if !slices.ContainsFunc(out, func(u []string) bool { return slices.Equal(u, s) }) {
			out = append(out, s)
		}
	}
	return out
}
