package banlog

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// TestStockRecidiveReadsBanLog points Debian's fail2ban-regex, with
// fail2ban's own filter.d/recidive.conf, at a ban log this package
// wrote: an existing fail2ban recidive jail aimed at xdpban's ban log
// must count every ban (prefix bans included) except its own, and no
// unban.
func TestStockRecidiveReadsBanLog(t *testing.T) {
	const filter = "/etc/fail2ban/filter.d/recidive.conf"
	bin, err := exec.LookPath("fail2ban-regex")
	if err == nil {
		_, err = os.Stat(filter)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fail2ban-regex or %s missing (CI=true): make deps installs the fail2ban package: %v", filter, err)
		}
		t.Skipf("fail2ban not installed (%v): make deps installs it", err)
	}
	path := filepath.Join(t.TempDir(), "xdpban.log")
	l, err := Open(path, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 89e6, time.Local)
	l.now = func() time.Time { at = at.Add(time.Second); return at }
	exp := time.Now().Add(time.Hour)
	for _, b := range []struct{ jail, prefix string }{
		{"sshd", "192.0.2.1/32"}, {"sshd", "192.0.2.2/32"}, {"sshd", "192.0.2.3/32"},
		{"postfix", "2001:db8::5/128"}, {"sshd", "2001:db8:1::/64"},
		{"manual", "198.51.100.0/24"}, {"recidive", "192.0.2.1/32"},
	} {
		l.Ban(b.jail, netip.MustParsePrefix(b.prefix), exp)
	}
	l.Unban("sshd", netip.MustParsePrefix("192.0.2.1/32"), "expired")
	l.Unban("manual", netip.MustParsePrefix("198.51.100.0/24"), "manual")
	l.BanBatch([]bans.Ban{
		{Jail: "import", Prefix: netip.MustParsePrefix("192.0.2.9/32"), Expires: exp},
		{Jail: "import", Prefix: netip.MustParsePrefix("203.0.113.0/25"), Expires: exp},
	})
	l.Unban("recidive", netip.MustParsePrefix("192.0.2.1/32"), "expired")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 12 {
		t.Fatalf("ban log has %d lines, want 12:\n%s", n, data)
	}

	out, err := exec.Command(bin, "--out", "ip", path, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	var got []string
	for _, f := range strings.Fields(string(out)) {
		if _, err := netip.ParseAddr(f); err == nil {
			got = append(got, f)
		}
	}
	want := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::5", "2001:db8:1::", "198.51.100.0", "192.0.2.9", "203.0.113.0"}
	if !slices.Equal(got, want) {
		t.Fatalf("fail2ban-regex recidive counted %v, want %v\nban log:\n%s", got, want, data)
	}
	// The same through the summary fail2ban-regex prints by default.
	out, _ = exec.Command(bin, path, filter).CombinedOutput()
	if m := regexp.MustCompile(`Lines: 12 lines, 0 ignored, (\d+) matched, (\d+) missed`).FindStringSubmatch(string(out)); m == nil || m[1] != "8" {
		t.Fatalf("fail2ban-regex summary: want 8 of 12 lines matched:\n%s", out)
	}
	t.Logf("fail2ban-regex %s: 8 of 12 ban log lines counted (4 unban/recidive lines not)", filter)
}
