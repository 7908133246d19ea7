package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A --from-file import goes to the daemon whole: every line must end up
// banned, in the kernel and in the list, and traffic from an imported
// prefix must drop; a file with bad lines has each named and bans none.
func TestFromFileThroughDaemon(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	// Four requests; the test config's ban_v6 holds 16384.
	const n = 3*banChunk + 7
	var b strings.Builder
	b.WriteString("# blocklist\n\n")
	for i := range n {
		fmt.Fprintf(&b, "2001:db8:%x:%x::/64\n", 0x2000+i>>16, i&0xffff)
	}
	b.WriteString("198.51.100.0/24 # a whole range\n")
	list := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Bad lines are named by the daemon, every one, and nothing of the
	// file is banned.
	badList := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(badList, []byte(b.String()+"300.1.2.3\n192.0.2.0/33\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := w.cli(t, "ban", "--from-file", badList, "--jail", "import")
	for _, want := range []string{
		fmt.Sprintf(`line %d: invalid address "300.1.2.3"`, n+4),
		fmt.Sprintf(`line %d: invalid CIDR "192.0.2.0/33"`, n+5),
		"2 bad lines; nothing was banned",
	} {
		if code != exitUsage || !strings.Contains(errs, want) {
			t.Errorf("bad list: exit %d, stderr lacks %q:\n%s", code, want, errs)
		}
	}
	if got := w.list(t); len(got) != 0 {
		t.Fatalf("a refused list banned %d", len(got))
	}
	out := w.mustCLI(t, "ban", "--from-file", list, "--jail", "import", "--for", "1h")
	if want := fmt.Sprintf("banned %d addresses in jail import", n+1); !strings.Contains(out, want) {
		t.Fatalf("ban --from-file said %q, want %q", out, want)
	}
	got := w.list(t)
	imported := 0
	for _, e := range got {
		if e.Jail == "import" {
			imported++
		}
	}
	if imported != n+1 {
		t.Fatalf("list holds %d bans of jail import, want %d", imported, n+1)
	}
	for _, p := range []string{"2001:db8:2000::/64", fmt.Sprintf("2001:db8:%x:%x::/64", 0x2000+(n-1)>>16, (n-1)&0xffff), "198.51.100.0/24"} {
		if _, ok := got[p]; !ok {
			t.Fatalf("%s missing from the list", p)
		}
	}
	src := netip.MustParseAddr("2001:db8:2000:5::9")
	w.p.AddAttackerAddr(t, src)
	if arrived := w.send(t, src, 30); arrived != 0 {
		t.Fatalf("%d of 30 datagrams from an imported prefix arrived", arrived)
	}
}
