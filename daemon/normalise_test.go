package daemon

import (
	"net/netip"
	"testing"

	"github.com/xdpban/xdpban/internal/bans"
)

func TestNormalised(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.0.0.0/4", "normalised from 10.0.0.0/4: host bits cleared"},
		{"10.1.2.3/8", "normalised from 10.1.2.3/8: host bits cleared"},
		{" 10.0.0.0/8 ", ""},
		{"192.0.2.7", ""},
		{"192.0.2.7/32", ""},
		{"::ffff:192.0.2.7", "normalised from ::ffff:192.0.2.7: IPv4-mapped, banned as IPv4"},
		{"::ffff:10.1.0.0/104", "normalised from ::ffff:10.1.0.0/104: IPv4-mapped, banned as IPv4, host bits cleared"},
		{"2001:db8::7", "normalised from 2001:db8::7: widened to /64"},
		{"2001:db8::1/128", "normalised from 2001:db8::1/128: widened to /64"},
		{"2001:db8::/48", ""},
		{"2001:db8::1/48", "normalised from 2001:db8::1/48: host bits cleared"},
	} {
		p, err := bans.Widen{}.Parse(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := Normalised(c.in, p); got != c.want {
			t.Errorf("Normalised(%q, %s) = %q, want %q", c.in, p, got, c.want)
		}
	}
	// Narrowed around a protected neighbour.
	if got := Normalised("2001:db8::7", netip.MustParsePrefix("2001:db8::/126")); got != "normalised from 2001:db8::7: widened to /126" {
		t.Errorf("narrowed /64: %q", got)
	}
}
