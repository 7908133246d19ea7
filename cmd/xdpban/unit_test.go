package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("xdpban.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q is not key=value", line)
		}
		keys[k] = append(keys[k], v)
	}
	for k, want := range map[string]string{
		"Type":          "notify",
		"Restart":       "on-failure",
		"ProtectSystem": "strict",
		"ProtectHome":   "yes",
		"ExecReload":    "/bin/kill -HUP $MAINPID",
	} {
		if got := strings.Join(keys[k], " "); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	rw := strings.Fields(strings.Join(keys["ReadWritePaths"], " "))
	for _, p := range []string{"/var/lib/xdpban", "/run/xdpban", "/var/log", "/sys/fs/bpf"} {
		if !contains(rw, p) {
			t.Errorf("ReadWritePaths lacks %s", p)
		}
	}
	caps := strings.Fields(strings.Join(keys["CapabilityBoundingSet"], " "))
	for _, c := range caps {
		if !contains([]string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH"}, c) {
			t.Errorf("unexpected capability %s", c)
		}
	}
	if !strings.Contains(strings.Join(keys["ExecStart"], ""), "@SBINDIR@/xdpban --config @SYSCONFDIR@/xdpban run") {
		t.Errorf("ExecStart %q: make install substitutes @SBINDIR@ and @SYSCONFDIR@", keys["ExecStart"])
	}

	// systemd's own parser, when this machine has it.
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the key checks above ran")
	}
	dir := t.TempDir()
	unit := strings.NewReplacer("@SBINDIR@/xdpban", "/bin/true", "@SYSCONFDIR@", "/etc").Replace(string(raw))
	path := filepath.Join(dir, "xdpban.service")
	os.WriteFile(path, []byte(unit), 0o644)
	out, _ := exec.Command(sa, "verify", path).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "xdpban.service") && (strings.Contains(line, "Unknown") || strings.Contains(line, "Failed to parse") || strings.Contains(line, "Invalid")) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
