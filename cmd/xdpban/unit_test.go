package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
		"ExecReload":    "@SBINDIR@/xdpban --config @SYSCONFDIR@/xdpban reload",
		"LogsDirectory": "xdpban",
		"UMask":         "0077",
	} {
		if got := strings.Join(keys[k], " "); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	rw := strings.Fields(strings.Join(keys["ReadWritePaths"], " "))
	// State, socket and log directories come from StateDirectory=,
	// RuntimeDirectory= and LogsDirectory=: nothing else of /var is
	// writable, /var/log least of all.
	if !slices.Equal(rw, []string{"/sys/fs/bpf", "-/run/xtables.lock"}) {
		t.Errorf("ReadWritePaths = %v, want only /sys/fs/bpf and the xtables lock", rw)
	}
	caps := strings.Fields(strings.Join(keys["CapabilityBoundingSet"], " "))
	want := []string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_DAC_READ_SEARCH"}
	if !slices.Equal(caps, want) {
		t.Errorf("CapabilityBoundingSet = %v, want %v", caps, want)
	}
	if a := keys["AmbientCapabilities"]; len(a) > 0 {
		t.Errorf("AmbientCapabilities = %v: the daemon runs as root, the bounding set is what limits it", a)
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
	// The exposure score systemd computes from the sandboxing (0 best,
	// 10 worst); 4.9 before the hardening, 2.2 after.
	out, err = exec.Command(sa, "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline: %v: %s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for xdpban.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.3 {
		t.Errorf("systemd-analyze security exposure %.1f, want <= 2.3", score)
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
