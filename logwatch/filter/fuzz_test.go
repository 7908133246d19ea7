package filter

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzSSHDScan runs arbitrary lines through the shipped sshd filter. A
// line must never panic the scanner, and a failure's address must be
// written in the line itself: whatever an attacker puts in a log line,
// only an address that appears in it can be banned.
func FuzzSSHDScan(f *testing.F) {
	for _, s := range []string{
		"Nov 24 18:56:44 host sshd[4242]: Failed password for root from 192.0.2.7 port 22 ssh2",
		"Nov 24 18:56:44 host sshd[4242]: Invalid user x from 198.51.100.9 port 22 from 192.0.2.2 port 40000",
		"Nov 24 18:56:44 host sshd-session[1]: Connection closed by invalid user a 2001:db8::7 port 2 [preauth]",
		"2025-03-01T12:00:00.123456+01:00 host sshd[1]: Failed password for invalid user b from ::ffff:192.0.2.9 port 5 ssh2",
		"Nov 24 18:56:44 host sshd[4242]: error: maximum authentication attempts exceeded for root from 192.0.2.8 port 1 ssh2 [preauth]",
		"\x00\xff garbage", "",
	} {
		f.Add(s)
	}
	flt, err := Load(nil, "sshd[mode=aggressive]", nil)
	if err != nil {
		f.Fatal(err)
	}
	ref := time.Date(2026, 11, 24, 19, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) > 8192 {
			return
		}
		sc := flt.NewScanner()
		v, ms := sc.Scan(line, ref)
		if v != Fail {
			return
		}
		for _, m := range ms {
			if m.Host.IsValid() && !addrWritten(line, m.Host) {
				t.Fatalf("line %q: banned %s, which the line does not contain", line, m.Host)
			}
		}
	})
}

// addrWritten reports whether some run of address characters in line
// parses as a (after unmapping IPv4-mapped IPv6).
func addrWritten(line string, a netip.Addr) bool {
	isAddrByte := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.'
	}
	for i := 0; i < len(line); {
		if !isAddrByte(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && isAddrByte(line[j]) {
			j++
		}
		// A run may glue an address to neighbouring text ("::ffff:…",
		// "dead:beef::1."): try every piece of it that is short enough
		// to be an address (45 bytes at most).
		tok := line[i:j]
		for k := 0; k < len(tok); k++ {
			for e := min(len(tok), k+45); e > k; e-- {
				if p, err := netip.ParseAddr(tok[k:e]); err == nil && p.Unmap() == a {
					return true
				}
			}
		}
		i = j
	}
	return false
}

// FuzzDateFind runs arbitrary lines through the default date detector:
// no panic, and a date found is a real calendar time.
func FuzzDateFind(f *testing.F) {
	for _, s := range []string{
		"Nov 24 18:56:44 host sshd[1]: x", "2025-03-01T12:00:00.123456+01:00 host x",
		"[24/Nov/2026:18:56:44 +0100] GET /", "@4000000063a1b2c3d4e5f607 x", "1700000000.123 x",
		"Mon Nov 24 18:56:44 2026 x", "Feb 30 25:61:61 x", "",
	} {
		f.Add(s)
	}
	d, err := newDateDetector("")
	if err != nil {
		f.Fatal(err)
	}
	ref := time.Date(2026, 11, 24, 19, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) > 4096 {
			return
		}
		last := -1
		h, ok := d.find(line, ref, &last)
		if !ok {
			return
		}
		if y := h.time().Year(); y < 1970 || y > 10000 {
			t.Fatalf("line %q: date %v out of range", line, h.time())
		}
	})
}
