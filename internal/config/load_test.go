package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestLoadDefaults(t *testing.T) {
	present, err := filepath.Abs("testdata/fail2ban/log/nginx-error.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		authLog     string
		wantBackend string
	}{
		{filepath.Join(t.TempDir(), "missing.log"), "journal"},
		{present, "auto"},
	} {
		old := authLog
		authLog = tc.authLog
		c, err := Load("")
		authLog = old
		if err != nil {
			t.Fatal(err)
		}
		want := Daemon{
			Backend: "auto", PinPath: "/sys/fs/bpf/xdpban", Socket: "/run/xdpban/xdpban.sock", SocketMaxConns: 128,
			StateDir: "/var/lib/xdpban", BanLog: "/var/log/xdpban/xdpban.log", IPv6Prefix: 64,
			LogFormat: "text", LogLevel: "info", DBPurgeAge: 24 * time.Hour, DropLogRate: 1,
			DropLogGlobal: 100, Chains: []string{"INPUT"}, BlockType: "DROP",
		}
		if !reflect.DeepEqual(c.Daemon, want) {
			t.Errorf("daemon defaults:\n got %+v\nwant %+v", c.Daemon, want)
		}
		var names []string
		for _, j := range c.Jails {
			names = append(names, j.Name)
		}
		wantNames := []string{"sshd", "recidive", "apache-auth", "nginx-http-auth", "nginx-limit-req", "vsftpd", "postfix", "postfix-sasl", "postfix-rbl", "dovecot"}
		if !reflect.DeepEqual(names, wantNames) || len(c.Enabled()) != 1 {
			t.Fatalf("shipped jails = %v (%d enabled), want %v with only sshd enabled", names, len(c.Enabled()), wantNames)
		}
		// fail2ban's postfix jails and modes.
		if pf, _ := c.Jail("postfix"); pf.Filter != "postfix[mode=more]" || !reflect.DeepEqual(pf.LogPaths, []string{"/var/log/mail.log"}) {
			t.Errorf("shipped postfix jail: %+v", pf)
		}
		if pf, _ := c.Jail("postfix-sasl"); pf.Filter != "postfix[mode=auth]" || !reflect.DeepEqual(pf.LogPaths, []string{"/var/log/mail.log"}) {
			t.Errorf("shipped postfix-sasl jail: %+v", pf)
		}
		ssh := c.Jails[0]
		if ssh.Name != "sshd" || !ssh.Enabled || ssh.MaxRetry != 5 || ssh.FindTime != 10*time.Minute ||
			ssh.BanTime != time.Hour || !ssh.Increment.Enabled || ssh.Increment.Factor != 1 ||
			ssh.FilterName != "sshd" || ssh.Port != "ssh" || ssh.Protocol != "tcp" || !ssh.IgnoreSelf {
			t.Errorf("default sshd jail: %+v", ssh)
		}
		if ssh.Backend != tc.wantBackend || !reflect.DeepEqual(ssh.LogPaths, []string{tc.authLog}) ||
			!reflect.DeepEqual(ssh.JournalMatch, []string{"_SYSTEMD_UNIT=sshd.service + _SYSTEMD_UNIT=ssh.service + _COMM=sshd + _COMM=sshd-session + _COMM=sshd-auth"}) {
			t.Errorf("auth log %s: backend %q logpaths %v journalmatch %v, want backend %q",
				tc.authLog, ssh.Backend, ssh.LogPaths, ssh.JournalMatch, tc.wantBackend)
		}
		rec := c.Jails[1]
		if rec.Name != "recidive" || rec.Enabled || rec.FilterName != "recidive" || rec.Backend != "file" ||
			!reflect.DeepEqual(rec.LogPaths, []string{"/var/log/xdpban/xdpban.log"}) || rec.BanTime != 7*24*time.Hour ||
			rec.FindTime != 24*time.Hour || rec.Port != "" || rec.Protocol != "all" {
			t.Errorf("default recidive jail: %+v", rec)
		}
		if len(c.FilterDirs) != 0 || len(ssh.Notes) != 0 || len(rec.Notes) != 0 {
			t.Errorf("FilterDirs %v notes %v %v, want none", c.FilterDirs, ssh.Notes, rec.Notes)
		}
	}
}

func TestLoadOwnTree(t *testing.T) {
	c, err := Load("testdata/own")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Daemon
	if d.Backend != "xdp" || !reflect.DeepEqual(d.Interfaces, []string{"veth0", "veth1"}) || d.IPv6Prefix != 56 ||
		d.MetricsListen != "127.0.0.1:9108" || d.LogFormat != "json" || d.LogLevel != "debug" ||
		!reflect.DeepEqual(d.Chains, []string{"INPUT", "DOCKER-USER"}) || d.BlockType != "REJECT" ||
		d.BanLog != "none" || d.MapSizes.V4 != 4096 || d.MapSizes.V6 != 0 || d.DBPurgeAge != 48*time.Hour ||
		!d.LogDrops || d.DropLogRate != 5 || d.PinPath != "/sys/fs/bpf/xdpban" {
		t.Errorf("daemon from xdpban.local: %+v", d)
	}
	if !reflect.DeepEqual(c.FilterDirs, []string{"testdata/own/filter.d"}) {
		t.Errorf("FilterDirs = %v", c.FilterDirs)
	}
	wantFiles := []string{"(built-in)/xdpban.conf", "testdata/own/xdpban.local", "(built-in)/jail.conf",
		"testdata/own/jail.d/web.conf", "testdata/own/jail.local", "testdata/own/jail.d/web.local"}
	if !reflect.DeepEqual(c.Files, wantFiles) {
		t.Errorf("Files:\n got %v\nwant %v", c.Files, wantFiles)
	}
	ssh, _ := c.Jail("sshd")
	if ssh.MaxRetry != 3 || ssh.FindTime != 90*time.Minute || ssh.BanTime != -1 {
		t.Errorf("sshd counting: maxretry %d findtime %v bantime %v", ssh.MaxRetry, ssh.FindTime, ssh.BanTime)
	}
	if !reflect.DeepEqual(ssh.IgnoreIP, prefixes("192.0.2.0/24", "2001:db8:1::/48")) {
		t.Errorf("ignoreip = %v", ssh.IgnoreIP)
	}
	wantActs := []Action{
		{Kind: "mail", Options: map[string]string{"to": "root@example.org", "relay": "smtp.example.org:25"}},
		{Kind: "webhook", Options: map[string]string{"url": "http://192.0.2.10/hook", "header": "X-Token: a,b"}},
	}
	if !reflect.DeepEqual(ssh.Actions, wantActs) {
		t.Errorf("actions:\n got %+v\nwant %+v", ssh.Actions, wantActs)
	}
	if len(ssh.Replaced) != 0 {
		t.Errorf("shipped action_mwl is empty, yet Replaced = %v", ssh.Replaced)
	}
	if ssh.RateLimit != (RateLimit{Rate: 20, Per: time.Second, Burst: 40, BanAfter: time.Minute}) {
		t.Errorf("ratelimit = %+v", ssh.RateLimit)
	}
	web, ok := c.Jail("web")
	if !ok {
		t.Fatal("jail web from jail.d/web.conf missing")
	}
	if !web.Enabled || web.FilterName != "nginx-http-auth" ||
		!reflect.DeepEqual(web.FilterArgs, map[string]string{"mode": "aggressive", "extra": "a b"}) ||
		!reflect.DeepEqual(web.LogPaths, []string{"/var/log/nginx/error.log", "/var/log/nginx/*/error.log"}) ||
		web.Port != "http,https,8000:8100,8443" || web.MaxRetry != 10 ||
		!reflect.DeepEqual(web.FilterOptions, map[string]string{"failregex": "^custom <HOST>$", "maxlines": "2"}) {
		t.Errorf("web jail: %+v", web)
	}
	if !strings.HasPrefix(web.Source, "testdata/own/jail.d/web.conf:1") {
		t.Errorf("web Source = %q", web.Source)
	}
}

// TestJailErrors checks every refused value names file:line, the key and
// the reason.
func TestJailErrors(t *testing.T) {
	cases := []struct {
		name, local, want string
		line              int
	}{
		{"maxretry word", "[sshd]\nmaxretry = many\n", `maxretry = "many": want a whole number`, 2},
		{"maxretry zero", "[sshd]\nmaxretry = 0\n", "out of range", 2},
		{"maxtracked zero", "[sshd]\nmaxtracked = 0\n", "out of range", 2},
		{"findtime bad", "[sshd]\nfindtime = 10x\n", `unknown unit "x"`, 2},
		{"findtime negative", "[sshd]\nfindtime = -1\n", "must not be negative", 2},
		{"bantime zero", "[sshd]\nbantime = 0\n", "longer than 0", 2},
		{"enabled word", "[sshd]\nenabled = maybe\n", "want true or false", 2},
		{"factor", "[sshd]\nbantime.factor = -2\n", "above 0", 2},
		{"maxtime", "[sshd]\nbantime.maxtime = soon\n", "expected a number", 2},
		{"ignoreip host", "[sshd]\nignoreip = 192.0.2.1 example.com\n", "never resolves host names", 2},
		{"ignoreip cidr", "[sshd]\nignoreip = 192.0.2.0/33\n", "not a CIDR", 2},
		{"port", "[sshd]\nport = ssh;http\n", "not a port", 2},
		{"port range", "[sshd]\nport = 2000:1000\n", "N <= M", 2},
		{"protocol", "[sshd]\nprotocol = sctp\n", "want tcp, udp or all", 2},
		{"backend", "[sshd]\nbackend = gamin2\n", "want auto, file or journal", 2},
		{"journal without match", "[sshd]\nbackend = journal\njournalmatch =\n", "needs journalmatch", 2},
		{"file without logpath", "[x]\nfilter = sshd\nbackend = file\n", "needs logpath", 3},
		{"no source", "[x]\nfilter = sshd\n", "no logpath and no journalmatch", 2},
		{"filter syntax", "[sshd]\nfilter = sshd[mode=\n", "closing ']'", 2},
		{"filter path", "[sshd]\nfilter = ../../etc/passwd\n", "plain name", 2},
		{"filter empty", "[x]\nlogpath = /x\nfilter =\n", "no filter", 3},
		{"action syntax", "[sshd]\naction = mail[=a@example.org]\n", "expected key=value", 2},
		{"ratelimit", "[sshd]\nratelimit = fast\n", "N/period", 2},
		{"ratelimit burst", "[sshd]\nratelimit = 10/s,burst=x\n", "burst", 2},
		{"ratelimit period", "[sshd]\nratelimit = 10/0s\n", "period", 2},
		{"banafter alone", "[sshd]\nratelimit.banafter = 1m\n", "needs ratelimit", 2},
		{"maxlines", "[sshd]\nmaxlines = 0\n", "from 1 to 1000", 2},
		{"relative logpath", "[sshd]\nlogpath = /var/log/a.log\n  var/log/auth.log\n", "not an absolute path", 2},
		{"journalmatch term", "[sshd]\njournalmatch = _SYSTEMD_UNIT sshd.service\n", "not a journal match", 2},
		{"journalmatch lower", "[sshd]\njournalmatch = _systemd_unit=sshd.service\n", "upper-case field names", 2},
		{"interpolation", "[sshd]\nlogpath = %(nowhere)s\n", "%(nowhere)s is not defined", 2},
		{"syntax", "[sshd]\nmaxretry\n", "neither a [section]", 2},
		{"filter via mode", "[sshd]\nenabled = true\nmode = aggressive]\n", `[sshd] mode = "aggressive]", used in filter = "sshd[mode=aggressive]]": reference`, 3},
		{"logpath via default", "[DEFAULT]\nsshd_log = var/log/auth.log\n[sshd]\nenabled = true\nbackend = file\n", `[sshd] sshd_log = "var/log/auth.log", used in logpath = "var/log/auth.log": `, 2},
		{"unterminated header", "[sshd\nenabled = true\n", `"[sshd" is a section header without its closing "]": write [sshd]`, 1},
		{"default bad", "[DEFAULT]\nbantime = forever\n", "[sshd] bantime", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(c.local), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			wantPos := filepath.Join(dir, "jail.local") + ":" + strconv.Itoa(c.line) + ":"
			if !strings.HasPrefix(err.Error(), wantPos) {
				t.Errorf("error %q does not start with %s", err, wantPos)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestDaemonErrors(t *testing.T) {
	cases := []struct{ local, want string }{
		{"backend = ebpf", "want one of auto, xdp, nftables, iptables"},
		{"ipv6_prefix = 32", "out of range: use a length from 48 to 128"},
		{"ipv6_prefix = wide", "whole number"},
		{"pin_path = relative/dir", "absolute path"},
		{"metrics_listen = 9108", "HOST:PORT"},
		{"metrics_listen = 127.0.0.1:http", "HOST:PORT"},
		{"log_format = xml", "text, json"},
		{"log_level = loud", "debug, info, warn, error"},
		{"dbpurgeage = -1", "must not be negative"},
		{"log_drops = sometimes", "true or false"},
		{"drop_log_rate = -1", "out of range"},
		{"chains = INPUT bad/chain", "not a chain name"},
		{"chains =", "at least one chain"},
		{"blocktype = TARPIT", "DROP or REJECT"},
		{"interfaces = eth0 this-name-is-too-long", "not an interface name"},
		{"map_size_v4 = -5", "out of range"},
		{"socket_max_connections = 2", "out of range: want 4 to 65536"},
		{"socket_max_connections = many", "whole number"},
		{"bantime = 1h", "unknown setting"},
	}
	for _, c := range cases {
		t.Run(c.local, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "xdpban.local"), []byte("[xdpban]\n"+c.local+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), filepath.Join(dir, "xdpban.local")+":2: [xdpban]") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want xdpban.local:2 and %q", err, c.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing directory: %v, want ErrNotExist", err)
	}
}

// TestJailDirOrder: jail.conf, jail.d/*.conf (sorted), jail.local,
// jail.d/*.local (sorted): the last file setting a key wins.
func TestJailDirOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("jail.d/b.conf", "[sshd]\nmaxretry = 2\nfindtime = 2m\nbantime = 2h\nport = 2\n")
	write("jail.d/a.conf", "[sshd]\nmaxretry = 1\nfindtime = 1m\nbantime = 1h\nport = 1\n")
	write("jail.local", "[sshd]\nfindtime = 3m\nbantime = 3h\nport = 3\n")
	write("jail.d/a.local", "[sshd]\nbantime = 4h\nport = 4\n")
	write("jail.d/b.local", "[sshd]\nport = 5\n")
	write("jail.d/.swp.local", "[sshd]\nport = 99\n")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := c.Jail("sshd")
	if j.MaxRetry != 2 || j.FindTime != 3*time.Minute || j.BanTime != 4*time.Hour || j.Port != "5" {
		t.Errorf("order: maxretry %d findtime %v bantime %v port %s; want 2 3m 4h 5", j.MaxRetry, j.FindTime, j.BanTime, j.Port)
	}
}

func TestCopiedFail2banActions(t *testing.T) {
	dir := t.TempDir()
	local := "[sshd]\naction = iptables-allports[name=SSH, protocol=tcp]\n         mail[to=a@example.org]\n"
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := c.Jail("sshd")
	if !reflect.DeepEqual(j.Replaced, []string{"iptables-allports[name=SSH, protocol=tcp]"}) || j.Port != "" ||
		len(j.Actions) != 1 || j.Actions[0].Kind != "mail" {
		t.Errorf("replaced %v port %q actions %+v", j.Replaced, j.Port, j.Actions)
	}
	if len(j.Notes) != 1 || !strings.Contains(j.Notes[0], "jail.local:2: action: replaced by xdpban's enforcement") {
		t.Errorf("notes = %q", j.Notes)
	}
}

// Debian's newer default: banaction_allports = nftables[type=allports].
func TestAllportsByType(t *testing.T) {
	dir := t.TempDir()
	local := "[sshd]\naction = nftables[type=allports][port=\"ssh\", protocol=\"tcp\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := c.Jail("sshd"); j.Port != "" || len(j.Replaced) != 1 {
		t.Errorf("port %q replaced %q, want all ports", j.Port, j.Replaced)
	}
}

func TestLoadFail2banTree(t *testing.T) {
	c, err := LoadFail2ban("testdata/fail2ban")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.FilterDirs, []string{"testdata/fail2ban/filter.d"}) {
		t.Errorf("FilterDirs = %v", c.FilterDirs)
	}
	var names []string
	for _, j := range c.Enabled() {
		names = append(names, j.Name)
	}
	if !reflect.DeepEqual(names, []string{"sshd", "nginx-http-auth", "postfix", "recidive"}) {
		t.Errorf("enabled jails = %v", names)
	}
	if j, ok := c.Jail("apache-auth"); !ok || j.Enabled {
		t.Errorf("disabled apache-auth: %+v %v", j, ok)
	}
	var broken []string
	for _, b := range c.Broken {
		broken = append(broken, b.Name+": "+b.Err.Error())
	}
	if len(broken) != 2 || !strings.Contains(broken[0], `broken: testdata/fail2ban/jail.local:28: [broken] maxretry = "many"`) ||
		!strings.Contains(broken[1], "nofilter: testdata/fail2ban/jail.conf:15: [nofilter] filter = \"nofilter[mode=normal]\": no nofilter.conf") {
		t.Errorf("broken = %q", broken)
	}
	allIgnored := prefixes("127.0.0.0/8", "::1/128", "192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32")

	ssh, _ := c.Jail("sshd")
	if ssh.Filter != "sshd[mode=aggressive]" || ssh.BanTime != time.Hour || !ssh.Increment.Enabled ||
		ssh.Increment.Factor != 2 || ssh.Increment.MaxTime != 5*7*24*time.Hour || ssh.Port != "ssh" {
		t.Errorf("sshd: %+v", ssh)
	}
	// No auth.log: the journal, with the filter's journalmatch (its
	// %(_daemon)s resolved as fail2ban does).
	if ssh.Backend != "journal" || !reflect.DeepEqual(ssh.JournalMatch, []string{"_SYSTEMD_UNIT=sshd.service + _COMM=sshd"}) {
		t.Errorf("sshd backend %q journalmatch %q", ssh.Backend, ssh.JournalMatch)
	}
	if !reflect.DeepEqual(ssh.IgnoreIP, allIgnored) {
		t.Errorf("sshd ignoreip = %v", ssh.IgnoreIP)
	}
	wantReplaced := []string{
		`iptables-multiport[port="ssh", protocol="tcp", chain="<known/chain>"]`,
		`sendmail-whois-lines[sender="root@<fq-hostname>", dest="root@localhost", logpath="/nonexistent/auth.log", chain="<known/chain>"]`,
	}
	if !reflect.DeepEqual(ssh.Replaced, wantReplaced) {
		t.Errorf("sshd replaced:\n got %q\nwant %q", ssh.Replaced, wantReplaced)
	}
	notes := strings.Join(ssh.Notes, "\n")
	for _, w := range []string{
		`jail.local:11: bantime.formula: not supported`,
		`"example.com" not used`,
		"no file matches /nonexistent/auth.log: reading the journal",
		"action: replaced by xdpban's enforcement, not executed",
	} {
		if !strings.Contains(notes, w) {
			t.Errorf("sshd notes lack %q:\n%s", w, notes)
		}
	}

	ng, _ := c.Jail("nginx-http-auth")
	if ng.Backend != "auto" || !reflect.DeepEqual(ng.LogPaths, []string{"testdata/fail2ban/log/nginx-error.log"}) ||
		ng.Port != "http,https" || ng.MaxRetry != 5 || ng.FindTime != 10*time.Minute || len(ng.JournalMatch) != 0 {
		t.Errorf("nginx-http-auth: %+v", ng)
	}
	pf, _ := c.Jail("postfix")
	if pf.Backend != "journal" || pf.Filter != "postfix[mode=more]" ||
		!reflect.DeepEqual(pf.JournalMatch, []string{"_SYSTEMD_UNIT=postfix.service", "_SYSTEMD_UNIT=postfix@-.service"}) ||
		pf.Port != "smtp,465,submission" {
		t.Errorf("postfix: %+v", pf)
	}
	rec, _ := c.Jail("recidive")
	if !reflect.DeepEqual(rec.LogPaths, []string{"/var/log/xdpban/xdpban.log"}) || !strings.Contains(strings.Join(rec.Notes, "\n"), "/var/log/fail2ban.log is fail2ban's log: reading xdpban's ban log /var/log/xdpban/xdpban.log") {
		t.Errorf("recidive not redirected to xdpban's ban log: %v %q", rec.LogPaths, rec.Notes)
	}
	if rec.Port != "" || rec.BanTime != 7*24*time.Hour || rec.FindTime != 24*time.Hour ||
		!reflect.DeepEqual(rec.Replaced, []string{`iptables-allports[port="0:65535", protocol="tcp", chain="<known/chain>"]`}) {
		t.Errorf("recidive: port %q replaced %q %+v", rec.Port, rec.Replaced, rec)
	}
	if !reflect.DeepEqual(c.Daemon.Chains, []string{"INPUT", "DOCKER-USER"}) ||
		!strings.Contains(strings.Join(ng.Notes, "\n"), "chain: xdpban's iptables backend bans in daemon-wide chains: DOCKER-USER added") {
		t.Errorf("chain = DOCKER-USER in a jail: daemon chains %v, notes %q", c.Daemon.Chains, ng.Notes)
	}
	d := c.Daemon
	d.BanLog = "/var/log/other-ban.log"
	d.Chains = []string{"FORWARD"}
	c.SetDaemon(d)
	if !reflect.DeepEqual(c.Daemon.Chains, []string{"FORWARD", "DOCKER-USER"}) {
		t.Errorf("SetDaemon chains = %v, want FORWARD DOCKER-USER", c.Daemon.Chains)
	}
	if rec, _ := c.Jail("recidive"); !reflect.DeepEqual(rec.LogPaths, []string{"/var/log/other-ban.log"}) {
		t.Errorf("SetDaemon left recidive on %v", rec.LogPaths)
	}
	if c.Daemon.Backend != "auto" || c.Daemon.DBPurgeAge != 24*time.Hour {
		t.Errorf("daemon: %+v", c.Daemon)
	}
}

// TestRealFail2ban reads Debian's /etc/fail2ban as installed by the
// fail2ban package: every enabled jail must translate.
func TestRealFail2ban(t *testing.T) {
	const dir = DefaultFail2banDir
	if _, err := os.Stat(filepath.Join(dir, "jail.conf")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s/jail.conf missing in CI: install the fail2ban package", dir)
		}
		t.Skipf("%s/jail.conf missing: install fail2ban to run this test", dir)
	}
	c, err := LoadFail2ban(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Broken) != 0 {
		t.Errorf("broken jails in the stock tree: %+v", c.Broken)
	}
	if len(c.Jails) < 50 {
		t.Errorf("only %d jails read from the stock jail.conf", len(c.Jails))
	}
	ssh, ok := c.Jail("sshd")
	if !ok || !ssh.Enabled {
		t.Fatalf("sshd not enabled (jail.d/defaults-debian.conf enables it): %+v", ssh)
	}
	if ssh.FilterName != "sshd" || ssh.Port != "ssh" || ssh.MaxRetry < 1 || len(ssh.Replaced) == 0 ||
		!reflect.DeepEqual(ssh.JournalMatch, []string{"_SYSTEMD_UNIT=sshd.service + _COMM=sshd"}) {
		t.Errorf("stock sshd: %+v", ssh)
	}
	if _, err := os.Stat("/var/log/auth.log"); err == nil && ssh.Backend == "journal" {
		t.Errorf("auth.log exists but sshd reads the journal")
	}
}

// A host without /var/log/auth.log reads sshd from the journal, unless
// jail.local points sshd at a file: then that file is followed.
func TestSSHDLogpathOverridesJournalDefault(t *testing.T) {
	old := authLog
	authLog = filepath.Join(t.TempDir(), "missing.log")
	defer func() { authLog = old }()
	dir := t.TempDir()
	logf := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nlogpath = "+logf+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ssh, _ := c.Jail("sshd")
	if ssh.Backend != "auto" || !reflect.DeepEqual(ssh.LogPaths, []string{logf}) {
		t.Fatalf("sshd with logpath %s: backend %q logpaths %v, want auto on the file", logf, ssh.Backend, ssh.LogPaths)
	}
}

func TestDirectoryWhereFileExpected(t *testing.T) {
	for _, c := range []struct{ dir, file, want string }{
		{"jail.local", "", "jail.local is a directory where a configuration file is expected"},
		{"jail.d/ssh.local", "", "ssh.local is a directory where a configuration file is expected"},
		{"xdpban.conf", "", "xdpban.conf is a directory where a configuration file is expected"},
		{"", "jail.d", "jail.d is a file, not a directory"},
	} {
		dir := t.TempDir()
		if c.dir != "" {
			if err := os.MkdirAll(filepath.Join(dir, c.dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if c.file != "" {
			if err := os.WriteFile(filepath.Join(dir, c.file), []byte("[sshd]\nenabled = false\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s%s: Load error %v, want %q", c.dir, c.file, err, c.want)
		}
	}
	dir := t.TempDir()
	if err := os.Symlink("/nonexistent/jail.local", filepath.Join(dir, "jail.local")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "jail.local links to /nonexistent/jail.local, which cannot be read") {
		t.Errorf("dangling jail.local symlink: %v", err)
	}
}

func TestOperatorLogpathNotYetThereIsFollowed(t *testing.T) {
	old := authLog
	authLog = filepath.Join(t.TempDir(), "missing.log")
	defer func() { authLog = old }()
	dir := t.TempDir()
	glob := filepath.Join(dir, "logs", "sshd-*.log")
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = true\nlogpath = "+glob+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ssh, _ := c.Jail("sshd")
	// The operator named files: they are watched for, not swapped for the
	// journal behind the operator's back, and the wait is reported.
	if ssh.Backend != "auto" || !reflect.DeepEqual(ssh.LogPaths, []string{glob}) {
		t.Fatalf("sshd on a glob matching nothing yet: backend %q logpaths %v, want auto on %s", ssh.Backend, ssh.LogPaths, glob)
	}
	if notes := strings.Join(ssh.Notes, "\n"); !strings.Contains(notes, "jail.local:3: logpath: no file matches "+glob+" yet") {
		t.Fatalf("notes %q do not report the missing file", notes)
	}
	// The shipped default (%(sshd_log)s) on a host without it still reads
	// the journal.
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(dir); err != nil {
		t.Fatal(err)
	}
	if ssh, _ = c.Jail("sshd"); ssh.Backend != "journal" {
		t.Fatalf("default sshd without %s: backend %q, want journal", authLog, ssh.Backend)
	}
}

func TestLogpathDirectoryRefused(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = true\nlogpath = "+logs+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "jail.local:3") || !strings.Contains(err.Error(), logs+" is a directory: name the log files in it") {
		t.Fatalf("logpath naming a directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = true\nlogpath = /dev/zero\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "/dev/zero is a device, not a log file") {
		t.Fatalf("logpath naming a device: %v", err)
	}
	// A glob that also matches files is fine.
	os.WriteFile(filepath.Join(logs, "a.log"), nil, 0o644)
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = true\nlogpath = "+logs+"/*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err != nil {
		t.Fatalf("glob over files: %v", err)
	}
}

func TestJailMaxTracked(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[DEFAULT]\nmaxtracked = 5000\n[sshd]\nenabled = true\n[nginx-http-auth]\nmaxtracked = 20\n"), 0o644)
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, j := range cfg.Jails {
		got[j.Name] = j.MaxTracked
	}
	if got["sshd"] != 5000 || got["nginx-http-auth"] != 20 {
		t.Fatalf("maxtracked: %v, want sshd 5000 ([DEFAULT]) and nginx-http-auth 20", got)
	}
	cfg, err = Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if j := cfg.Jails[0]; j.MaxTracked != DefaultMaxTracked {
		t.Fatalf("%s: maxtracked %d without a setting, want %d", j.Name, j.MaxTracked, DefaultMaxTracked)
	}
}

func TestLoadFleet(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "xdpban.local"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[xdpban]\nstate_dir = /tmp/st\n[fleet]\nenabled = true\nlisten = 192.0.2.1:4222\nroutes = nats://192.0.2.2:6222, nats://192.0.2.3:6222\nnode = bastion-a\n")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Daemon.Fleet
	if !f.Enabled || f.Listen != "192.0.2.1:4222" || f.ClusterListen != "192.0.2.1:6222" || len(f.Routes) != 2 ||
		f.Node != "bastion-a" || f.Replicas != 3 || f.StoreDir != "" || f.Bucket != "xdpban-bans" {
		t.Errorf("fleet = %+v", f)
	}
	for _, bad := range []string{
		"[fleet]\nenabled = true\n",
		"[fleet]\nenabled = true\nservers = 192.0.2.1:4222\n",
		"[fleet]\nenabled = true\nservers = nats://192.0.2.1:4222\nnode = a:b\n",
		"[fleet]\nenabled = true\nservers = nats://192.0.2.1:4222\nroutes = nats://192.0.2.2:6222\n",
		"[fleet]\nenabled = true\nlisten = 192.0.2.1\n",
		"[fleet]\nenabled = true\nlisten = 192.0.2.1:4222\nreplica = 3\n",
		"[fleet]\nenabled = true\nlisten = 192.0.2.1:4222\nstore_dir = relative\n",
	} {
		write(bad)
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "[fleet]") {
			t.Errorf("%q: err = %v, want a [fleet] error", bad, err)
		}
	}
}

// banscope: xdpban's own jails ban all traffic unless banscope = port;
// a fail2ban tree's jail keeps the scope of its banaction.
func TestBanScope(t *testing.T) {
	dir := t.TempDir()
	local := "[sshd]\nenabled = true\n\n[web]\nenabled = true\nfilter = sshd\nlogpath = /dev/null\nbanscope = port\nport = http,https\n\n" +
		"[dns]\nenabled = true\nfilter = sshd\nlogpath = /dev/null\nbanscope = port\nprotocol = udp\nport = 53\n\n" +
		"[every]\nenabled = true\nfilter = sshd\nlogpath = /dev/null\nbanscope = port\nprotocol = all\nport = 0:65535\n"
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sshd": "all", "web": "tcp/80,443", "dns": "udp/53", "every": "all"} {
		j, ok := c.Jail(name)
		if !ok || j.Scope.String() != want {
			t.Errorf("own %s: banscope %q scope %q, want %q", name, j.BanScope, j.Scope, want)
		}
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "jail.local"), []byte("[sshd]\nbanscope = ports\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "banscope") || !strings.Contains(err.Error(), "want all") {
		t.Errorf("banscope = ports: err %v, want a banscope error saying all or port", err)
	}

	f, err := LoadFail2ban("testdata/fail2ban")
	if err != nil {
		t.Fatal(err)
	}
	// sshd and nginx-http-auth use iptables-multiport; recidive sets
	// banaction = %(banaction_allports)s.
	for name, want := range map[string]string{"sshd": "tcp/22", "nginx-http-auth": "tcp/80,443", "recidive": "all"} {
		j, ok := f.Jail(name)
		if !ok || j.Scope.String() != want {
			t.Errorf("fail2ban %s: banscope %q scope %q, want %q", name, j.BanScope, j.Scope, want)
		}
	}

	// Debian's newer banaction_allports is nftables[type=allports].
	tree := t.TempDir()
	conf := "[DEFAULT]\nfilter = sshd\nport = 0:65535\nbanaction = nftables-multiport\nbanaction_allports = nftables[type=allports]\n" +
		"action = %(banaction)s[port=\"%(port)s\"]\n\n" +
		"[sshd]\nenabled = true\nport = ssh\nlogpath = /dev/null\n\n" +
		"[recidive]\nenabled = true\nlogpath = /dev/null\nbanaction = %(banaction_allports)s\n"
	if err := os.WriteFile(filepath.Join(tree, "jail.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	sshdFilter, err := os.ReadFile("testdata/fail2ban/filter.d/sshd.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "filter.d", "sshd.conf"), sshdFilter, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := LoadFail2ban(tree)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sshd": "tcp/22", "recidive": "all"} {
		j, ok := g.Jail(name)
		if !ok || j.Scope.String() != want {
			t.Errorf("nftables tree %s: banscope %q scope %q, want %q (broken: %v)", name, j.BanScope, j.Scope, want, g.Broken)
		}
	}
}
