package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
)

// protectedDaemon runs a daemon on a memory backend whose sshd jail
// ignores 198.51.100.0/24 and 2001:db8::3.
func protectedDaemon(t *testing.T) (*Daemon, *memBackend) {
	t.Helper()
	be := newMem()
	return startDaemon(t, testOptions(t, be, func(logf string) string {
		return "[sshd]\nenabled = true\nlogpath = " + logf + "\nignoreip = 198.51.100.0/24 2001:db8::3\n"
	})), be
}

// TestManualBanRefusesProtected: an operator's ban of an ignoreip
// address, the host's own or loopback, or of a prefix covering one, is
// refused with the reason, whole (nothing of the request is banned), at
// the check an import sends first too; --force bans it.
func TestManualBanRefusesProtected(t *testing.T) {
	d, be := protectedDaemon(t)
	ctx := context.Background()
	refused := []struct {
		items []control.BanItem
		want  string
	}{
		{[]control.BanItem{{Addr: "198.51.100.7"}}, "198.51.100.7: it is in ignoreip of jail sshd"},
		{[]control.BanItem{{Addr: "127.0.0.1"}}, "it is loopback"},
		{[]control.BanItem{{Addr: "::1"}}, "it is loopback"},
		{[]control.BanItem{{Addr: "198.51.0.0/16"}}, "it covers 198.51.100.0/24, which is in ignoreip of jail sshd"},
		{[]control.BanItem{{Addr: "2001:db8::/48"}}, "it covers 2001:db8::3/128"},
		{[]control.BanItem{{Addr: "192.0.2.9"}, {Addr: "198.51.100.7"}}, "item 2: refusing"},
	}
	if own, err := bans.SelfAddrs(); err == nil {
		for _, p := range own {
			if !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
				refused = append(refused, struct {
					items []control.BanItem
					want  string
				}{[]control.BanItem{{Addr: p.Addr().String()}}, "it is this host's own address"})
				break
			}
		}
	}
	for _, c := range refused {
		_, err := d.Ban(ctx, c.items)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("ban %v: err %v, want it refused with %q and a hint at --force", c.items, err, c.want)
		}
		if _, err := d.CheckBan(ctx, c.items, nil); err == nil {
			t.Errorf("check of %v passed: an import would go ahead", c.items)
		}
	}
	if n := len(be.m); n != 0 {
		t.Fatalf("refused requests banned %d prefixes: %v", n, be.m)
	}
	// A single address beside a protected one: banned, narrowed.
	bs, err := d.Ban(ctx, []control.BanItem{{Addr: "2001:db8::2"}})
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].Prefix != netip.MustParsePrefix("2001:db8::2/128") {
		t.Fatalf("ban of 2001:db8::2 is %s: want 2001:db8::2/128, which leaves ignoreip 2001:db8::3 reachable", bs[0].Prefix)
	}
	bs, err = d.Ban(ctx, []control.BanItem{{Addr: "198.51.100.7", Force: true}})
	if err != nil || bs[0].Prefix != netip.MustParsePrefix("198.51.100.7/32") {
		t.Fatalf("forced ban: %v %v", bs, err)
	}
}

// TestImportWholeOrNothing: an import is one request; a bad line, or one
// naming a protected address, bans nothing and says which line; a good
// one bans every line, narrowed like a single ban.
func TestImportWholeOrNothing(t *testing.T) {
	d, be := protectedDaemon(t)
	ctx := context.Background()
	for _, c := range []struct{ body, want string }{
		{"192.0.2.9\n203.0.113.0/24\nnot-an-address\n", "line 3: invalid address"},
		{"192.0.2.9\n# comment\n\n198.51.100.4\n", "line 4: refusing to ban 198.51.100.4"},
		{"# only a comment\n", "no addresses"},
	} {
		_, err := d.Import(ctx, control.ImportRequest{Jail: "import", For: "1h"}, strings.NewReader(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, control.ErrBadRequest) {
			t.Errorf("import %q: err %v, want a bad request with %q", c.body, err, c.want)
		}
	}
	// Large enough to be parsed in parts on every core: the bad line is
	// still named by its number in the whole file.
	var big strings.Builder
	for i := range 80_000 {
		if i == 59_999 {
			big.WriteString("2001:db8:zz::/64\n")
			continue
		}
		fmt.Fprintf(&big, "2001:db8:%x:%x::/64\n", 0x300+i>>16, i&0xffff)
	}
	if _, err := d.Import(ctx, control.ImportRequest{Jail: "import", For: "1h"}, strings.NewReader(big.String())); err == nil || !strings.Contains(err.Error(), "line 60000: invalid CIDR") {
		t.Errorf("import with line 60000 bad: %v", err)
	}
	if len(be.m) != 0 {
		t.Fatalf("refused imports banned %v", be.m)
	}
	var body strings.Builder
	body.WriteString("\ufeff2001:db8::2\n")
	for i := range 70_000 { // more than one part
		fmt.Fprintf(&body, "2001:db8:%x:%x::/64 # line %d\n", 0x100+i>>16, i&0xffff, i)
	}
	resp, err := d.Import(ctx, control.ImportRequest{Jail: "import", For: "1h"}, strings.NewReader(body.String()))
	if err != nil || resp.Banned != 70_001 {
		t.Fatalf("import: %+v %v", resp, err)
	}
	if _, ok := be.m[netip.MustParsePrefix("2001:db8::2/128")]; !ok || len(be.m) != 70_001 {
		t.Fatalf("backend holds %d bans, 2001:db8::2/128 among them: %v", len(be.m), ok)
	}
	if b, ok := d.core.Lookup(netip.MustParsePrefix("2001:db8:100:1::/64")); !ok || b.Jail != "import" || b.Expires.IsZero() {
		t.Fatalf("imported ban in the mirror: %+v %v", b, ok)
	}
	if n, err := d.core.Store.BanCount("import", netip.MustParsePrefix("2001:db8:100:1::/64")); err == nil && n != 0 {
		t.Fatalf("an import recorded %d offences in the ban history", n)
	}
}
