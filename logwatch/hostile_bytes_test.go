package logwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/filter"
)

// nginx logs the basic-auth user name as the client sent it
// (ngx_http_auth_basic_module: "user \"%V\": password mismatch"), so an
// attacker chooses the raw bytes of that field.
const nginxAuthFilter = `[Definition]
failregex = ^ \[error\] \d+#\d+: \*\d+ user "(?:[^"]+|.*?)":? (?:password mismatch|was not found in "[^\"]*"), client: <HOST>, server: \S*, request: "\S+ \S+ HTTP/\d+\.\d+", host: "\S+"(?:, referrer: "\S+")?\s*$
`

var hostileUsers = []string{
	"admin",          // plain
	"ad\xffmin",      // not UTF-8
	"r\xe9ot",        // Latin-1
	"\x1b[31mroot",   // ANSI escape
	"nul\x00user",    // NUL
	"bell\x07\x01",   // other C0 controls
	"tab\tuser",      // tab
	"trunc\xe2\x82",  // a truncated 3-byte sequence
	"\xc0\xafslash",  // overlong encoding
	"ok\u00e9\u4e2d", // valid non-ASCII
}

func hostileNginxLog(now time.Time) (string, []string) {
	var b strings.Builder
	var hosts []string
	for i, u := range hostileUsers {
		h := fmt.Sprintf("192.0.2.%d", 100+i)
		hosts = append(hosts, h)
		fmt.Fprintf(&b, "%s [error] 812#812: *%d user \"%s\": password mismatch, client: %s, server: example.org, request: \"GET /admin/ HTTP/1.1\", host: \"example.org\"\r\n",
			now.Format("2006/01/02 15:04:05"), i+1, u, h)
	}
	return b.String(), hosts
}

// TestHostileBytesMatchInRegexAndDaemonAlike runs the same hostile lines
// through `xdpban regex` (Replay) and the daemon's follower and jail:
// every failure counts in both, as in fail2ban.
func TestHostileBytesMatchInRegexAndDaemonAlike(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "filter.d", "nginx-auth.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	if err := os.WriteFile(conf, []byte(nginxAuthFilter), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := filter.Load([]string{dir}, "nginx-auth", nil)
	if err != nil {
		t.Fatal(err)
	}
	text, hosts := hostileNginxLog(time.Now())

	res, err := Replay(strings.NewReader(text), f.NewScanner(), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var replayHosts []string
	for _, h := range res.Hosts {
		replayHosts = append(replayHosts, h.Host)
	}
	sort.Strings(replayHosts)

	log := filepath.Join(dir, "error.log")
	appendFile(t, log, "")
	out := make(chan bans.Decision, 100)
	e := NewEngine(EngineOptions{Out: out, Rescan: 50 * time.Millisecond})
	t.Cleanup(e.StopAll)
	j := config.Jail{Name: "nginx", Enabled: true, LogPaths: []string{log}, MaxRetry: 1, FindTime: time.Hour, BanTime: time.Hour}
	if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: f.NewScanner}); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, text)
	var daemonHosts []string
	deadline := time.After(5 * time.Second)
wait:
	for len(daemonHosts) < len(hosts) {
		select {
		case d := <-out:
			daemonHosts = append(daemonHosts, d.Addr.String())
		case <-deadline:
			break wait
		}
	}
	sort.Strings(daemonHosts)
	sort.Strings(hosts)
	st, _ := e.Stats("nginx")
	t.Logf("appended %d failures; regex matched %d (skipped %d); daemon counted %d failures, %d lines read, %d with bytes replaced",
		len(hosts), res.Matched, res.Skipped, st.TotalFailed, st.Sources[0].LinesRead, st.Sources[0].LinesReplaced)
	if strings.Join(replayHosts, " ") != strings.Join(hosts, " ") {
		t.Errorf("regex found %v, want every host %v", replayHosts, hosts)
	}
	if strings.Join(daemonHosts, " ") != strings.Join(replayHosts, " ") {
		t.Errorf("daemon banned %v, regex found %v: they must agree", daemonHosts, replayHosts)
	}
	if st.TotalFailed != uint64(res.Matched) || st.Sources[0].LinesSkipped != 0 {
		t.Errorf("daemon: %d failures, %d lines skipped; regex %d failures", st.TotalFailed, st.Sources[0].LinesSkipped, res.Matched)
	}
}
