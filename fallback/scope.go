package fallback

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/xdpban/xdpban/internal/config"
)

// Scope restricts which traffic is sent through the xdpban chain, like a
// fail2ban jail's port/protocol: a banned address can still reach ports
// outside every scope. No scopes at all means all traffic.
type Scope struct {
	// Proto is "tcp", "udp" or "all".
	Proto string
	// Ports are single ports or ranges; empty means every port.
	Ports []PortRange
}

// PortRange is an inclusive port range; From == To for one port.
type PortRange struct{ From, To uint16 }

func (r PortRange) String() string {
	if r.From == r.To {
		return strconv.Itoa(int(r.From))
	}
	return strconv.Itoa(int(r.From)) + ":" + strconv.Itoa(int(r.To))
}

// ParseScope reads a jail's protocol and port as written in jail.conf:
// protocol tcp|udp|all (empty is tcp, as in fail2ban), port a comma list
// of numbers, service names (ssh, https) or ranges (1000:2000, 1000-2000).
func ParseScope(proto, ports string) (Scope, error) {
	var s Scope
	switch p := strings.ToLower(strings.TrimSpace(proto)); p {
	case "", "tcp":
		s.Proto = "tcp"
	case "udp", "all":
		s.Proto = p
	default:
		return Scope{}, fmt.Errorf("protocol %q: use tcp, udp or all", proto)
	}
	// fail2ban writes "port = all" or "0:65535" for every port.
	ps := strings.TrimSpace(ports)
	if ps == "" || strings.EqualFold(ps, "all") || ps == "any" {
		return s, nil
	}
	for _, f := range strings.Split(ps, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return Scope{}, fmt.Errorf("port %q: empty item in the list, write e.g. ssh,80,1000:2000", ports)
		}
		r, err := parsePortRange(f, s.Proto)
		if err != nil {
			return Scope{}, fmt.Errorf("port %q: %w", ports, err)
		}
		if r.From == 0 && r.To == 65535 {
			return Scope{Proto: s.Proto}, nil
		}
		if !slices.Contains(s.Ports, r) {
			s.Ports = append(s.Ports, r)
		}
	}
	return s, nil
}

func parsePortRange(f, proto string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(f, ":")
	if !isRange {
		lo, hi, isRange = strings.Cut(f, "-")
	}
	a, err := parsePort(lo, proto)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{a, a}, nil
	}
	b, err := parsePort(hi, proto)
	if err != nil {
		return PortRange{}, err
	}
	if b < a {
		return PortRange{}, fmt.Errorf("range %q runs backwards: write LOW:HIGH", f)
	}
	return PortRange{a, b}, nil
}

func parsePort(s, proto string) (uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty port: give a number 0-65535 or a service name such as ssh")
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("port %q: want a number 0-65535 or a service name such as ssh", s)
		}
		return uint16(n), nil
	}
	network := proto
	if network == "all" {
		network = "tcp"
	}
	n, err := net.LookupPort(network, s)
	if err != nil {
		return 0, fmt.Errorf("unknown service %q for %s: use a port number or a name from /etc/services", s, network)
	}
	return uint16(n), nil
}

// ScopesFromJails is the union of the enabled jails' scopes. One jail
// without a port makes the whole chain unscoped: bans apply everywhere,
// since the netfilter backend keeps a single ban list as XDP does.
func ScopesFromJails(jails []config.Jail) ([]Scope, error) {
	var out []Scope
	for _, j := range jails {
		if !j.Enabled {
			continue
		}
		s, err := ParseScope(j.Protocol, j.Port)
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
