package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sampleLog = "../../testdata/logs/auth-sample.log"

func TestRegexJSONOnSampleLog(t *testing.T) {
	code, out, errs := cli(t, "", "regex", sampleLog, "sshd", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Lines, Matched, Missed, Ignored int
		ElapsedS                        float64 `json:"elapsed_s"`
		Matches                         []struct {
			Line int
			Host string
			Time string
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	// Line 14's Latin-1 user name is matched, as fail2ban does.
	if r.Lines != 14 || r.Matched != 10 || r.Missed != 4 || r.Ignored != 0 || len(r.Matches) != 10 {
		t.Fatalf("result %+v", r)
	}
	if m := r.Matches[3]; m.Line != 6 || m.Host != "203.0.113.7" || !strings.HasPrefix(m.Time, "20") {
		t.Fatalf("4th match %+v, want line 6 from 203.0.113.7", m)
	}
}

func TestRegexSingleLineAndRawRegex(t *testing.T) {
	line := "Nov 24 10:00:01 web1 sshd[1]: Failed password for root from 2001:db8::9 port 1 ssh2"
	code, out, errs := cli(t, "", "regex", line, `Failed password for \S+ from <HOST>`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "Lines: 1 lines, 0 ignored, 1 matched, 0 missed") || !strings.Contains(out, "2001:db8::9") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestRegexJailReplayPrintsBans(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = true\nmaxretry = 3\nfindtime = 10m\nbantime = 2h\n"), 0o644)
	code, out, errs := cli(t, "", "--config", dir, "regex", sampleLog, "--jail", "sshd")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"Jail sshd (maxretry 3, findtime 10m, bantime 2h): 2 bans",
		"192.0.2.10/32 banned at ",
		"2001:db8::/64 banned at ",
		"for 2h until ",
		"(3 failures, line 5)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRegexBadInputExits2WithOneLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"regex", "/nonexistent/auth.log", "sshd"}, "log file /nonexistent/auth.log not found"},
		{[]string{"regex", sampleLog, "nosuchfilter"}, `unknown filter "nosuchfilter"`},
		{[]string{"regex", sampleLog, "Failed (password from <HOST>"}, "invalid"},
		{[]string{"regex", sampleLog}, "want LOG|LINE and FILTER|REGEX"},
		{[]string{"regex", sampleLog, "sshd", "--jail", "nojail"}, `unknown jail "nojail"`},
		{[]string{"regex", sampleLog, "sshd", "--bogus"}, "flag provided but not defined"},
		{[]string{"regex", ".", "sshd"}, "is a directory"},
	} {
		code, _, errs := cli(t, "", c.args...)
		if code != 2 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "xdpban: regex: ") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line containing %q", c.args, code, errs, c.want)
		}
	}
}

func TestRegexHintsRFC5424(t *testing.T) {
	log := filepath.Join(t.TempDir(), "auth.log")
	lines := "<38>1 2025-03-01T12:00:00.123456+01:00 host sshd 1234 - - Failed password for root from 192.0.2.10 port 22 ssh2\n" +
		"<38>1 2025-03-01T12:00:01.5+01:00 host sshd 1234 - - Failed password for root from 192.0.2.11 port 22 ssh2\n"
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli(t, "", "regex", log, "sshd[mode=aggressive]")
	if code != 0 || !strings.Contains(out, "0 matched") || !strings.Contains(out, "try sshd[mode=aggressive, logtype=rfc5424]") {
		t.Fatalf("RFC 5424 log without logtype: exit %d, no hint:\n%s%s", code, out, errs)
	}
	// The hint is right: with it both lines match, and no hint is given.
	code, out, errs = cli(t, "", "regex", log, "sshd[mode=aggressive, logtype=rfc5424]")
	if code != 0 || !strings.Contains(out, "2 matched") || strings.Contains(out, "Hint:") {
		t.Fatalf("with logtype=rfc5424: exit %d:\n%s%s", code, out, errs)
	}
	// An ordinary syslog file that misses gets no such hint.
	code, out, _ = cli(t, "", "regex", "Nov 24 10:00:01 web1 sshd[1]: Accepted publickey for root from 192.0.2.1 port 1 ssh2", "sshd")
	if code != 0 || strings.Contains(out, "Hint:") {
		t.Fatalf("classic syslog line: hint given:\n%s", out)
	}
}

// TestRegexReportsTimeouts: lines the backtracking engine gives up on are
// counted and said, as the daemon logs and exports them; the real
// failure after them still matches.
func TestRegexReportsTimeouts(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hostile.log")
	var b strings.Builder
	for i := 0; i < 5; i++ {
		b.WriteString("x" + strings.Repeat("a", 30) + fmt.Sprintf("!: invalid user from 192.0.2.%d\n", 1+i))
	}
	b.WriteString("Failed password from 203.0.113.9\n")
	if err := os.WriteFile(log, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli(t, "", "regex", log, `^x(?=\w)(?:\w+\s?)+: invalid user from <HOST>$`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "Timeouts: 5 lines given up on") || !strings.Contains(out, "0 matched, 6 missed") {
		t.Fatalf("output:\n%s", out)
	}
	code, out, _ = cli(t, "", "regex", "--json", log, `^x(?=\w)(?:\w+\s?)+: invalid user from <HOST>$`)
	if code != 0 || !strings.Contains(out, `"timeouts":5`) {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 90 * time.Minute: "1h30m", 10 * time.Minute: "10m", 45 * time.Second: "45s",
		90 * time.Second: "1m30s", 25*time.Hour + 5*time.Second: "25h5s", 1500 * time.Millisecond: "1.5s", -1: "-1ns",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
