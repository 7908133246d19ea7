package nftables

import (
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Chains of the table. "bans" holds one lookup rule per set; the base
// chains jump to it (per interface, as iptables' -i jumps), and "reject"
// answers for blocktype REJECT.
const (
	chainBans   = "bans"
	chainReject = "reject"
	chainInput  = "input"
	chainFwd    = "forward"
)

// priority runs our base chains just before the filter tables of other
// tools (iptables-nft, firewalld at 0): a banned packet costs them nothing.
// Order is not what enforces a ban: an accept in another base chain does
// not stop ours from dropping.
var priority = nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)

// ruleSpec is what a rule's comment says it does; comparing specs is how
// Open knows the rules in place are the ones this configuration wants
// (and keeps their counters) or rewrites them.
func ruleComment(spec string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, commentTag+" "+spec)
}

// ruleKind is the set a rule of chain bans looks up, from its comment.
func ruleKind(r *nftables.Rule) (kind, bool) {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	f := strings.Fields(strings.TrimPrefix(s, commentTag+" "))
	if len(f) == 0 {
		return kind{}, false
	}
	return parseKind(f[0])
}

func (b *Backend) verdict() expr.Any {
	if b.opts.BlockType == "REJECT" {
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: chainReject}
	}
	return &expr.Verdict{Kind: expr.VerdictDrop}
}

func (b *Backend) verdictName() string {
	if b.opts.BlockType == "REJECT" {
		return "reject"
	}
	return "drop"
}

// setRule is the rule matching set k: `ip saddr @all4_32 counter drop`,
// `ip6 saddr . meta l4proto . th dport @port6_64 counter drop`.
func (b *Backend) setRule(k kind, s *nftables.Set) *nftables.Rule {
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if k.v6 {
		proto, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
	if k.scoped {
		// Concatenation fields sit in consecutive 32-bit registers after
		// the address (NFT_REG32_00 is register 8, aliasing register 1).
		reg := 8 + n/4
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
			&expr.Payload{DestRegister: reg + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		)
	}
	ex = append(ex,
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		&expr.Counter{},
		b.verdict(),
	)
	return &nftables.Rule{
		Table: b.table, Chain: &nftables.Chain{Name: chainBans, Table: b.table},
		Exprs: ex, UserData: ruleComment(k.name() + " " + b.verdictName()),
	}
}

// jumpRules are the rules of a base chain: a jump to "bans", one per
// configured interface or one for all.
func (b *Backend) jumpRules(c *nftables.Chain) []*nftables.Rule {
	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: chainBans}
	if len(b.opts.Interfaces) == 0 {
		return []*nftables.Rule{{Table: b.table, Chain: c, Exprs: []expr.Any{jump}, UserData: ruleComment("jump")}}
	}
	var out []*nftables.Rule
	for _, ifc := range b.opts.Interfaces {
		name := make([]byte, unix.IFNAMSIZ)
		copy(name, ifc)
		out = append(out, &nftables.Rule{
			Table: b.table, Chain: c,
			Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
				jump,
			},
			UserData: ruleComment("jump iif=" + ifc),
		})
	}
	return out
}

// rejectRules answer as iptables' REJECT does: a TCP reset for TCP, ICMP
// port unreachable (v4 or v6) for the rest.
func (b *Backend) rejectRules(c *nftables.Chain) []*nftables.Rule {
	return []*nftables.Rule{
		{Table: b.table, Chain: c, UserData: ruleComment("reject tcp"), Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
		}},
		{Table: b.table, Chain: c, UserData: ruleComment("reject icmpx"), Exprs: []expr.Any{
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH},
		}},
	}
}

func specs(rs []*nftables.Rule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		out[i] = s
	}
	return out
}

// sameRules reports whether the rules in place say what want says.
func sameRules(have, want []*nftables.Rule) bool {
	return slices.Equal(specs(have), specs(want))
}
