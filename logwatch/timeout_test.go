package logwatch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/syncbuf"
	"github.com/xdpban/xdpban/logwatch/filter"
	"github.com/xdpban/xdpban/logwatch/pyre"
)

// A failregex that needs the backtracking engine (the lookahead) and
// backtracks exponentially on a run of word characters that does not end
// as it wants: every line carrying its literal runs it.
const hostileFilter = `[Definition]
failregex = ^x(?=\w)(?:\w+\s?)+: invalid user from <HOST>$
            ^Failed password from <HOST>$
`

func hostileLine(i int) string {
	return "x" + strings.Repeat("a", 30) + fmt.Sprintf("!: invalid user from 192.0.2.%d", 1+i%200)
}

// TestHostileLinesDelayARealBanByAtMostTheBudgetEach: 50 lines that make
// the backtracking engine give up, then a real failure. The ban comes
// after at most 50 × DefaultMatchTimeout (plus scheduling); the timeouts
// are counted per jail and logged once (rate-limited), not per line.
func TestHostileLinesDelayARealBanByAtMostTheBudgetEach(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "filter.d", "hostile.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	if err := os.WriteFile(conf, []byte(hostileFilter), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := filter.Load([]string{dir}, "hostile", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Backtracking()) == 0 {
		t.Fatal("the hostile failregex does not run on the backtracking engine")
	}
	const hostile = 50
	var b strings.Builder
	for i := 0; i < hostile; i++ {
		b.WriteString(hostileLine(i) + "\n")
	}
	b.WriteString("Failed password from 203.0.113.9\n")

	log := filepath.Join(dir, "auth.log")
	appendFile(t, log, "")
	logs := &syncbuf.Buffer{}
	out := make(chan bans.Decision, 10)
	e := NewEngine(EngineOptions{Out: out, Rescan: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(e.StopAll)
	j := config.Jail{Name: "hostile", Filter: "hostile", Enabled: true, LogPaths: []string{log}, MaxRetry: 1, FindTime: time.Hour, BanTime: time.Hour}
	if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: f.NewScanner}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	appendFile(t, log, b.String())
	var d bans.Decision
	select {
	case d = <-out:
	case <-time.After(60 * time.Second):
		t.Fatal("no ban after 60 s")
	}
	delay := time.Since(start)
	st, _ := e.Stats("hostile")
	bound := hostile*pyre.DefaultMatchTimeout + time.Second
	t.Logf("%d hostile lines delayed the real ban by %s (budget %s each, bound %s); %d timeouts counted", hostile, delay, pyre.DefaultMatchTimeout, bound, st.Timeouts)
	if d.Addr.String() != "203.0.113.9" {
		t.Fatalf("banned %s, want 203.0.113.9", d.Addr)
	}
	if delay > bound {
		t.Errorf("the real ban came %s after the append, more than %s", delay, bound)
	}
	if st.Timeouts != hostile || f.Timeouts() != hostile {
		t.Errorf("timeouts: jail %d, filter %d; want %d", st.Timeouts, f.Timeouts(), hostile)
	}
	if n := strings.Count(logs.String(), "filter gave up on"); n != 1 {
		t.Errorf("%d timeout warnings logged, want 1 (rate-limited):\n%s", n, logs.String())
	}
}
