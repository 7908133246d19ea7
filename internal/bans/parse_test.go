package bans

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		w    Widen
		want string
		err  string
	}{
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: " 192.0.2.7\n", want: "192.0.2.7/32"},
		{in: "::ffff:192.0.2.7", want: "192.0.2.7/32"},
		{in: "2001:db8::7", want: "2001:db8::/64"},
		{in: "2001:db8::7", w: Widen{IPv6: 128}, want: "2001:db8::7/128"},
		{in: "2001:db8:1:2:3::7", w: Widen{IPv6: 48}, want: "2001:db8:1::/48"},
		{in: "198.51.100.77/24", want: "198.51.100.0/24"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "2001:db8::1/128", want: "2001:db8::/64"},
		{in: "::ffff:198.51.100.0/120", want: "198.51.100.0/24"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "300.1.2.3", err: `invalid address "300.1.2.3"`},
		{in: "10.0.0.0/33", err: `invalid CIDR "10.0.0.0/33"`},
		{in: "fe80::1%eth0", err: "zone"},
		{in: "", err: "empty address"},
		{in: "example.com", err: `invalid address "example.com"`},
	}
	for _, tc := range tests {
		got, err := tc.w.Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) err = %v, want containing %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("Parse(%q) error spans lines: %q", tc.in, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestValidateIPv6Prefix(t *testing.T) {
	for n, ok := range map[int]bool{47: false, 48: true, 64: true, 128: true, 129: false} {
		if err := ValidateIPv6Prefix(n); (err == nil) != ok {
			t.Errorf("ValidateIPv6Prefix(%d) = %v", n, err)
		}
	}
}

func TestBanTimes(t *testing.T) {
	now := time.Now()
	perm := Ban{}
	if !perm.Permanent() || perm.Expired(now) || perm.Remaining(now) != 0 {
		t.Errorf("permanent ban: %+v", perm)
	}
	b := Ban{Expires: now.Add(time.Minute)}
	if b.Expired(now) || b.Remaining(now) != time.Minute {
		t.Errorf("minute ban at now: expired=%v remaining=%v", b.Expired(now), b.Remaining(now))
	}
	if !b.Expired(now.Add(time.Minute)) || b.Remaining(now.Add(2*time.Minute)) != 0 {
		t.Errorf("minute ban not expired after a minute")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "2001:db8::1/64", "::ffff:1.2.3.4", "1.2.3.4/33", "fe80::1%lo"} {
		f.Add(s, 64)
	}
	f.Fuzz(func(t *testing.T, s string, v6 int) {
		if ValidateIPv6Prefix(v6) != nil {
			v6 = 64
		}
		w := Widen{IPv6: v6}
		p, err := w.Parse(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("Parse(%q) = %v: not canonical", s, p)
		}
		if p.Addr().Is6() && p.Bits() > v6 {
			t.Fatalf("Parse(%q) = %v: narrower than /%d", s, p, v6)
		}
		// Canonical output parses back to itself.
		if q, err := w.Parse(p.String()); err != nil || q != p {
			t.Fatalf("round trip %v -> %v, %v", p, q, err)
		}
	})
}
