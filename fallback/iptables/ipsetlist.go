package iptables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ipsetList is a set dump. netlink v1.3.1's IpsetList prints every
// attribute it does not know (bucketsize, initval: every hash set on a
// current kernel) through the standard logger on every call, which would
// flood the daemon log at each sweep and status; and it parses through a
// goroutine per message. This reads only what the backend needs.
type ipsetList struct {
	typeName   string
	family     uint8
	maxElem    uint32
	hasTimeout bool
	entries    []ipsetElem
}

type ipsetElem struct {
	prefix         netip.Prefix
	timeout        uint32
	packets, bytes uint64
	comment        string
}

const (
	nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
	attrBytes   = nl.IPSET_ATTR_BYTES
	attrPackets = nl.IPSET_ATTR_PACKETS
	attrComment = nl.IPSET_ATTR_COMMENT
)

func openIpsetSocket(ns netns.NsHandle) (*nl.SocketHandle, error) {
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
	}
	return &nl.SocketHandle{Socket: s}, nil
}

func listIpset(sock *nl.SocketHandle, name string) (*ipsetList, error) {
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{
			Len:   uint32(unix.SizeofNlMsghdr),
			Type:  uint16(nl.IPSET_CMD_LIST | unix.NFNL_SUBSYS_IPSET<<8),
			Flags: uint16(nl.GetIpsetFlags(nl.IPSET_CMD_LIST)),
		},
		Sockets: map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: sock},
	}
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(name)))
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && errno >= nl.IPSET_ERR_PRIVATE {
			err = nl.IPSetError(uintptr(errno))
		}
		return nil, err
	}
	out := &ipsetList{}
	for _, m := range msgs {
		if len(m) < 4 {
			continue
		}
		if err := out.parse(m[4:]); err != nil {
			return nil, fmt.Errorf("ipset %s: %w", name, err)
		}
	}
	return out, nil
}

type attr struct {
	typ uint16
	val []byte
}

// attrs splits netlink attributes; a truncated one is an error rather
// than a silent stop so a damaged dump cannot look like an empty set.
func attrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:])
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("netlink attribute %d: bad length %d", t&nlaTypeMask, l)
		}
		out = append(out, attr{t & nlaTypeMask, b[4:l]})
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return out, nil
}

func (s *ipsetList) parse(b []byte) error {
	top, err := attrs(b)
	if err != nil {
		return err
	}
	for _, a := range top {
		switch a.typ {
		case nl.IPSET_ATTR_TYPENAME:
			s.typeName = cstr(a.val)
		case nl.IPSET_ATTR_FAMILY:
			if len(a.val) > 0 {
				s.family = a.val[0]
			}
		case nl.IPSET_ATTR_DATA:
			hdr, err := attrs(a.val)
			if err != nil {
				return err
			}
			for _, h := range hdr {
				switch h.typ {
				case nl.IPSET_ATTR_MAXELEM:
					if len(h.val) == 4 {
						s.maxElem = binary.BigEndian.Uint32(h.val)
					}
				case nl.IPSET_ATTR_TIMEOUT:
					s.hasTimeout = true
				}
			}
		case nl.IPSET_ATTR_ADT:
			elems, err := attrs(a.val)
			if err != nil {
				return err
			}
			for _, e := range elems {
				if e.typ != nl.IPSET_ATTR_DATA {
					continue
				}
				el, err := parseElem(e.val)
				if err != nil {
					return err
				}
				s.entries = append(s.entries, el)
			}
		}
	}
	return nil
}

func parseElem(b []byte) (ipsetElem, error) {
	as, err := attrs(b)
	if err != nil {
		return ipsetElem{}, err
	}
	var el ipsetElem
	var addr netip.Addr
	cidr := -1
	for _, a := range as {
		switch a.typ {
		case nl.IPSET_ATTR_IP:
			inner, err := attrs(a.val)
			if err != nil {
				return ipsetElem{}, err
			}
			for _, i := range inner {
				if x, ok := netip.AddrFromSlice(i.val); ok {
					addr = x
				}
			}
		case nl.IPSET_ATTR_CIDR:
			if len(a.val) > 0 {
				cidr = int(a.val[0])
			}
		case nl.IPSET_ATTR_TIMEOUT:
			if len(a.val) == 4 {
				el.timeout = binary.BigEndian.Uint32(a.val)
			}
		case attrPackets:
			if len(a.val) == 8 {
				el.packets = binary.BigEndian.Uint64(a.val)
			}
		case attrBytes:
			if len(a.val) == 8 {
				el.bytes = binary.BigEndian.Uint64(a.val)
			}
		case attrComment:
			el.comment = cstr(a.val)
		}
	}
	if !addr.IsValid() {
		return ipsetElem{}, errors.New("element without an address")
	}
	if cidr < 0 {
		cidr = addr.BitLen()
	}
	p, err := addr.Prefix(cidr)
	if err != nil {
		return ipsetElem{}, fmt.Errorf("element %s/%d: %w", addr, cidr, err)
	}
	el.prefix = p
	return el, nil
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
