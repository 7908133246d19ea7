package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzJailLocal loads arbitrary jail.local text over the shipped files:
// never a panic, and a refusal is always one line that says where.
func FuzzJailLocal(f *testing.F) {
	f.Add("[sshd]\nmaxretry = 3\nbantime = 1h30m\nignoreip = 192.0.2.0/24 2001:db8::/32\n")
	f.Add("[web]\nenabled = true\nfilter = nginx[mode=aggressive]\nlogpath = /var/log/a.log\nport = http,https\naction = mail[to=a@example.org]\nratelimit = 10/s,burst=20\n")
	f.Add("[DEFAULT]\nbantime = -1\n[sshd]\nbackend = systemd\n")
	dir := f.TempDir()
	path := filepath.Join(dir, "jail.local")
	f.Fuzz(func(t *testing.T, text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(dir)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Fatalf("multi-line error: %q", msg)
			}
			if !strings.Contains(msg, ":") {
				t.Fatalf("error without a position: %q", msg)
			}
			return
		}
		for _, j := range c.Jails {
			if j.MaxRetry < 1 || j.FindTime <= 0 || j.BanTime == 0 || j.FilterName == "" {
				t.Fatalf("accepted an unusable jail: %+v", j)
			}
		}
	})
}
