package bans

import "testing"

func TestScopeStringRoundTrip(t *testing.T) {
	for _, c := range []struct{ proto, ports, want string }{
		{"all", "", "all"},
		{"tcp", "", "tcp"},
		{"tcp", "ssh", "tcp/22"},
		{"all", "http,https", "all/80,443"},
		{"udp", "1000:2000,53", "udp/1000:2000,53"},
	} {
		s, err := ParseScope(c.proto, c.ports)
		if err != nil {
			t.Fatalf("ParseScope(%q, %q): %v", c.proto, c.ports, err)
		}
		if got := s.String(); got != c.want {
			t.Errorf("ParseScope(%q, %q).String() = %q, want %q", c.proto, c.ports, got, c.want)
		}
		back, err := ParseScopeString(s.String())
		if err != nil || back.String() != s.String() {
			t.Errorf("ParseScopeString(%q) = %v, %v", s.String(), back, err)
		}
	}
	if _, err := ParseScopeString("icmp/1"); err == nil {
		t.Error(`ParseScopeString("icmp/1") accepted`)
	}
}

func TestScopeMatches(t *testing.T) {
	ssh, _ := ParseScope("tcp", "22")
	both, _ := ParseScope("all", "22,8000:8080")
	for _, c := range []struct {
		s     Scope
		proto string
		port  uint16
		want  bool
	}{
		{Scope{}, "icmp", 0, true},
		{Scope{}, "tcp", 8080, true},
		{ssh, "tcp", 22, true},
		{ssh, "tcp", 8080, false},
		{ssh, "udp", 22, false},
		{ssh, "icmp", 0, false},
		{both, "udp", 8001, true},
		{both, "tcp", 22, true},
		{both, "icmp", 0, false},
		{both, "tcp", 8081, false},
	} {
		if got := c.s.Matches(c.proto, c.port); got != c.want {
			t.Errorf("%v.Matches(%s, %d) = %v, want %v", c.s, c.proto, c.port, got, c.want)
		}
	}
}
