// Package drops turns the XDP program's drop events into what an
// operator reads: one log line or one JSON object per event. It also fans
// events out to `xdpban watch` clients (Hub) without ever letting a slow
// reader hold up the daemon.
//
// The line format, stable for scripts and log shippers:
//
//	drop time=2026-11-24T17:00:00.123456789Z iface=veth0 src=192.0.2.2 dst=192.0.2.1 proto=tcp sport=40000 dport=22 len=60 flags=S jail=sshd suppressed=12
//
// Its keys, always in this order:
//
//   - time: when the packet was dropped, RFC 3339 with nanoseconds, UTC.
//   - iface: the interface it arrived on ("-" when unknown).
//   - src, dst: addresses, IPv4 never IPv4-mapped.
//   - proto: tcp, udp, icmp, icmpv6, sctp, gre, esp, ah, or the number.
//   - sport, dport: only for tcp, udp and sctp.
//   - len: the packet's length in bytes, as received.
//   - flags: only for tcp: the set flags among F S R P A U E C in that
//     order ("-" for none), e.g. S for a SYN, SA for a SYN-ACK.
//   - jail: the jail that banned the source ("-" for a manual ban).
//   - suppressed: drops of this source that the kernel's sampling (at
//     most drop_log_rate events per second per address, drop_log_global
//     in all) did not report since the previous event for it. An event
//     and its suppressed count together stand for 1+suppressed drops.
//
// Values that would break the key=value shape (spaces, quotes, control
// characters, '=') are written as Go-quoted strings.
//
// JSON (`xdpban watch --json`, the control socket's stream) uses the same
// keys: {"time","iface","src","dst","proto","sport","dport","len","flags",
// "jail","suppressed"}, sport/dport/flags left out where the line leaves
// them out.
package drops

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Event is one reported drop.
type Event struct {
	Time  time.Time
	Iface string
	Src   netip.Addr
	Dst   netip.Addr
	// Proto is the IP protocol number (IPv6: the upper-layer header).
	Proto        uint8
	SPort, DPort uint16
	Len          uint32
	// Flags are the TCP flags byte (FIN 0x01 … CWR 0x80).
	Flags      uint8
	Jail       string
	Suppressed uint64
}

// IP protocol numbers the format names.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoGRE    = 47
	ProtoESP    = 50
	ProtoAH     = 51
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

var protoNames = map[uint8]string{ProtoICMP: "icmp", ProtoTCP: "tcp", ProtoUDP: "udp", ProtoGRE: "gre",
	ProtoESP: "esp", ProtoAH: "ah", ProtoICMPv6: "icmpv6", ProtoSCTP: "sctp"}

// ProtoName is the protocol as written in the formats.
func ProtoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

func parseProto(s string) (uint8, error) {
	for p, n := range protoNames {
		if n == s {
			return p, nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("proto %q: want tcp, udp, icmp, icmpv6, sctp, gre, esp, ah or a number 0-255", s)
	}
	return uint8(n), nil
}

// HasPorts reports whether the protocol carries ports the format shows.
func HasPorts(p uint8) bool { return p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP }

const flagLetters = "FSRPAUEC" // bit 0 (FIN) to bit 7 (CWR)

// FlagString writes TCP flags as letters, "-" for none.
func FlagString(f uint8) string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for i := range 8 {
		if f&(1<<i) != 0 {
			b.WriteByte(flagLetters[i])
		}
	}
	return b.String()
}

func parseFlags(s string) (uint8, error) {
	if s == "-" || s == "" { // a bare - reaches here as ""
		return 0, nil
	}
	var f uint8
	for _, c := range s {
		i := strings.IndexRune(flagLetters, c)
		if i < 0 {
			return 0, fmt.Errorf("flags %q: want letters among %s, or - for none", s, flagLetters)
		}
		f |= 1 << i
	}
	return f, nil
}

// value writes s bare when it is safe in key=value, quoted otherwise.
func value(s string) string {
	if s == "" {
		return "-"
	}
	if s == "-" {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '=' || r == '\\' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.Unmap().String()
}

// Line is the event in the documented line format (no newline).
func (e Event) Line() string {
	b := make([]byte, 0, 160)
	return string(e.AppendLine(b))
}

// AppendLine appends the line form to b.
func (e Event) AppendLine(b []byte) []byte {
	b = append(b, "drop time="...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, " iface="...)
	b = append(b, value(e.Iface)...)
	b = append(b, " src="...)
	b = append(b, addrString(e.Src)...)
	b = append(b, " dst="...)
	b = append(b, addrString(e.Dst)...)
	b = append(b, " proto="...)
	b = append(b, ProtoName(e.Proto)...)
	if HasPorts(e.Proto) {
		b = append(b, " sport="...)
		b = strconv.AppendUint(b, uint64(e.SPort), 10)
		b = append(b, " dport="...)
		b = strconv.AppendUint(b, uint64(e.DPort), 10)
	}
	b = append(b, " len="...)
	b = strconv.AppendUint(b, uint64(e.Len), 10)
	if e.Proto == ProtoTCP {
		b = append(b, " flags="...)
		b = append(b, FlagString(e.Flags)...)
	}
	b = append(b, " jail="...)
	b = append(b, value(e.Jail)...)
	b = append(b, " suppressed="...)
	b = strconv.AppendUint(b, e.Suppressed, 10)
	return b
}

func (e Event) String() string { return e.Line() }

// jsonEvent is the JSON shape.
type jsonEvent struct {
	Time       time.Time `json:"time"`
	Iface      string    `json:"iface"`
	Src        string    `json:"src"`
	Dst        string    `json:"dst"`
	Proto      string    `json:"proto"`
	SPort      *uint16   `json:"sport,omitempty"`
	DPort      *uint16   `json:"dport,omitempty"`
	Len        uint32    `json:"len"`
	Flags      string    `json:"flags,omitempty"`
	Jail       string    `json:"jail"`
	Suppressed uint64    `json:"suppressed"`
}

// MarshalJSON writes the documented JSON object.
func (e Event) MarshalJSON() ([]byte, error) {
	j := jsonEvent{Time: e.Time.UTC(), Iface: e.Iface, Src: addrString(e.Src), Dst: addrString(e.Dst),
		Proto: ProtoName(e.Proto), Len: e.Len, Jail: e.Jail, Suppressed: e.Suppressed}
	if HasPorts(e.Proto) {
		j.SPort, j.DPort = &e.SPort, &e.DPort
	}
	if e.Proto == ProtoTCP {
		j.Flags = FlagString(e.Flags)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the documented JSON object.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j jsonEvent
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("drop event: %w", err)
	}
	var ev Event
	var err error
	ev.Time, ev.Iface, ev.Len, ev.Jail, ev.Suppressed = j.Time, j.Iface, j.Len, j.Jail, j.Suppressed
	if ev.Src, err = parseAddr("src", j.Src); err != nil {
		return err
	}
	if ev.Dst, err = parseAddr("dst", j.Dst); err != nil {
		return err
	}
	if ev.Proto, err = parseProto(j.Proto); err != nil {
		return fmt.Errorf("drop event: %w", err)
	}
	if j.SPort != nil {
		ev.SPort = *j.SPort
	}
	if j.DPort != nil {
		ev.DPort = *j.DPort
	}
	if j.Flags != "" {
		if ev.Flags, err = parseFlags(j.Flags); err != nil {
			return fmt.Errorf("drop event: %w", err)
		}
	}
	*e = ev
	return nil
}

func parseAddr(key, s string) (netip.Addr, error) {
	if s == "-" || s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("drop event: %s %q: want an IPv4 or IPv6 address", key, s)
	}
	return a.Unmap(), nil
}

// ErrNotDrop: the line is not a drop event (it does not start with "drop ").
var ErrNotDrop = errors.New("not a drop event line")

// ParseLine reads a line written by Line back into an event, e.g. to
// filter a log of them. Unknown keys are an error, so a format drift is
// noticed rather than half-read.
func ParseLine(line string) (Event, error) {
	rest, ok := strings.CutPrefix(line, "drop ")
	if !ok {
		return Event{}, fmt.Errorf("%w: %.40q", ErrNotDrop, line)
	}
	var ev Event
	seen := map[string]bool{}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.Contains(key, " ") {
			return Event{}, fmt.Errorf("drop event: %.40q is not key=value", rest)
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return Event{}, fmt.Errorf("drop event: %s: unterminated quoted value", key)
			}
			val, _ = strconv.Unquote(q)
			rest = after[len(q):]
			if rest != "" && rest[0] != ' ' {
				return Event{}, fmt.Errorf("drop event: %s: text after a quoted value", key)
			}
		} else {
			val, rest, _ = strings.Cut(after, " ")
			if val == "-" {
				val = ""
			}
		}
		if seen[key] {
			return Event{}, fmt.Errorf("drop event: %s appears twice", key)
		}
		seen[key] = true
		if err := ev.set(key, val); err != nil {
			return Event{}, err
		}
	}
	for _, k := range []string{"time", "src", "proto", "len"} {
		if !seen[k] {
			return Event{}, fmt.Errorf("drop event: %s is missing", k)
		}
	}
	return ev, nil
}

func (ev *Event) set(key, val string) error {
	var err error
	num := func(bits int) uint64 {
		var n uint64
		n, err = strconv.ParseUint(val, 10, bits)
		if err != nil {
			err = fmt.Errorf("drop event: %s %q: want a number below 2^%d", key, val, bits)
		}
		return n
	}
	switch key {
	case "time":
		ev.Time, err = time.Parse(time.RFC3339Nano, val)
		if y := ev.Time.UTC().Year(); err != nil || y < 1 || y > 9999 {
			return fmt.Errorf("drop event: time %q: want RFC 3339, e.g. 2026-11-24T17:00:00.5Z", val)
		}
	case "iface":
		ev.Iface = val
	case "src":
		ev.Src, err = parseAddr(key, val)
	case "dst":
		ev.Dst, err = parseAddr(key, val)
	case "proto":
		ev.Proto, err = parseProto(val)
		if err != nil {
			err = fmt.Errorf("drop event: %w", err)
		}
	case "sport":
		ev.SPort = uint16(num(16))
	case "dport":
		ev.DPort = uint16(num(16))
	case "len":
		ev.Len = uint32(num(32))
	case "flags":
		ev.Flags, err = parseFlags(val)
		if err != nil {
			err = fmt.Errorf("drop event: %w", err)
		}
	case "jail":
		ev.Jail = val
	case "suppressed":
		ev.Suppressed = num(64)
	default:
		return fmt.Errorf("drop event: unknown key %q", key)
	}
	return err
}
