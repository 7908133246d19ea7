package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
)

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
