package fleet

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// Record is the value stored under a ban's key: everything a receiving
// host needs to enforce it without asking the sender anything.
type Record struct {
	Prefix netip.Prefix `json:"prefix"`
	Jail   string       `json:"jail"`
	// Scope is bans.Scope's text form ("all", "tcp/22,80"); empty is all.
	Scope bans.Scope `json:"scope"`
	// Expires is the absolute end (the receiver enforces it, whatever the
	// key's TTL, which is whole seconds and rounded up); zero: permanent.
	Expires time.Time `json:"expires,omitzero"`
	// Origin is the node that decided the ban.
	Origin string `json:"origin"`
	Reason string `json:"reason,omitempty"`
}

// RecordOf is the record of a ban decided on node.
func RecordOf(b bans.Ban, node, reason string) Record {
	return Record{Prefix: b.Prefix, Jail: b.Jail, Scope: b.Scope, Expires: b.Expires, Origin: node, Reason: reason}
}

// Ban is the ban a record asks for.
func (r Record) Ban() bans.Ban {
	return bans.Ban{Prefix: r.Prefix, Jail: r.Jail, Scope: r.Scope, Expires: r.Expires, Origin: r.Origin}
}

// Covers reports whether r lasts at least as long as o (a ban is never
// shortened by another copy).
func (r Record) Covers(o Record) bool {
	if r.Expires.IsZero() {
		return true
	}
	return !o.Expires.IsZero() && !r.Expires.Before(o.Expires)
}

func (r Record) encode() ([]byte, error) { return json.Marshal(r) }

// DecodeRecord reads a record and checks it names what its key names.
func DecodeRecord(key string, v []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("fleet record %s: %w", key, err)
	}
	p, err := PrefixOfKey(key)
	if err != nil {
		return r, err
	}
	if r.Prefix != p {
		return r, fmt.Errorf("fleet record %s names %s, not its key's prefix %s", key, r.Prefix, p)
	}
	if r.Origin == "" || r.Jail == "" {
		return r, fmt.Errorf("fleet record %s: no origin or jail", key)
	}
	return r, nil
}

// Key is the KV key of a prefix: family, address, length, as tokens
// ("v4.192-0-2-1.32", "v6.2001-db8--.64"). The KV charset has no ':' and
// '.' splits tokens, so both are written '-'; the canonical (masked,
// shortest) form makes the key of a prefix unique.
func Key(p netip.Prefix) string {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		// Dots in a key split it: an IPv4-mapped prefix is its IPv4 one.
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	p = p.Masked()
	a := p.Addr()
	if a.Is4() {
		return "v4." + strings.ReplaceAll(a.String(), ".", "-") + "." + strconv.Itoa(p.Bits())
	}
	return "v6." + strings.ReplaceAll(a.String(), ":", "-") + "." + strconv.Itoa(p.Bits())
}

// PrefixOfKey reverses Key.
func PrefixOfKey(k string) (netip.Prefix, error) {
	parts := strings.Split(k, ".")
	if len(parts) != 3 {
		return netip.Prefix{}, fmt.Errorf("fleet key %q: want FAMILY.ADDRESS.BITS", k)
	}
	var s string
	switch parts[0] {
	case "v4":
		s = strings.ReplaceAll(parts[1], "-", ".")
	case "v6":
		s = strings.ReplaceAll(parts[1], "-", ":")
	default:
		return netip.Prefix{}, fmt.Errorf("fleet key %q: family %q is not v4 or v6", k, parts[0])
	}
	a, err := netip.ParseAddr(s)
	if err != nil || (parts[0] == "v4") != a.Is4() || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("fleet key %q: bad address", k)
	}
	bits, err := strconv.Atoi(parts[2])
	if err != nil || bits < 0 || bits > a.BitLen() || strconv.Itoa(bits) != parts[2] {
		return netip.Prefix{}, fmt.Errorf("fleet key %q: bad prefix length", k)
	}
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p || Key(p) != k {
		return netip.Prefix{}, fmt.Errorf("fleet key %q: not canonical", k)
	}
	return p, nil
}
