package logwatch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/filter"
)

// statefulFilters need state kept across lines of one source: a maxlines
// buffer, or <F-MLFID> merging (as sshd's aggressive mode, ejabberd-auth,
// guacamole and slapd use). The lines are OpenSSH's and slapd's own
// formats.
var statefulFilters = []struct {
	name, conf string
	lines      []string
}{
	{
		name: "mlfid",
		conf: `[Definition]
failregex = ^\s*\S+ sshd\[<F-MLFID>\d+</F-MLFID>\]: <F-NOFAIL>Connection from</F-NOFAIL> <HOST> port \d+ on \S+ port \d+
            ^\s*\S+ sshd\[<F-MLFID>\d+</F-MLFID>\]: Disconnecting authenticating user \S+ \S+ port \d+: Too many authentication failures \[preauth\]$
`,
		lines: []string{
			"%s host sshd[4101]: Connection from 192.0.2.41 port 50022 on 198.51.100.1 port 22 rdomain \"\"",
			"%s host sshd[4102]: Connection from 192.0.2.42 port 50023 on 198.51.100.1 port 22 rdomain \"\"",
			"%s host sshd[4101]: Disconnecting authenticating user root 192.0.2.41 port 50022: Too many authentication failures [preauth]",
			"%s host sshd[4102]: Disconnecting authenticating user root 192.0.2.42 port 50023: Too many authentication failures [preauth]",
		},
	},
	{
		name: "maxlines",
		conf: `[Definition]
failregex = ^\s*\S+ slapd\[\d+\]: conn=(?P<conn>\d+) fd=\d+ ACCEPT from IP=<HOST>:\d+ \(IP=\S+\)\n\s*\S+ slapd\[\d+\]: conn=(?P=conn) op=\d+ RESULT tag=97 err=49 text=$
maxlines = 2
`,
		lines: []string{
			"%s host slapd[777]: conn=1001 fd=12 ACCEPT from IP=192.0.2.51:40100 (IP=0.0.0.0:389)",
			"%s host slapd[777]: conn=1001 op=0 RESULT tag=97 err=49 text=",
			"%s host slapd[777]: conn=1002 fd=13 ACCEPT from IP=192.0.2.52:40101 (IP=0.0.0.0:389)",
			"%s host slapd[777]: conn=1002 op=0 RESULT tag=97 err=49 text=",
		},
	},
}

// TestDaemonKeepsFilterStateAcrossLines runs the same lines through
// `xdpban regex` (Replay) and through the daemon's follower and jail: a
// failure spread over two lines counts in both.
func TestDaemonKeepsFilterStateAcrossLines(t *testing.T) {
	for _, c := range statefulFilters {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "filter.d", "stateful.conf")
			os.MkdirAll(filepath.Dir(conf), 0o755)
			if err := os.WriteFile(conf, []byte(c.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := filter.Load([]string{dir}, "stateful", nil)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC().Format(time.RFC3339)
			var text strings.Builder
			for _, l := range c.lines {
				text.WriteString(strings.Replace(l, "%s", now, 1) + "\n")
			}
			res, err := Replay(strings.NewReader(text.String()), f.NewScanner(), ReplayOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Matched != 2 {
				t.Fatalf("regex: %d failures, want 2 (the filter is wrong, not the daemon)", res.Matched)
			}

			log := filepath.Join(dir, "test.log")
			appendFile(t, log, "")
			out := make(chan bans.Decision, 10)
			e := NewEngine(EngineOptions{Out: out, Rescan: 50 * time.Millisecond})
			t.Cleanup(e.StopAll)
			j := config.Jail{Name: "stateful", Enabled: true, LogPaths: []string{log},
				MaxRetry: 1, FindTime: time.Hour, BanTime: time.Hour}
			if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: f.NewScanner}); err != nil {
				t.Fatal(err)
			}
			appendFile(t, log, text.String())
			got := map[string]bool{}
			deadline := time.After(5 * time.Second)
			for len(got) < 2 {
				select {
				case d := <-out:
					got[d.Addr.String()] = true
				case <-deadline:
					st, _ := e.Stats("stateful")
					t.Fatalf("daemon: bans %v after 5 s, regex found %d failures; stats %+v", got, res.Matched, st)
				}
			}
			st, _ := e.Stats("stateful")
			if st.TotalFailed != uint64(res.Matched) {
				t.Fatalf("daemon counted %d failures, regex %d", st.TotalFailed, res.Matched)
			}
		})
	}
}
