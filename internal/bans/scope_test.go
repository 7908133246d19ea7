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

func TestScopeCoversAndUnion(t *testing.T) {
	sc := func(s string) Scope {
		t.Helper()
		v, err := ParseScopeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		a, b   string
		covers bool   // a covers b
		union  string // Union(a, b)
	}{
		{"all", "tcp/22", true, "all"},
		{"tcp/22", "all", false, "all"},
		{"tcp/22", "tcp/22", true, "tcp/22"},
		{"tcp/20:30", "tcp/22", true, "tcp/20:30"},
		{"tcp/22", "tcp/80,443", false, "tcp/22,80,443"},
		{"tcp/22", "tcp/23", false, "tcp/22:23"},
		{"tcp", "tcp/22", true, "tcp"},
		{"tcp/22", "udp/22", false, "all/22"},
		{"tcp", "udp/53", false, "all"},
		{"all/22", "udp/22", true, "all/22"},
		{"udp/22", "all/22", false, "all/22"},
	} {
		a, b := sc(tc.a), sc(tc.b)
		if got := a.Covers(b); got != tc.covers {
			t.Errorf("%s covers %s = %v, want %v", tc.a, tc.b, got, tc.covers)
		}
		u := Union(a, b)
		if u.String() != tc.union {
			t.Errorf("Union(%s, %s) = %s, want %s", tc.a, tc.b, u, tc.union)
		}
		if !u.Covers(a) || !u.Covers(b) {
			t.Errorf("Union(%s, %s) = %s does not cover both", tc.a, tc.b, u)
		}
	}
}
