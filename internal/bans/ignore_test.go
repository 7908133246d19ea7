package bans

import (
	"net/netip"
	"testing"

	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestIgnoreList(t *testing.T) {
	l, err := NewIgnoreList([]netip.Prefix{
		pfx("198.51.100.0/24"), pfx("2001:db8:1::/48"), pfx("::ffff:203.0.113.0/120"),
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a    string
		want bool
	}{
		{"198.51.100.77", true},
		{"198.51.101.1", false},
		{"2001:db8:1:ffff::1", true},
		{"2001:db8:2::1", false},
		{"203.0.113.9", true},
		{"::ffff:198.51.100.1", true},
		{"127.0.0.1", true},
		{"127.200.0.1", true},
		{"::1", true},
		{"192.0.2.1", false},
		// Never a connection's source: a forged or garbled log line.
		{"0.0.0.0", true},
		{"::", true},
		{"::ffff:0.0.0.0", true},
		{"255.255.255.255", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"223.255.255.255", false},
		{"240.0.0.1", false},
	} {
		if got := l.Ignored(netip.MustParseAddr(c.a)); got != c.want {
			t.Errorf("Ignored(%s) = %v, want %v", c.a, got, c.want)
		}
	}
}

// TestIgnoreSelf reads the interface addresses of a namespace holding
// 192.0.2.1 and 2001:db8::1 (the harness's host side).
func TestIgnoreSelf(t *testing.T) {
	nspairtest.Require(t)
	p := nspairtest.New(t)
	var self, noSelf *IgnoreList
	err := p.Host.Do(func() (err error) {
		if self, err = NewIgnoreList(nil, true); err != nil {
			return err
		}
		noSelf, err = NewIgnoreList(nil, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"192.0.2.1", "2001:db8::1"} {
		if !self.Ignored(netip.MustParseAddr(a)) {
			t.Errorf("ignoreself: own address %s not ignored (list %v)", a, self.Prefixes())
		}
		if noSelf.Ignored(netip.MustParseAddr(a)) {
			t.Errorf("without ignoreself %s is ignored", a)
		}
	}
	if self.Ignored(netip.MustParseAddr("192.0.2.2")) {
		t.Error("ignoreself ignored the attacker's address")
	}
}

// TestNarrowNeverCoversIgnored: the /64 of an attacker must not cut off an
// ignoreip neighbour or the host's own address; the ban is the widest
// prefix that holds the attacker and none of them.
func TestNarrowNeverCoversIgnored(t *testing.T) {
	l, err := NewIgnoreList([]netip.Prefix{pfx("2001:db8::3/128"), pfx("2001:db8:7:0:8000::/65"), pfx("198.51.100.0/24")}, false)
	if err != nil {
		t.Fatal(err)
	}
	var w Widen
	for _, c := range []struct{ addr, want, blocker string }{
		{"2001:db8::2", "2001:db8::2/128", "2001:db8::3/128"},                  // ::3's only neighbour in its /127
		{"2001:db8::4", "2001:db8::4/126", "2001:db8::3/128"},                  // widest prefix without ::3
		{"2001:db8::8000:0:0:1", "2001:db8::8000:0:0:0/65", "2001:db8::3/128"}, // the other half of the /64
		{"2001:db8:7::1", "2001:db8:7::/65", "2001:db8:7:0:8000::/65"},         // an ignored half
		{"2001:db8:9::1", "2001:db8:9::/64", ""},                               // nothing to avoid
		{"192.0.2.1", "192.0.2.1/32", ""},
	} {
		a := netip.MustParseAddr(c.addr)
		got, b := l.Narrow(w.Addr(a), a)
		if got != pfx(c.want) {
			t.Errorf("Narrow(%s) = %s, want %s", c.addr, got, c.want)
		}
		if !got.Contains(a) {
			t.Errorf("Narrow(%s) = %s does not hold the address", c.addr, got)
		}
		if _, why, hit := l.Overlap(got); hit {
			t.Errorf("Narrow(%s) = %s still covers an ignored address (%s)", c.addr, got, why)
		}
		if (c.blocker == "") != !b.IsValid() || (b.IsValid() && b != pfx(c.blocker)) {
			t.Errorf("Narrow(%s) blocker = %v, want %q", c.addr, b, c.blocker)
		}
	}
}

func TestOverlapSaysWhy(t *testing.T) {
	l, err := NewIgnoreList([]netip.Prefix{pfx("198.51.100.0/24")}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ p, why string }{
		{"198.51.0.0/16", "in ignoreip"},
		{"198.51.100.7/32", "in ignoreip"},
		{"127.0.0.0/16", "loopback"},
		{"::1/128", "loopback"},
		{"192.0.2.0/24", ""},
	} {
		_, why, hit := l.Overlap(pfx(c.p))
		if why != c.why || hit != (c.why != "") {
			t.Errorf("Overlap(%s) = %q, %v; want %q", c.p, why, hit, c.why)
		}
	}
}

// FuzzNarrow: whatever the ignore list and the address, the narrowed ban
// holds the address, is no wider than asked, and covers nothing ignored.
func FuzzNarrow(f *testing.F) {
	f.Add("2001:db8::2", "2001:db8::3/128", 64)
	f.Add("2001:db8::1", "2001:db8::/56", 48)
	f.Add("192.0.2.9", "192.0.2.0/24", 32)
	f.Fuzz(func(t *testing.T, addr, ign string, bits int) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		p, err := netip.ParsePrefix(ign)
		if err != nil {
			return
		}
		l, err := NewIgnoreList([]netip.Prefix{p}, false)
		if err != nil || l.Ignored(a) {
			return
		}
		a = a.Unmap().WithZone("")
		w := Widen{IPv6: 48 + (bits%81+81)%81}
		wide := w.Addr(a)
		got, _ := l.Narrow(wide, a)
		if !got.Contains(a) || got.Bits() < wide.Bits() {
			t.Fatalf("Narrow(%s, %s) = %s: must hold the address and be no wider", wide, a, got)
		}
		if q, _, hit := l.Overlap(got); hit {
			t.Fatalf("Narrow(%s, %s) = %s covers ignored %s", wide, a, got, q)
		}
	})
}
