package nftables

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
)

// kind is one set of the table: the bans of one address family and one
// prefix length, either of all traffic (a plain address set) or scoped to
// protocols and ports (a concatenation address . protocol . port).
//
// One set per prefix length is what lets bans nest as they do in XDP's LPM
// trie and in ipset's hash:net: the kernel refuses overlapping intervals
// in one set, and same-length prefixes never overlap, they are equal or
// disjoint.
type kind struct {
	v6     bool
	bits   int
	scoped bool
}

func kindOf(b bans.Ban) kind {
	return kind{v6: !b.Prefix.Addr().Is4(), bits: b.Prefix.Bits(), scoped: !b.Scope.All()}
}

// name is the set's name: all4_32, all6_64, port4_32, …
func (k kind) name() string {
	p := "all"
	if k.scoped {
		p = "port"
	}
	f := "4"
	if k.v6 {
		f = "6"
	}
	return p + f + "_" + strconv.Itoa(k.bits)
}

func parseKind(name string) (kind, bool) {
	var k kind
	rest, ok := strings.CutPrefix(name, "all")
	if !ok {
		if rest, ok = strings.CutPrefix(name, "port"); !ok {
			return kind{}, false
		}
		k.scoped = true
	}
	fam, bits, ok := strings.Cut(rest, "_")
	if !ok {
		return kind{}, false
	}
	switch fam {
	case "4":
	case "6":
		k.v6 = true
	default:
		return kind{}, false
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n < 1 || n > k.addrLen()*8 || strconv.Itoa(n) != bits {
		return kind{}, false
	}
	k.bits = n
	return k, true
}

func (k kind) addrLen() int {
	if k.v6 {
		return 16
	}
	return 4
}

// full: a single address, kept in a hash set without intervals.
func (k kind) full() bool { return !k.scoped && k.bits == k.addrLen()*8 }

// less orders the rules: the longest prefix first, as an LPM lookup
// would, so a packet inside nested bans counts for the narrowest one.
func (k kind) less(o kind) bool {
	if k.v6 != o.v6 {
		return !k.v6
	}
	if k.bits != o.bits {
		return k.bits > o.bits
	}
	return k.scoped && !o.scoped
}

func (k kind) set(t *nftables.Table, maxElem int) *nftables.Set {
	addr := nftables.TypeIPAddr
	if k.v6 {
		addr = nftables.TypeIP6Addr
	}
	s := &nftables.Set{
		Table:      t,
		Name:       k.name(),
		KeyType:    addr,
		HasTimeout: true,
		Counter:    true,
		Size:       uint32(maxElem),
	}
	switch {
	case k.scoped:
		s.KeyType = nftables.MustConcatSetType(addr, nftables.TypeInetProto, nftables.TypeInetService)
		s.Concatenation = true
		s.Interval = true
		// Each (protocol, port range) of a ban is one element.
		s.Size = uint32(maxElem) * 4
	case !k.full():
		s.Interval = true
		// An interval is a start and an end element.
		s.Size = uint32(maxElem) * 2
	}
	return s
}

// protoRange is one element's protocol and inclusive port range.
type protoRange struct {
	proto    byte
	from, to uint16
}

// portElems splits a scope into disjoint (protocol, port range) pieces,
// sorted: the kernel refuses overlapping elements, and a jail's port list
// may overlap ("22,20:30").
func portElems(s bans.Scope) []protoRange {
	var protos []byte
	switch s.Proto {
	case "tcp":
		protos = []byte{unix.IPPROTO_TCP}
	case "udp":
		protos = []byte{unix.IPPROTO_UDP}
	default:
		protos = []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP}
	}
	rs := slices.Clone(s.Ports)
	if len(rs) == 0 {
		rs = []bans.PortRange{{From: 0, To: 65535}}
	}
	slices.SortFunc(rs, func(a, b bans.PortRange) int { return int(a.From) - int(b.From) })
	var merged []bans.PortRange
	for _, r := range rs {
		if n := len(merged); n > 0 && uint32(r.From) <= uint32(merged[n-1].To)+1 {
			merged[n-1].To = max(merged[n-1].To, r.To)
			continue
		}
		merged = append(merged, r)
	}
	var out []protoRange
	for _, p := range protos {
		for _, r := range merged {
			out = append(out, protoRange{p, r.From, r.To})
		}
	}
	return out
}

// scopeOf is portElems' inverse: the scope the elements of one ban
// enforce, in canonical form (ranges merged and sorted).
func scopeOf(prs []protoRange) bans.Scope {
	by := map[byte][]bans.PortRange{}
	for _, pr := range prs {
		by[pr.proto] = append(by[pr.proto], bans.PortRange{From: pr.from, To: pr.to})
	}
	norm := func(rs []bans.PortRange) []bans.PortRange {
		slices.SortFunc(rs, func(a, b bans.PortRange) int { return int(a.From) - int(b.From) })
		if len(rs) == 1 && rs[0].From == 0 && rs[0].To == 65535 {
			return nil
		}
		return rs
	}
	tcp, hasTCP := by[unix.IPPROTO_TCP]
	udp, hasUDP := by[unix.IPPROTO_UDP]
	tcp, udp = norm(tcp), norm(udp)
	switch {
	case hasTCP && hasUDP && slices.Equal(tcp, udp):
		if len(tcp) == 0 {
			// tcp and udp on every port: still not ICMP, so not "all".
			return bans.Scope{Proto: "all", Ports: []bans.PortRange{{From: 0, To: 65535}}}
		}
		return bans.Scope{Proto: "all", Ports: tcp}
	case hasUDP && !hasTCP:
		return bans.Scope{Proto: "udp", Ports: udp}
	default:
		// tcp, or a damaged mix: report what protects the most common case.
		return bans.Scope{Proto: "tcp", Ports: tcp}
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) []byte {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}

// next returns a+1 and false when a is the highest address.
func next(a []byte) ([]byte, bool) {
	n := slices.Clone(a)
	for i := len(n) - 1; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return n, true
		}
	}
	return nil, false
}

// elems renders the kernel elements of a ban in set k, with the comment
// and timeout given (both empty for a delete).
func (k kind) elems(b bans.Ban, comment string, timeoutMs int64) []nftables.SetElement {
	first := b.Prefix.Addr().AsSlice()
	to := msDuration(timeoutMs)
	switch {
	case k.full():
		return []nftables.SetElement{{Key: first, Timeout: to, Comment: comment}}
	case !k.scoped:
		// An interval is a start element and an end element one past the
		// last address; at the top of the address space there is no end,
		// and the start alone covers the rest.
		out := []nftables.SetElement{{Key: first, Timeout: to, Comment: comment}}
		if end, ok := next(lastAddr(b.Prefix)); ok {
			out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
		}
		return out
	}
	last := lastAddr(b.Prefix)
	var out []nftables.SetElement
	for _, pr := range portElems(b.Scope) {
		out = append(out, nftables.SetElement{
			Key:     concatKey(first, pr.proto, pr.from),
			KeyEnd:  concatKey(last, pr.proto, pr.to),
			Timeout: to,
			Comment: comment,
		})
	}
	return out
}

// concatKey lays out address . inet_proto . inet_service as the kernel
// keeps a concatenation: each field padded to a 4-byte register.
func concatKey(addr []byte, proto byte, port uint16) []byte {
	k := make([]byte, 0, len(addr)+8)
	k = append(k, addr...)
	k = append(k, proto, 0, 0, 0)
	k = binary.BigEndian.AppendUint16(k, port)
	return append(k, 0, 0)
}

// parseElem reads one (non-end) element of set k back: the ban's prefix
// and, for a scoped set, its protocol and port range.
func (k kind) parseElem(e nftables.SetElement) (netip.Prefix, protoRange, error) {
	n := k.addrLen()
	if len(e.Key) < n {
		return netip.Prefix{}, protoRange{}, fmt.Errorf("set %s: element key of %d bytes, want at least %d", k.name(), len(e.Key), n)
	}
	a, _ := netip.AddrFromSlice(e.Key[:n])
	p := netip.PrefixFrom(a, k.bits)
	if !k.scoped {
		return p, protoRange{}, nil
	}
	if len(e.Key) != n+8 || len(e.KeyEnd) != n+8 {
		return netip.Prefix{}, protoRange{}, fmt.Errorf("set %s: element key of %d/%d bytes, want %d", k.name(), len(e.Key), len(e.KeyEnd), n+8)
	}
	pr := protoRange{
		proto: e.Key[n],
		from:  binary.BigEndian.Uint16(e.Key[n+4:]),
		to:    binary.BigEndian.Uint16(e.KeyEnd[n+4:]),
	}
	return p, pr, nil
}
