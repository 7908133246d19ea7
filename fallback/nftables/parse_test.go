package nftables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

func TestKindNames(t *testing.T) {
	for _, k := range []kind{{bits: 32}, {bits: 1}, {v6: true, bits: 128}, {v6: true, bits: 64, scoped: true}, {bits: 24, scoped: true}} {
		got, ok := parseKind(k.name())
		if !ok || got != k {
			t.Errorf("parseKind(%q) = %+v, %v; want %+v", k.name(), got, ok, k)
		}
	}
	for _, bad := range []string{"", "all", "all4_", "all4_33", "all6_0", "port5_8", "all4_024", "all4_+8", "foreign"} {
		if k, ok := parseKind(bad); ok {
			t.Errorf("parseKind(%q) = %+v, want refusal", bad, k)
		}
	}
}

func TestPortElemsRoundTrip(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"tcp/22", "tcp/22"},
		{"tcp/22,20:30,443", "tcp/20:30,443"},
		{"udp/53", "udp/53"},
		{"all/22,80", "all/22,80"},
		{"tcp", "tcp"},
		{"tcp/1:2,3:4", "tcp/1:4"},
	} {
		sc, err := bans.ParseScopeString(c.in)
		if err != nil {
			t.Fatal(err)
		}
		got := scopeOf(portElems(sc))
		if got.String() != c.want {
			t.Errorf("%s through the kernel's elements = %s, want %s", c.in, got, c.want)
		}
		if !sameScope(sc, got) {
			t.Errorf("sameScope(%s, %s) = false", sc, got)
		}
	}
}

func TestElemsCoverThePrefix(t *testing.T) {
	k := kind{bits: 24}
	es := k.elems(bans.Ban{Prefix: netip.MustParsePrefix("198.51.100.0/24")}, "", 0)
	if len(es) != 2 || !slices.Equal(es[1].Key, []byte{198, 51, 101, 0}) || !es[1].IntervalEnd {
		t.Errorf("/24 elements = %+v, want start and end at 198.51.101.0", es)
	}
	// The top of the address space has no end element.
	es = k.elems(bans.Ban{Prefix: netip.MustParsePrefix("255.255.255.0/24")}, "", 0)
	if len(es) != 1 {
		t.Errorf("top /24 elements = %+v, want the start alone", es)
	}
	ks := kind{v6: true, bits: 64, scoped: true}
	es = ks.elems(bans.Ban{Prefix: netip.MustParsePrefix("2001:db8::/64"), Scope: bans.Scope{Proto: "udp", Ports: []bans.PortRange{{From: 53, To: 53}}}}, "c", 1000)
	if len(es) != 1 || len(es[0].Key) != 24 || es[0].Timeout != time.Second {
		t.Fatalf("scoped v6 element = %+v", es)
	}
	p, pr, err := ks.parseElem(es[0])
	if err != nil || p.String() != "2001:db8::/64" || pr != (protoRange{17, 53, 53}) {
		t.Errorf("parseElem = %v %+v %v", p, pr, err)
	}
}

func TestCommentRoundTrip(t *testing.T) {
	end := time.Unix(1796307369, 862401534)
	for _, c := range []struct {
		jail string
		exp  time.Time
	}{{"sshd", end}, {"a b\"c", time.Time{}}, {strings.Repeat("é", 300), end}} {
		j, e, ok, err := parseComment(formatComment(c.jail, c.exp))
		if !ok || err != nil || !e.Equal(c.exp) || !strings.HasPrefix(c.jail, j) || j == "" {
			t.Errorf("round trip of %q, %v = %q, %v, %v, %v", c.jail, c.exp, j, e, ok, err)
		}
	}
	if _, _, ok, _ := parseComment("admin's own"); ok {
		t.Error("a foreign comment read as ours")
	}
}

func FuzzParseComment(f *testing.F) {
	f.Add("xdpban jail=sshd exp=1796307369.862401534")
	f.Add("xdpban jail=a%20b exp=0")
	f.Add("xdpban jail=%zz exp=1")
	f.Add("xdpban exp=-1")
	f.Add("other")
	f.Fuzz(func(t *testing.T, c string) {
		j, e, ok, err := parseComment(c)
		if !ok || err != nil {
			return
		}
		// What parses writes back to something that parses the same.
		j2, e2, ok2, err2 := parseComment(formatComment(j, e))
		if !ok2 || err2 != nil || !e2.Equal(e) || (len(j) < 100 && j2 != j) {
			t.Fatalf("%q: %q %v -> %q %v %v %v", c, j, e, j2, e2, ok2, err2)
		}
	})
}
