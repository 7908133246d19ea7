package ini

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkStockJail reads /etc/fail2ban/jail (includes, jail.d, .local)
// and interpolates every value of every section, with this package and,
// as the peer in the same run, with fail2ban's own Python reader doing
// the same work in one process (reported as peer-ns/op).
func BenchmarkStockJail(b *testing.B) {
	const base = "/etc/fail2ban"
	if _, err := os.Stat(filepath.Join(base, "jail.conf")); err != nil {
		b.Skip("no /etc/fail2ban: install fail2ban")
	}
	b.Run("xdpban", func(b *testing.B) {
		for b.Loop() {
			f, err := LoadBase(filepath.Join(base, "jail"))
			if err != nil {
				b.Fatal(err)
			}
			for _, s := range f.Sections() {
				for _, k := range append(f.Keys(s), f.Keys(Default)...) {
					_, _ = f.Get(s, k)
				}
			}
		}
	})
	b.Run("fail2ban-python", func(b *testing.B) {
		n := max(b.N, 1)
		out, err := exec.Command("/usr/bin/python3", "testdata/f2b_bench.py", base, "jail", strconv.Itoa(n)).Output()
		if err != nil {
			b.Skipf("fail2ban's Python reader unavailable: %v", err)
		}
		ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(ns, "peer-ns/op")
	})
}
