package filter

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const journalRemote = "/lib/systemd/systemd-journal-remote"

// TestJournalMatchOnRealJournal writes journal entries with the field
// sets each distribution's sshd logs with (and decoys) into a real
// journal file, with systemd-journal-remote, and asks journalctl which of
// them the shipped sshd filter's journalmatch, and the jail default that
// came before it, select. The shipped match must see every recorded
// source; the old one misses Debian's ssh.service with OpenSSH >= 9.8;
// and JournalSees, which `xdpban check` warns with, must agree with
// journalctl on every entry.
func TestJournalMatchOnRealJournal(t *testing.T) {
	jc, err := exec.LookPath("journalctl")
	if err == nil {
		_, err = os.Stat(journalRemote)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("journalctl or %s missing (CI=true): make deps installs systemd-journal-remote: %v", journalRemote, err)
		}
		t.Skipf("journalctl or %s missing: make deps installs systemd-journal-remote", journalRemote)
	}
	f, err := Load(nil, "sshd", nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := JournalSources("sshd")
	decoys := []JournalSource{
		{"cron", map[string]string{"_SYSTEMD_UNIT": "cron.service", "_COMM": "cron", "SYSLOG_IDENTIFIER": "CRON"}},
		{"a user's ssh client", map[string]string{"_SYSTEMD_UNIT": "session-3.scope", "_COMM": "ssh", "SYSLOG_IDENTIFIER": "ssh"}},
		{"sshd.service's helper", map[string]string{"_SYSTEMD_UNIT": "sshd-keygen@rsa.service", "_COMM": "sshd-keygen", "SYSLOG_IDENTIFIER": "sshd-keygen"}},
	}
	all := append(append([]JournalSource{}, entries...), decoys...)

	dir := t.TempDir()
	var exp strings.Builder
	for i, s := range all {
		fmt.Fprintf(&exp, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=bastion\n_PID=%d\n", 1740823200000000+int64(i)*1000000, 1000+i, 4000+i)
		for k, v := range s.Fields {
			fmt.Fprintf(&exp, "%s=%s\n", k, v)
		}
		fmt.Fprintf(&exp, "MESSAGE=entry %d: Failed password for root from 192.0.2.%d port 22 ssh2\n\n", i, i+1)
	}
	export := filepath.Join(dir, "entries.export")
	if err := os.WriteFile(export, []byte(exp.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	jfile := filepath.Join(dir, "test.journal")
	if out, err := exec.Command(journalRemote, "--output="+jfile, export).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", journalRemote, err, out)
	}

	// The entries journalctl selects with these match lines, passed as
	// the journal backend passes them (each line's fields as arguments).
	selected := func(matches []string) map[int]bool {
		args := []string{"--file=" + jfile, "--output=json", "--no-pager", "--quiet"}
		for _, m := range matches {
			args = append(args, strings.Fields(m)...)
		}
		out, err := exec.Command(jc, args...).Output()
		if err != nil {
			t.Fatalf("journalctl %v: %v", args, err)
		}
		got := map[int]bool{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			var e struct{ MESSAGE string }
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("journalctl output %q: %v", sc.Text(), err)
			}
			var i int
			if _, err := fmt.Sscanf(e.MESSAGE, "entry %d:", &i); err != nil {
				t.Fatalf("journalctl output %q: %v", e.MESSAGE, err)
			}
			got[i] = true
		}
		return got
	}

	old := []string{"_SYSTEMD_UNIT=sshd.service + _COMM=sshd"}
	for _, tc := range []struct {
		name    string
		matches []string
	}{{"shipped", f.JournalMatch}, {"old default", old}} {
		got := selected(tc.matches)
		for i, s := range all {
			if sees := JournalSees(tc.matches, s.Fields); sees != got[i] {
				t.Errorf("%s match %q, entry %s: journalctl selects it %v, JournalSees says %v", tc.name, tc.matches, s, got[i], sees)
			}
		}
		t.Logf("%s journalmatch %q: journalctl selects %d of %d sshd sources, %d of %d decoys", tc.name, strings.Join(tc.matches, " "), countTrue(got, 0, len(entries)), len(entries), countTrue(got, len(entries), len(all)), len(decoys))
	}
	if got := selected(f.JournalMatch); countTrue(got, 0, len(entries)) != len(entries) || countTrue(got, len(entries), len(all)) != 0 {
		t.Errorf("shipped sshd journalmatch %q selects %v: want every sshd source and no decoy", f.JournalMatch, got)
	}
	if blind := JournalBlindSpots("sshd", old); len(blind) == 0 || !strings.Contains(strings.Join(blind, "\n"), "ssh.service") {
		t.Errorf("old match: blind spots %q, want Debian's ssh.service + sshd-session named", blind)
	}
	if blind := JournalBlindSpots("sshd", f.JournalMatch); len(blind) != 0 {
		t.Errorf("shipped match blind spots: %q", blind)
	}
}

func countTrue(m map[int]bool, from, to int) int {
	n := 0
	for i := from; i < to; i++ {
		if m[i] {
			n++
		}
	}
	return n
}

func TestJournalSees(t *testing.T) {
	f := map[string]string{"_SYSTEMD_UNIT": "ssh.service", "_COMM": "sshd-session"}
	for _, tc := range []struct {
		m    []string
		want bool
	}{
		{nil, true},
		{[]string{"_SYSTEMD_UNIT=ssh.service"}, true},
		{[]string{"_SYSTEMD_UNIT=sshd.service _COMM=sshd-session"}, false},       // AND across fields
		{[]string{"_SYSTEMD_UNIT=sshd.service _SYSTEMD_UNIT=ssh.service"}, true}, // OR within a field
		{[]string{"_SYSTEMD_UNIT=ssh.service _COMM=sshd"}, false},
		{[]string{"_SYSTEMD_UNIT=sshd.service + _COMM=sshd-session"}, true},
		{[]string{"_SYSTEMD_UNIT=sshd.service", "_COMM=sshd-session"}, false}, // two lines: one AND group
		{[]string{"_SYSTEMD_UNIT=sshd.service +", "_COMM=sshd-session"}, true},
	} {
		if got := JournalSees(tc.m, f); got != tc.want {
			t.Errorf("JournalSees(%q) = %v, want %v", tc.m, got, tc.want)
		}
	}
}
