package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConf(t *testing.T, dir, name, text string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rowOf returns the table line of a jail.
func rowOf(out, jail string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == jail {
			return l
		}
	}
	return ""
}

func TestCheckOwnConfig(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "auth.log")
	writeConf(t, dir, "jail.local", `[sshd]
logpath = `+log+`
backend = file
action = mail[to=root@example.org]

[web]
enabled = true
filter = sshd[mode=aggressive]
logpath = `+log+`
banaction = iptables-multiport
action = iptables-multiport[port="http"]

[ghost]
enabled = true
filter = no-such-filter
logpath = `+log+`

[badmail]
enabled = true
filter = sshd
logpath = `+log+`
action = mail[to=not-an-address]
`)
	code, out, errOut := cli(t, "", "--config", dir, "check")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d (two jails do not load)\n%s%s", code, exitUsage, out, errOut)
	}
	if !strings.Contains(out, "configuration: "+dir) || !strings.HasPrefix(strings.Split(out, "\n")[2], "JAIL") ||
		!strings.Contains(out, "daemon: backend auto on default-route interfaces, ipv6_prefix /64, iptables chains INPUT (DROP), ban log /var/log/xdpban/xdpban.log\n") {
		t.Errorf("header missing:\n%s", out)
	}
	for jail, want := range map[string]string{
		"sshd":    "yes    sshd[mode=normal]",
		"web":     "yes    sshd[mode=aggressive]",
		"ghost":   "NO     no-such-filter ",
		"badmail": "NO",
	} {
		if r := rowOf(out, jail); !strings.Contains(r, want) {
			t.Errorf("row of %s = %q, want %q in it\n%s", jail, r, want, out)
		}
	}
	for _, want := range []string{
		"error: filter: ",
		`no-such-filter`,
		"not translated: " + filepath.Join(dir, "jail.local") + `:11: action: replaced by xdpban's enforcement, not executed: iptables-multiport[port="http"]`,
		"error: action 1 (mail)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if errOut != "xdpban: check: 2 of 4 enabled jails do not load: fix the errors above\n" {
		t.Errorf("stderr = %q", errOut)
	}
}

func TestCheckOK(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, "jail.local", "[sshd]\nlogpath = "+filepath.Join(dir, "auth.log")+"\nbackend = file\n")
	code, out, errOut := cli(t, "", "check", "--config", dir, "--json")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d stderr %q\n%s", code, errOut, out)
	}
	var rows []checkRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(rows) != 1 || rows[0].Jail != "sshd" || !rows[0].Loads || rows[0].Source != filepath.Join(dir, "auth.log") {
		t.Errorf("rows = %+v", rows)
	}
}

func TestCheckBadInput(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, "jail.local", "[sshd]\nmaxretry = lots\n")
	code, out, errOut := cli(t, "", "check", "--config", dir)
	want := "xdpban: check: " + filepath.Join(dir, "jail.local") + `:2: [sshd] maxretry = "lots": want a whole number`
	if code != exitUsage || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d stdout %q stderr %q; want exit 2 and %q", code, out, errOut, want)
	}
	code, _, errOut = cli(t, "", "check", "--fail2ban-config", filepath.Join(dir, "nope"))
	if code != exitUsage || !strings.Contains(errOut, "no jail.conf or jail.local") {
		t.Errorf("missing fail2ban dir: exit %d stderr %q", code, errOut)
	}
	code, _, errOut = cli(t, "", "check", "extra")
	if code != exitUsage || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("extra argument: exit %d stderr %q", code, errOut)
	}
}

func TestCheckFail2banTree(t *testing.T) {
	code, out, errOut := cli(t, "", "check", "--fail2ban-config", "../../internal/config/testdata/fail2ban")
	if code != exitUsage {
		t.Fatalf("exit %d, want 2 (jails broken and nofilter)\n%s%s", code, out, errOut)
	}
	for jail, want := range map[string]string{
		"sshd":            "yes    sshd[mode=aggressive]",
		"postfix":         "yes    postfix[mode=more]",
		"nginx-http-auth": "yes",
		"recidive":        "yes",
		"broken":          "NO",
		"nofilter":        "NO",
	} {
		if r := rowOf(out, jail); !strings.Contains(r, want) {
			t.Errorf("row of %s = %q, want %q\n%s", jail, r, want, out)
		}
	}
	if !strings.Contains(out, `jail.local:28: [broken] maxretry = "many"`) {
		t.Errorf("broken jail's error missing:\n%s", out)
	}
	// The scope column: multiport banactions ban the jail's ports, the
	// allports one of recidive everything.
	for jail, want := range map[string]string{"sshd": " tcp/22 ", "nginx-http-auth": " tcp/80,443 ", "recidive": " all "} {
		if r := rowOf(out, jail); !strings.Contains(r, want) {
			t.Errorf("row of %s = %q, want scope %q", jail, r, strings.TrimSpace(want))
		}
	}
	_, js, _ := cli(t, "", "check", "--json", "--fail2ban-config", "../../internal/config/testdata/fail2ban")
	if !strings.Contains(js, `"scope": "tcp/22"`) || !strings.Contains(js, `"scope": "all"`) {
		t.Errorf("check --json lacks the jails' scopes:\n%s", js)
	}
}

func TestCheckRealFail2ban(t *testing.T) {
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("/etc/fail2ban/jail.conf missing in CI: install the fail2ban package")
		}
		t.Skip("/etc/fail2ban/jail.conf missing: install fail2ban to run this test")
	}
	code, out, errOut := cli(t, "", "check", "--fail2ban-config", "/etc/fail2ban")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d stderr %q\n%s", code, errOut, out)
	}
	if r := rowOf(out, "sshd"); !strings.Contains(r, "yes    sshd[mode=") {
		t.Errorf("stock sshd row = %q\n%s", r, out)
	}
}

// TestCheckShippedJails enables every shipped jail: each must load with
// the shipped filters.
func TestCheckShippedJails(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "x.log")
	var b strings.Builder
	for _, j := range []string{"sshd", "recidive", "apache-auth", "nginx-http-auth", "nginx-limit-req", "vsftpd", "postfix", "dovecot"} {
		b.WriteString("[" + j + "]\nenabled = true\nlogpath = " + log + "\nbackend = auto\n\n")
	}
	writeConf(t, dir, "jail.local", b.String())
	code, out, errOut := cli(t, "", "check", "--config", dir)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d stderr %q\n%s", code, errOut, out)
	}
	if n := strings.Count(out, "  yes  "); n != 8 {
		t.Errorf("%d jails load, want 8:\n%s", n, out)
	}
}

func TestCheckMisspeltEnabled(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, "jail.conf", "[web]\nenabled = ture\nfilter = sshd\nlogpath = /x\n")
	code, out, _ := cli(t, "", "check", "--fail2ban-config", dir)
	if code != exitUsage || !strings.Contains(out, `jail.conf:2: [web] enabled = "ture": want true or false`) {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// TestCheckEveryStockJail enables every jail of the stock /etc/fail2ban
// (through a jail.local in a copy made of symlinks): each must translate
// and its filter compile.
func TestCheckEveryStockJail(t *testing.T) {
	const stock = "/etc/fail2ban"
	if _, err := os.Stat(stock + "/jail.conf"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(stock + "/jail.conf missing in CI: install the fail2ban package")
		}
		t.Skip(stock + "/jail.conf missing: install fail2ban to run this test")
	}
	dir := t.TempDir()
	ents, err := os.ReadDir(stock)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "jail.local" {
			continue
		}
		if err := os.Symlink(filepath.Join(stock, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(stock + "/jail.conf")
	if err != nil {
		t.Fatal(err)
	}
	var local strings.Builder
	jails := 0
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "[") && l != "[INCLUDES]" && l != "[DEFAULT]" {
			local.WriteString(l + "\nenabled = true\n\n")
			jails++
		}
	}
	writeConf(t, dir, "jail.local", local.String())
	code, out, errOut := cli(t, "", "check", "--fail2ban-config", dir, "--json")
	var rows []checkRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("exit %d stderr %q: %v", code, errOut, err)
	}
	loads := 0
	for _, r := range rows {
		if r.Loads {
			loads++
		} else {
			t.Errorf("stock jail %s does not load: %s", r.Jail, r.Error)
		}
	}
	t.Logf("%d of %d stock fail2ban jails load", loads, jails)
	if code != exitOK || loads != jails || jails < 50 {
		t.Errorf("exit %d: %d of %d jails load", code, loads, jails)
	}
}

// TestCheckWarnsJournalMatchBlindSpots: a journal jail whose
// journalmatch is the one fail2ban's (and xdpban's former) sshd jail has
// cannot see Debian's ssh.service with OpenSSH >= 9.8 (sshd-session):
// check says so, still loads the jail and exits 0; the shipped match
// gets no warning, and neither does a jail reading files.
func TestCheckWarnsJournalMatchBlindSpots(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, "jail.local", `[sshd]
backend = journal
journalmatch = _SYSTEMD_UNIT=sshd.service + _COMM=sshd

[ssh-shipped]
enabled = true
filter = sshd
backend = journal
journalmatch = _SYSTEMD_UNIT=sshd.service + _SYSTEMD_UNIT=ssh.service + _COMM=sshd + _COMM=sshd-session + _COMM=sshd-auth

[ssh-file]
enabled = true
filter = sshd
journalmatch = _SYSTEMD_UNIT=sshd.service
logpath = `+filepath.Join(dir, "auth.log")+`
backend = file
`)
	code, out, errOut := cli(t, "", "--config", dir, "check")
	if code != exitOK {
		t.Fatalf("exit %d, want 0 (warnings only)\n%s%s", code, out, errOut)
	}
	warn := `warning: journalmatch "_SYSTEMD_UNIT=sshd.service + _COMM=sshd" cannot see Debian 13, Ubuntu 25.04+ (OpenSSH 9.9-10.x): SYSLOG_IDENTIFIER=sshd-session _COMM=sshd-session _SYSTEMD_UNIT=ssh.service`
	if !strings.Contains(out, warn) || strings.Count(out, "warning: ") != 2 {
		t.Errorf("want 2 warnings for jail sshd, one being\n%s\ngot:\n%s", warn, out)
	}
	code, out, _ = cli(t, "", "--config", dir, "check", "--json")
	var rows []checkRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != exitOK {
		t.Fatalf("check --json: exit %d, %v\n%s", code, err, out)
	}
	for _, r := range rows {
		if n := len(r.Warnings); (r.Jail == "sshd") != (n == 2) || (r.Jail != "sshd" && n != 0) {
			t.Errorf("jail %s: warnings %q", r.Jail, r.Warnings)
		}
	}
}
