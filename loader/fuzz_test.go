package loader

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// refVerdict is a plain-Go model of the program's parser: which counter a
// frame must land in and, for IP frames, the source address.
func refVerdict(b []byte) (counter string, src netip.Addr) {
	if len(b) < 14 {
		return "malformed", src
	}
	proto := binary.BigEndian.Uint16(b[12:])
	off := 14
	for i := 0; i < 2 && (proto == eth8021Q || proto == eth8021AD); i++ {
		if off+4 > len(b) {
			return "malformed", src
		}
		proto = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	switch proto {
	case ethIPv4:
		if off+20 > len(b) {
			return "malformed", src
		}
		ihl := int(b[off] & 0xf)
		if b[off]>>4 != 4 || ihl < 5 || off+ihl*4 > len(b) {
			return "malformed", src
		}
		return "", netip.AddrFrom4([4]byte(b[off+12 : off+16]))
	case ethIPv6:
		if off+40 > len(b) {
			return "malformed", src
		}
		if b[off]>>4 != 6 {
			return "malformed", src
		}
		return "", netip.AddrFrom16([16]byte(b[off+8 : off+24]))
	}
	return "not_ip", src
}

// FuzzFrame checks the XDP program against refVerdict on arbitrary
// frames: same counter, and a drop exactly when a live ban covers the
// source.
func FuzzFrame(f *testing.F) {
	for _, s := range [][]byte{
		udp4(addr("192.0.2.66")), udp6(addr("2001:db8:0:1::5")), arp(),
		cat(eth(eth8021AD), tag(100, eth8021Q), tag(10, ethIPv4), ipv4(addr("198.51.100.7"), hostV4, 6, make([]byte, 20))),
	} {
		f.Add(s)
	}
	x := loadDetached(f, Options{})
	live := []string{"192.0.2.66", "2001:db8:0:1::/64", "198.51.100.0/24", "2001:db8:100::/48"}
	for _, s := range live {
		mustAdd(f, x, ban(s, "fuzz", time.Hour))
	}
	mustAdd(f, x, ban("192.0.2.99", "fuzz", -time.Second), ban("2001:db8:0:9::/64", "fuzz", -time.Second))
	expired := []netip.Prefix{pfx("192.0.2.99"), pfx("2001:db8:0:9::/64")}

	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 4000 {
			t.Skip("BPF_PROG_TEST_RUN takes 14..~4000 byte frames")
		}
		want, src := refVerdict(frame)
		if want == "" {
			want = "passed"
			for _, s := range live {
				if pfx(s).Contains(src) {
					want = "dropped"
				}
			}
			if want == "passed" {
				for _, p := range expired {
					if p.Contains(src) {
						want = "expired_pass"
					}
				}
			}
		}
		before := counters(t, x)
		got := run(t, x, frame)
		after := counters(t, x)
		for name, v := range after {
			d := v - before[name]
			if name == "dropped_bytes" {
				if (want == "dropped") != (d == uint64(len(frame))) && !(want != "dropped" && d == 0) {
					t.Fatalf("counter dropped_bytes moved by %d for a %d-byte frame, model says %s (src %v)", d, len(frame), want, src)
				}
				continue
			}
			if (name == want && d != 1) || (name != want && d != 0) {
				t.Fatalf("counter %s moved by %d, model says %s (src %v)", name, d, want, src)
			}
		}
		if wantV := uint32(xdpPass); want == "dropped" && got != xdpDrop || want != "dropped" && got != wantV {
			t.Fatalf("verdict %d, model says %s (src %v)", got, want, src)
		}
	})
}

// FuzzDecodeEvent: ring buffer records are decoded without trusting
// them: any bytes give an event or an error, never a panic, and a
// decoded event has addresses of the family the record names.
func FuzzDecodeEvent(f *testing.F) {
	rec := make([]byte, 72)
	binary.LittleEndian.PutUint64(rec[0:], 12345)
	rec[16], rec[17], rec[18], rec[19] = 192, 0, 2, 2
	rec[56], rec[57] = 4, 6
	f.Add(rec)
	rec6 := append([]byte(nil), rec...)
	rec6[56] = 6
	f.Add(rec6)
	f.Add(rec[:40])
	x := &XDP{} // no maps: jail names resolve to ""
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := x.decodeEvent(raw)
		if err != nil {
			return
		}
		if len(raw) < 72 {
			t.Fatalf("decoded a %d-byte record", len(raw))
		}
		switch raw[56] {
		case 4:
			if !ev.Src.Is4() || !ev.Dst.Is4() {
				t.Fatalf("family 4 record gave %v → %v", ev.Src, ev.Dst)
			}
		case 6:
			if !ev.Src.Is6() || !ev.Dst.Is6() {
				t.Fatalf("family 6 record gave %v → %v", ev.Src, ev.Dst)
			}
		default:
			t.Fatalf("family %d record decoded", raw[56])
		}
	})
}
