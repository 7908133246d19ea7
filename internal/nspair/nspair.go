// Package nspair builds the isolated network every privileged part of
// xdpban is exercised in (tests, make bench, make demo): a protected host
// and an attacker, each in a network namespace of its own, joined by one
// veth pair and nothing else. The veth is created inside the host
// namespace with its peer moved straight into the attacker's, so no
// interface of the pair ever exists in the root namespace, and neither
// namespace gets a default route: no packet can reach a real network.
//
// Names carry the owner's pid ("<prefix><pid>-<random>-<role>"), so a
// later run can remove what a run killed with SIGKILL left behind
// (Sweep) without touching what a live run beside it owns.
package nspair

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// Documentation addresses of the pair (RFC 5737 / RFC 3849).
var (
	HostV4     = netip.MustParseAddr("192.0.2.1")
	AttackerV4 = netip.MustParseAddr("192.0.2.2")
	HostV6     = netip.MustParseAddr("2001:db8::1")
	AttackerV6 = netip.MustParseAddr("2001:db8::2")
)

// Config names a pair. Only Prefix is required.
type Config struct {
	// Prefix starts both namespace names, "<Prefix><ID>-<role>"; Sweep
	// finds a dead owner's namespaces by it.
	Prefix string
	// IfPrefix starts both veth ends' names, "<IfPrefix><random><r>"
	// with the ID's random part and r the role's first letter; at most 8
	// bytes (IFNAMSIZ).
	IfPrefix string
	// HostRole and AttackerRole end the namespace names; "host" and
	// "attacker" when empty.
	HostRole, AttackerRole string
	// ID is "<pid>-<random>" from NewID, for a caller that names other
	// things of the run (pin dirs, scratch dirs) alike; NewID when empty.
	ID string
}

// Pair is a protected host and an attacker joined by a veth pair.
type Pair struct {
	Host, Attacker *NS
	// HostIf is the host's end of the veth (where XDP is attached),
	// AttackerIf the attacker's.
	HostIf, AttackerIf string
	// ID is the pair's "<pid>-<random>".
	ID string
}

// New creates the two namespaces and the veth pair between them, with
// HostV4/HostV6 on the host end and AttackerV4/AttackerV6 on the attacker
// end, static neighbour entries (so a ban on the attacker cannot starve
// ARP/ND and stop its packets from being sent at all), and rp_filter off
// on the host (so extra attacker sources from other ranges arrive). On
// error whatever it made is deleted again; otherwise the caller owns the
// pair and must Close it.
func New(c Config) (p *Pair, err error) {
	if c.Prefix == "" {
		return nil, errors.New("nspair: config without a name prefix: Sweep could not find a killed run's namespaces")
	}
	if len(c.IfPrefix) > 8 {
		return nil, fmt.Errorf("nspair: interface prefix %q is longer than 8 bytes: the veth names would pass IFNAMSIZ", c.IfPrefix)
	}
	if c.HostRole == "" {
		c.HostRole = "host"
	}
	if c.AttackerRole == "" {
		c.AttackerRole = "attacker"
	}
	if c.ID == "" {
		c.ID = NewID()
	}
	// The veth names share the namespaces' random part, so one can be
	// told from the other's name; a caller's own ID may not have one.
	_, short, _ := strings.Cut(c.ID, "-")
	if len(short) != 6 {
		short = randomHex()
	}
	p = &Pair{
		ID:         c.ID,
		HostIf:     c.IfPrefix + short + c.HostRole[:1],
		AttackerIf: c.IfPrefix + short + c.AttackerRole[:1],
	}
	defer func() {
		if err != nil {
			if cerr := p.Close(); cerr != nil {
				err = fmt.Errorf("%w (and undoing it: %v)", err, cerr)
			}
			p = nil
		}
	}()
	if p.Host, err = newNS(c.Prefix + c.ID + "-" + c.HostRole); err != nil {
		return p, err
	}
	if p.Attacker, err = newNS(c.Prefix + c.ID + "-" + c.AttackerRole); err != nil {
		return p, err
	}
	return p, p.AddVeth()
}

// Close deletes both namespaces, and with them the veth and every XDP
// link, netfilter rule and ipset inside. Safe to call twice.
func (p *Pair) Close() error {
	var errs []error
	for _, n := range []*NS{p.Attacker, p.Host} {
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	return errors.Join(errs...)
}

// DeleteVeth deletes the veth, as an operator rebuilding an interface
// does: whatever was attached to it is gone with it. AddVeth makes it
// again under the same names and addresses.
func (p *Pair) DeleteVeth() error {
	return ip("-n", p.Host.Name, "link", "del", p.HostIf)
}

// AddVeth makes the veth pair with both ends configured.
func (p *Pair) AddVeth() error {
	if err := ip("-n", p.Host.Name, "link", "add", p.HostIf, "type", "veth",
		"peer", "name", p.AttackerIf, "netns", p.Attacker.Name); err != nil {
		return err
	}
	for _, side := range []struct {
		ns     *NS
		dev    string
		v4, v6 netip.Addr
	}{{p.Host, p.HostIf, HostV4, HostV6}, {p.Attacker, p.AttackerIf, AttackerV4, AttackerV6}} {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"addr", "add", side.v4.String() + "/24", "dev", side.dev},
			{"addr", "add", side.v6.String() + "/64", "dev", side.dev, "nodad"},
			{"link", "set", side.dev, "up"},
		} {
			if err := ip(append([]string{"-n", side.ns.Name}, args...)...); err != nil {
				return err
			}
		}
	}
	// rp_filter is per namespace, but "all" and "default" are copied from
	// the root namespace's on creation, so each is set here.
	for _, k := range []string{"all", "default", p.HostIf} {
		if err := p.Host.sysctl("net/ipv4/conf/"+k+"/rp_filter", "0"); err != nil {
			return err
		}
	}
	hostMAC, err := p.Host.MAC(p.HostIf)
	if err != nil {
		return err
	}
	attMAC, err := p.Attacker.MAC(p.AttackerIf)
	if err != nil {
		return err
	}
	for _, n := range []struct {
		ns   *NS
		dev  string
		mac  net.HardwareAddr
		dsts []netip.Addr
	}{{p.Attacker, p.AttackerIf, hostMAC, []netip.Addr{HostV4, HostV6}}, {p.Host, p.HostIf, attMAC, []netip.Addr{AttackerV4, AttackerV6}}} {
		for _, a := range n.dsts {
			if err := ip("-n", n.ns.Name, "neigh", "replace", a.String(), "lladdr", n.mac.String(),
				"dev", n.dev, "nud", "permanent"); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddAttackerAddr gives the attacker another source address (any
// documentation range; the host still reaches it through the veth).
func (p *Pair) AddAttackerAddr(a netip.Addr) error {
	if !IsDocumentation(a) {
		return fmt.Errorf("attacker address %s is not a documentation address: use 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32", a)
	}
	bits, extra := 32, []string{}
	if a.Is6() {
		bits, extra = 128, []string{"nodad"}
	}
	return ip(append([]string{"-n", p.Attacker.Name, "addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", p.AttackerIf}, extra...)...)
}

var docRanges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// IsDocumentation reports whether a is in a range reserved for
// documentation, the only addresses the pair may carry.
func IsDocumentation(a netip.Addr) bool {
	for _, p := range docRanges {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// NewID is "<pid>-<random>": unique per run, even for several runs in
// one process, and read back by Stale.
func NewID() string { return fmt.Sprintf("%d-%s", os.Getpid(), randomHex()) }

func randomHex() string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
