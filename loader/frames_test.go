package loader

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built frames for BPF_PROG_TEST_RUN. Checksums are left zero: the
// program never looks at them.

var (
	macHost = []byte{0x02, 0, 0, 0, 0, 1}
	macPeer = []byte{0x02, 0, 0, 0, 0, 2}
)

const (
	ethIPv4   = 0x0800
	ethIPv6   = 0x86dd
	ethARP    = 0x0806
	eth8021Q  = 0x8100
	eth8021AD = 0x88a8
)

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func eth(typ uint16) []byte {
	b := append(append([]byte{}, macHost...), macPeer...)
	return append(b, be16(typ)...)
}

// vlan appends a tag to a frame ending in its outer ethertype slot: tags
// are written outer first.
func tag(vid uint16, inner uint16) []byte {
	return append(be16(vid), be16(inner)...)
}

func udpPayload(n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 9)
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	return b
}

func ipv4(src, dst netip.Addr, proto byte, l4 []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, l4...)
}

func ipv6(src, dst netip.Addr, next byte, l4 []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6] = next
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, l4...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var (
	hostV4 = netip.MustParseAddr("192.0.2.1")
	hostV6 = netip.MustParseAddr("2001:db8::1")
)

// udp4 is an Ethernet/IPv4/UDP frame from src with a small payload.
func udp4(src netip.Addr) []byte {
	return cat(eth(ethIPv4), ipv4(src, hostV4, 17, udpPayload(18)))
}

func udp6(src netip.Addr) []byte {
	return cat(eth(ethIPv6), ipv6(src, hostV6, 17, udpPayload(18)))
}

func arp() []byte {
	b := eth(ethARP)
	body := make([]byte, 28)
	binary.BigEndian.PutUint16(body[0:], 1)
	binary.BigEndian.PutUint16(body[2:], ethIPv4)
	body[4], body[5] = 6, 4
	binary.BigEndian.PutUint16(body[6:], 1)
	return append(b, body...)
}

const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

func tcpHdr(dport uint16, flags byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], dport)
	h[12] = 5 << 4
	h[13] = flags
	return h
}

func tcp4(src netip.Addr, dport uint16, flags byte) []byte {
	return cat(eth(ethIPv4), ipv4(src, hostV4, 6, tcpHdr(dport, flags)))
}

func tcp6(src netip.Addr, dport uint16, flags byte) []byte {
	return cat(eth(ethIPv6), ipv6(src, hostV6, 6, tcpHdr(dport, flags)))
}

// ext6 is one IPv6 extension header: kind 0 (hop-by-hop), 60
// (destination options) or 44 (fragment, with offset in 8-byte units).
type ext6 struct {
	kind   byte
	offset uint16
}

// tcp6ext is tcp6 with extension headers between IPv6 and TCP.
func tcp6ext(src netip.Addr, dport uint16, flags byte, exts ...ext6) []byte {
	var chain []byte
	for i, e := range exts {
		next := byte(6)
		if i+1 < len(exts) {
			next = exts[i+1].kind
		}
		h := make([]byte, 8)
		h[0] = next
		if e.kind == 44 {
			binary.BigEndian.PutUint16(h[2:], e.offset<<3)
		}
		chain = append(chain, h...)
	}
	first := byte(6)
	if len(exts) > 0 {
		first = exts[0].kind
	}
	return cat(eth(ethIPv6), ipv6(src, hostV6, first, append(chain, tcpHdr(dport, flags)...)))
}
