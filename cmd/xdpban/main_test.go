package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/syncbuf"
)

// TestMain lets the test binary be the xdpban binary: the namespace tests
// start it as a daemon (`nsenter --net=... xdpban.test run ...`) so it
// can be killed with SIGKILL like the real thing.
func TestMain(m *testing.M) {
	if os.Getenv("XDPBAN_TEST_AS_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// cli runs one xdpban command in-process and returns its exit code and
// output.
func cli(t testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin),
		getenv: func(string) string { return "" }, ctx: context.Background()}
	code = run(e, args)
	return code, out.String(), errb.String()
}

func TestBadInputExitCodes(t *testing.T) {
	empty := t.TempDir()
	paths := []string{"--socket", empty + "/none.sock", "--pin-path", empty + "/pins", "--state-dir", empty}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ban", "300.1.2.3"}, `xdpban: ban: invalid address "300.1.2.3"`},
		{[]string{"ban", "10.0.0.0/33"}, `xdpban: ban: invalid CIDR "10.0.0.0/33"`},
		{[]string{"ban", "fe80::1%eth0"}, `cannot be banned`},
		{[]string{"ban"}, "xdpban: ban: no address"},
		{[]string{"ban", "192.0.2.1", "--for", "banana"}, `xdpban: ban: --for: invalid ban duration "banana"`},
		{[]string{"ban", "192.0.2.1", "--for", "-5m"}, `invalid ban duration "-5m"`},
		{[]string{"ban", "192.0.2.1", "--jail", "a b"}, `invalid jail name "a b"`},
		{[]string{"ban", "192.0.2.1", "--from-file", "x"}, "not both"},
		{[]string{"ban", "--nope"}, "xdpban: ban: flag provided but not defined: -nope: see 'xdpban ban --help'"},
		{[]string{"ban", "192.0.2.1", "--jail", ""}, "--jail: empty jail name"},
		{[]string{"status", ""}, "xdpban: status: empty jail name"},
		{[]string{"ban", "0.0.0.0/0"}, "xdpban: ban: 0.0.0.0/0 is too wide a ban"},
		{[]string{"ban", "10.0.0.0/4"}, "xdpban: ban: 0.0.0.0/4 (normalised from 10.0.0.0/4: host bits cleared) is too wide a ban"},
		{[]string{"ban", "192.0.2.1", "::/1"}, "::/1 is too wide a ban"},
		{[]string{"reload", ""}, "xdpban: reload: empty jail name"},
		{[]string{"unban"}, "xdpban: unban: no address"},
		{[]string{"unban", "--all", "192.0.2.1"}, "not both"},
		{[]string{"unban", "2001:db8::/129"}, `invalid CIDR "2001:db8::/129"`},
		{[]string{"list", "extra"}, `invalid address "extra"`},
		{[]string{"list", "192.0.2.1", "extra"}, `unexpected argument "extra"`},
		{[]string{"status", "a", "b"}, "usage: xdpban status"},
		{[]string{"frobnicate"}, `xdpban: unknown command "frobnicate"`},
		{[]string{"run", "--backend", "nft"}, `--backend "nft"`},
		{[]string{"run", "--iface", "nosuch0", "--log-level", "loud"}, `log level "loud"`},
		{[]string{"run", "--iface", "nosuch0"}, `interface "nosuch0": no such interface`},
	}
	for _, c := range cases {
		code, out, errs := cli(t, "", append(append([]string{}, paths...), c.args...)...)
		if code != exitUsage {
			t.Errorf("xdpban %s: exit %d, want 2 (stderr %q)", strings.Join(c.args, " "), code, errs)
		}
		if !strings.Contains(errs, c.want) {
			t.Errorf("xdpban %s: stderr %q lacks %q", strings.Join(c.args, " "), errs, c.want)
		}
		if n := strings.Count(errs, "\n"); n != 1 {
			t.Errorf("xdpban %s: %d stderr lines, want one: %q", strings.Join(c.args, " "), n, errs)
		}
		if out != "" {
			t.Errorf("xdpban %s: stdout %q on bad input", strings.Join(c.args, " "), out)
		}
	}
}

func TestFromFileReportsEveryBadLine(t *testing.T) {
	empty := t.TempDir()
	in := "192.0.2.1\n# a comment\n\n300.1.2.3\n198.51.100.0/24 # trailing comment\n10.0.0.0/33\n"
	code, out, errs := cli(t, in, "--socket", empty+"/none.sock", "--pin-path", empty+"/pins", "ban", "--from-file", "-")
	if code != exitUsage {
		t.Fatalf("exit %d, want 2; stderr %q", code, errs)
	}
	for _, want := range []string{
		`standard input: line 4: invalid address "300.1.2.3"`,
		`standard input: line 6: invalid CIDR "10.0.0.0/33"`,
		"2 bad lines; nothing was banned",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if out != "" {
		t.Errorf("stdout %q", out)
	}
	// One bad line is named once, then the summary says how many.
	_, _, errs = cli(t, "192.0.2.1\n300.1.2.3\n", "--socket", empty+"/none.sock", "--pin-path", empty+"/pins", "ban", "--from-file", "-")
	if strings.Count(errs, `invalid address "300.1.2.3"`) != 1 || !strings.Contains(errs, "standard input: 1 bad line; nothing was banned") {
		t.Errorf("one bad line:\n%s", errs)
	}
	// A byte-order mark and CRLF line ends (a list saved on Windows) are
	// not bad lines: the only error left is the missing daemon.
	code, _, errs = cli(t, "\ufeff192.0.2.1\r\n198.51.100.0/24 \r\n", "--socket", empty+"/none.sock", "--pin-path", empty+"/pins", "ban", "--from-file", "-")
	if code != exitFailure || strings.Contains(errs, "bad line") || !strings.Contains(errs, "no daemon answers") {
		t.Fatalf("BOM and CRLF: exit %d, %q", code, errs)
	}
	code, _, errs = cli(t, "# nothing\n\n", "--socket", empty+"/none.sock", "ban", "--from-file", "-")
	if code != exitUsage || !strings.Contains(errs, "no addresses in it") {
		t.Fatalf("empty file: exit %d, %q", code, errs)
	}
	code, _, errs = cli(t, "", "--socket", empty+"/none.sock", "ban", "--from-file", empty+"/missing.txt")
	if code != exitUsage || !strings.Contains(errs, "missing.txt") {
		t.Fatalf("missing file: exit %d, %q", code, errs)
	}
}

func TestNotRoot(t *testing.T) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		geteuid: func() int { return 1000 }}
	for _, args := range [][]string{{"ban", "192.0.2.1"}, {"list"}, {"run", "--iface", "lo"}, {"detach"}} {
		errb.Reset()
		if code := run(e, args); code != exitUsage {
			t.Errorf("%v as uid 1000: exit %d, want 2", args, code)
		}
		if !strings.Contains(errb.String(), "needs root") || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v as uid 1000: stderr %q", args, errb.String())
		}
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := cli(t, "", "help")
	if code != 0 {
		t.Fatal(code)
	}
	for _, c := range commands {
		if !strings.Contains(out, "  "+c.name) {
			t.Errorf("help lacks %s", c.name)
		}
	}
	if code, _, errs := cli(t, ""); code != exitUsage || !strings.Contains(errs, "usage:") {
		t.Fatalf("no command: %d %q", code, errs)
	}
}

func TestCommandHelp(t *testing.T) {
	code, out, errs := cli(t, "", "ban", "--help")
	if code != exitOK || errs != "" {
		t.Fatalf("ban --help: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"xdpban ban:", "all or nothing", "-for DURATION", "-from-file FILE", "-jail NAME"} {
		if !strings.Contains(out, want) {
			t.Errorf("ban --help lacks %q:\n%s", want, out)
		}
	}
}

// jailConf makes a configuration directory holding jail.local (and no
// ban log), for commands that read one.
func jailConf(t *testing.T, jails string) string {
	t.Helper()
	dir := t.TempDir()
	writeConf(t, dir, "xdpban.local", "[xdpban]\nbanlog = none\n")
	writeConf(t, dir, "jail.local", jails)
	return dir
}

func TestRunRefusesBrokenFilterAsBadInput(t *testing.T) {
	logf := t.TempDir() + "/auth.log"
	os.WriteFile(logf, nil, 0o644)
	conf := jailConf(t, "[web]\nenabled = true\nfilter = nosuchfilter\nlogpath = "+logf+"\n")
	code, out, errs := cli(t, "", "run", "--dry-run", "--config", conf, "--socket", t.TempDir()+"/s.sock")
	if code != exitUsage || !strings.Contains(errs, conf+`/jail.local:3: [web] filter = "nosuchfilter"`) || !strings.Contains(errs, `"nosuchfilter"`) ||
		strings.Count(errs, "\n") != 1 || out != "" {
		t.Fatalf("run with a missing filter: exit %d, stdout %q, stderr %q; want exit 2 and one line naming jail.local:3, its filter line", code, out, errs)
	}
}

func TestRunSocketPathNamingAFile(t *testing.T) {
	conf := jailConf(t, "[sshd]\nenabled = false\n")
	victim := conf + "/jail.local"
	code, _, errs := cli(t, "", "run", "--dry-run", "--config", conf, "--socket", victim)
	if code != exitUsage || !strings.Contains(errs, "socket "+victim+" exists and is not a socket") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("run --socket on a file: exit %d, %q", code, errs)
	}
	if b, err := os.ReadFile(victim); err != nil || !strings.Contains(string(b), "[sshd]") {
		t.Fatalf("the file named by --socket was touched: %q %v", b, err)
	}
}

func TestRunLogsUnusedSettings(t *testing.T) {
	logf := t.TempDir() + "/auth.log"
	os.WriteFile(logf, nil, 0o644)
	conf := jailConf(t, "[sshd]\nenabled = true\nlogpath = "+logf+"\nmaxretyr = 3\n")
	var out, errb syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, ctx: ctx}
	done := make(chan int, 1)
	go func() {
		done <- run(e, []string{"run", "--dry-run", "--config", conf, "--socket", t.TempDir() + "/s.sock"})
	}()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(errb.String(), "xdpban running") {
		select {
		case code := <-done:
			t.Fatalf("daemon exited %d: %s", code, errb.String())
		case <-deadline:
			t.Fatalf("daemon not running after 10s: %s", errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d", code)
	}
	// The misspelt key is named with its file and line in the daemon's own
	// log, not only by `xdpban check`.
	if !strings.Contains(errb.String(), "configuration setting not used") || !strings.Contains(errb.String(), "jail.local:4: maxretyr") {
		t.Fatalf("daemon log does not report the unused maxretyr:\n%s", errb.String())
	}
}

func TestStuckDaemonIsNamed(t *testing.T) {
	sock := t.TempDir() + "/s.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Accepts and never answers: a daemon stopped with SIGSTOP.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	old := pingTimeout
	pingTimeout = 200 * time.Millisecond
	defer func() { pingTimeout = old }()
	code, out, errs := cli(t, "", "--socket", sock, "list")
	if code != exitFailure || out != "" || strings.Count(errs, "\n") != 1 ||
		!strings.Contains(errs, "the daemon on "+sock+" does not answer") || !strings.Contains(errs, "restart it") {
		t.Fatalf("stuck daemon: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
