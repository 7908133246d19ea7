package banlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

func TestLinesInFail2banFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "xdpban.log")
	var slogBuf bytes.Buffer
	l, err := Open(path, slog.New(slog.NewTextHandler(&slogBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 89e6, time.Local) }
	l.Ban("sshd", netip.MustParsePrefix("192.0.2.7/32"), time.Time{})
	l.Ban("manual", netip.MustParsePrefix("2001:db8:1::/64"), time.Now().Add(time.Hour))
	l.Ban("manual", netip.MustParsePrefix("198.51.100.0/24"), time.Time{})
	l.Unban("sshd", netip.MustParsePrefix("192.0.2.7/32"), "expired")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	want := fmt.Sprintf(`2026-03-04 05:06:07,089 fail2ban.actions [%[1]d]: NOTICE  [sshd] Ban 192.0.2.7
2026-03-04 05:06:07,089 fail2ban.actions [%[1]d]: NOTICE  [manual] Ban 2001:db8:1::
2026-03-04 05:06:07,089 fail2ban.actions [%[1]d]: NOTICE  [manual] Ban 198.51.100.0
2026-03-04 05:06:07,089 fail2ban.actions [%[1]d]: NOTICE  [sshd] Unban 192.0.2.7
`, pid)
	if string(got) != want {
		t.Fatalf("ban log:\n%s\nwant:\n%s", got, want)
	}
	// fail2ban's recidive failregex (filter.d/recidive.conf), with <HOST>
	// reduced to an address pattern: it must find the bans and skip the
	// unban.
	recidive := regexp.MustCompile(`^\S+ \S+ (?:\s*fail2ban\.actions\s*|\s*xdpban\.actions\s*)(?:\[\d+\])?:\s+NOTICE\s+\[(?:[^\]]*)\]\s+Ban\s+([0-9a-f.:]+)\s*$`)
	var hosts []string
	for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		if m := recidive.FindStringSubmatch(line); m != nil {
			hosts = append(hosts, m[1])
		}
	}
	if strings.Join(hosts, ",") != "192.0.2.7,2001:db8:1::,198.51.100.0" {
		t.Fatalf("recidive-style match found %v", hosts)
	}
	if s := slogBuf.String(); strings.Count(s, "msg=ban") != 3 || !strings.Contains(s, "msg=unban jail=sshd addr=192.0.2.7/32 reason=expired") {
		t.Fatalf("slog lines:\n%s", s)
	}
}

func TestUnwritablePathNamesIt(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: cannot be opened for writing.
	path := filepath.Join(dir, "log")
	os.Mkdir(path, 0o755)
	_, err := Open(path, nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(%s) = %v, want an error naming the path", path, err)
	}
}

func TestReopenAfterRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	l, err := Open(path, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Ban("a", netip.MustParsePrefix("192.0.2.1/32"), time.Time{})
	os.Rename(path, path+".1")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Ban("a", netip.MustParsePrefix("192.0.2.2/32"), time.Time{})
	b, _ := os.ReadFile(path)
	if !strings.HasSuffix(strings.TrimSpace(string(b)), "Ban 192.0.2.2") || strings.Contains(string(b), "192.0.2.1") {
		t.Fatalf("after reopen the new file holds %q", b)
	}
}

func TestBanBatch(t *testing.T) {
	for _, n := range []int{3, 150} {
		path := filepath.Join(t.TempDir(), "xdpban.log")
		var slogBuf bytes.Buffer
		l, err := Open(path, slog.New(slog.NewTextHandler(&slogBuf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		l.now = func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 89e6, time.Local) }
		var bs []bans.Ban
		var want strings.Builder
		for i := range n {
			p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i)}), 64)
			bs = append(bs, bans.Ban{Prefix: p, Jail: "import", Expires: time.Now().Add(time.Hour)})
			fmt.Fprintf(&want, "2026-03-04 05:06:07,089 fail2ban.actions [%d]: NOTICE  [import] Ban %s\n", os.Getpid(), p.Addr())
		}
		l.BanBatch(bs)
		l.Close()
		got, _ := os.ReadFile(path)
		if string(got) != want.String() {
			t.Fatalf("%d bans: ban log\n%s\nwant\n%s", n, got, want.String())
		}
		lines := strings.Count(slogBuf.String(), "msg=ban ")
		summary := strings.Count(slogBuf.String(), "msg=bans count=150 ")
		if (n == 3 && (lines != 3 || summary != 0)) || (n == 150 && (lines != 0 || summary != 1)) {
			t.Fatalf("%d bans: %d slog ban lines, %d summaries:\n%s", n, lines, summary, slogBuf.String())
		}
	}
}
