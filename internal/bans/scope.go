package bans

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Scope is which traffic of a banned address a ban drops, like a fail2ban
// jail's port/protocol. The zero Scope, and Proto "all" without ports,
// mean all traffic: what a CLI ban and a banscope = all jail ask for.
// Every backend enforces exactly a ban's scope, so an operator who falls
// back from XDP to netfilter gets the same protection.
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

// All reports whether the scope covers every packet of the address.
func (s Scope) All() bool {
	return len(s.Ports) == 0 && (s.Proto == "" || s.Proto == "all")
}

// Matches reports whether a packet of protocol proto ("tcp", "udp",
// anything else) to port is inside the scope.
func (s Scope) Matches(proto string, port uint16) bool {
	if s.All() {
		return true
	}
	switch s.Proto {
	case "tcp", "udp":
		if proto != s.Proto {
			return false
		}
	case "all", "":
		if len(s.Ports) > 0 && proto != "tcp" && proto != "udp" {
			return false
		}
	}
	if len(s.Ports) == 0 {
		return true
	}
	for _, r := range s.Ports {
		if port >= r.From && port <= r.To {
			return true
		}
	}
	return false
}

// String writes the scope as "all", "tcp" or "tcp/22,80:90"; ParseScopeString
// reads it back.
func (s Scope) String() string {
	if s.All() {
		return "all"
	}
	if len(s.Ports) == 0 {
		return s.Proto
	}
	parts := make([]string, len(s.Ports))
	for i, r := range s.Ports {
		parts[i] = r.String()
	}
	return s.Proto + "/" + strings.Join(parts, ",")
}

// MarshalText makes a scope a string in JSON and the store.
func (s Scope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (s *Scope) UnmarshalText(b []byte) error {
	v, err := ParseScopeString(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseScopeString reads Scope.String's form; "" is all traffic.
func ParseScopeString(str string) (Scope, error) {
	str = strings.TrimSpace(str)
	if str == "" || str == "all" {
		return Scope{}, nil
	}
	proto, ports, _ := strings.Cut(str, "/")
	s, err := ParseScope(proto, ports)
	if err != nil {
		return Scope{}, fmt.Errorf("scope %q: %w", str, err)
	}
	if s.All() {
		return Scope{}, nil
	}
	return s, nil
}

// Covers reports whether every packet o drops, s drops too.
func (s Scope) Covers(o Scope) bool {
	if s.All() {
		return true
	}
	if o.All() {
		return false
	}
	sp, op := protoOf(s), protoOf(o)
	if sp != "all" && sp != op {
		return false
	}
	if len(s.Ports) == 0 {
		return true
	}
	if len(o.Ports) == 0 {
		return false
	}
	merged := mergeRanges(s.Ports)
	for _, r := range o.Ports {
		if !inRanges(merged, r) {
			return false
		}
	}
	return true
}

// Union is a scope covering both s and o: the wider of the two when one
// covers the other, otherwise both port lists under the shared protocol
// (or under "all" when they differ, which drops a little more than
// either asked rather than less).
func Union(s, o Scope) Scope {
	switch {
	case s.Covers(o):
		return s
	case o.Covers(s):
		return o
	}
	proto := protoOf(s)
	if proto != protoOf(o) {
		proto = "all"
	}
	if len(s.Ports) == 0 || len(o.Ports) == 0 {
		if proto == "all" {
			return Scope{}
		}
		return Scope{Proto: proto}
	}
	return Scope{Proto: proto, Ports: mergeRanges(append(slices.Clone(s.Ports), o.Ports...))}
}

func protoOf(s Scope) string {
	if s.Proto == "" {
		return "all"
	}
	return s.Proto
}

// mergeRanges sorts port ranges and joins those that overlap or touch.
func mergeRanges(rs []PortRange) []PortRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.From) - int(b.From) })
	var out []PortRange
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.From) <= int(out[n-1].To)+1 {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// inRanges reports whether r lies inside one of merged (sorted, joined).
func inRanges(merged []PortRange, r PortRange) bool {
	for _, m := range merged {
		if r.From >= m.From && r.To <= m.To {
			return true
		}
	}
	return false
}
