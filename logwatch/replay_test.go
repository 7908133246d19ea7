package logwatch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/filter"
	"github.com/xdpban/xdpban/logwatch/source"
)

// sampleRef puts the sample's year-less syslog dates in 2026.
var sampleRef = time.Date(2026, 11, 24, 23, 0, 0, 0, time.Local)

func loadSSHD(t testing.TB) *filter.Filter {
	t.Helper()
	f, err := filter.Load(nil, "sshd", nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func openSample(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "logs", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestReplayWithShippedSSHDFilter(t *testing.T) {
	res, err := Replay(openSample(t, "auth-sample.log"), loadSSHD(t).NewScanner(), ReplayOptions{Ref: sampleRef})
	if err != nil {
		t.Fatal(err)
	}
	// Line 14's user name is Latin-1: matched, as fail2ban does.
	if res.Lines != 14 || res.Matched != 10 || res.Missed != 4 || res.Skipped != 0 || res.Ignored != 0 {
		t.Fatalf("counts: lines %d matched %d missed %d skipped %d ignored %d; want 14/10/4/0/0",
			res.Lines, res.Matched, res.Missed, res.Skipped, res.Ignored)
	}
	wantLines := []int{1, 3, 5, 6, 8, 9, 11, 12, 13, 14}
	for i, m := range res.Matches {
		if m.Line != wantLines[i] {
			t.Fatalf("match %d on line %d, want %d (file order)", i, m.Line, wantLines[i])
		}
	}
	first := res.Matches[0]
	if first.Host != "192.0.2.10" || first.Time != time.Date(2026, 11, 24, 10, 0, 1, 0, time.Local).Format(time.RFC3339) {
		t.Fatalf("first match = %+v", first)
	}
	if res.Hosts[0] != (HostCount{"192.0.2.10", 4}) {
		t.Fatalf("top host = %+v, want 192.0.2.10 with 4", res.Hosts[0])
	}
	// The JSON keys are the --json contract.
	b, _ := json.Marshal(res)
	var generic map[string]any
	json.Unmarshal(b, &generic)
	for _, k := range []string{"lines", "matched", "missed", "ignored", "elapsed_s", "matches"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("--json output lacks %q: %s", k, b)
		}
	}
	if !strings.Contains(string(b), `{"line":1,"host":"192.0.2.10","time":"2026-11-24T10:00:01`) {
		t.Errorf("match encoding: %s", b)
	}
}

func TestReplayThroughJail(t *testing.T) {
	j := config.Jail{
		Name: "sshd", MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour,
		Increment: config.Increment{Enabled: true, Factor: 1},
	}
	res, err := Replay(openSample(t, "auth-sample.log"), loadSSHD(t).NewScanner(), ReplayOptions{Ref: sampleRef, Jail: &j})
	if err != nil {
		t.Fatal(err)
	}
	at := func(h, m, s int) time.Time { return time.Date(2026, 11, 24, h, m, s, 0, time.Local) }
	want := []ReplayBan{
		// Third failure within 10 minutes; its fourth (10:20) comes
		// while banned and is not counted.
		{Addr: "192.0.2.10", Prefix: "192.0.2.10/32", At: at(10, 0, 15), BanSecs: 3600, Until: at(11, 0, 15), Failures: 3, Line: 5},
		// ::66 twice and ::67 once: one /64, one ban.
		{Addr: "2001:db8::67", Prefix: "2001:db8::/64", At: at(10, 5, 0), BanSecs: 3600, Until: at(11, 5, 0), Failures: 3, Line: 11},
	}
	if len(res.Bans) != len(want) {
		t.Fatalf("bans = %+v, want %d", res.Bans, len(want))
	}
	for i := range want {
		g := res.Bans[i]
		g.BanTime = 0
		if !g.At.Equal(want[i].At) || !g.Until.Equal(want[i].Until) {
			t.Fatalf("ban %d = %+v, want %+v", i, g, want[i])
		}
		g.At, g.Until = want[i].At, want[i].Until
		if g != want[i] {
			t.Fatalf("ban %d = %+v, want %+v", i, g, want[i])
		}
	}
}

// TestReplayOldFailuresSpreadOutNeverBan: the same failures spread over
// more than findtime do not ban.
func TestReplayOldFailuresSpreadOutNeverBan(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 10; i++ {
		ts := time.Date(2026, 11, 24, 1+i, 0, 0, 0, time.Local).Format(time.Stamp)
		b.WriteString(ts + " web1 sshd[1]: Failed password for root from 192.0.2.10 port 1 ssh2\n")
	}
	j := config.Jail{Name: "sshd", MaxRetry: 2, FindTime: 30 * time.Minute, BanTime: time.Hour}
	res, err := Replay(strings.NewReader(b.String()), loadSSHD(t).NewScanner(), ReplayOptions{Ref: sampleRef, Jail: &j})
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 10 || len(res.Bans) != 0 {
		t.Fatalf("matched %d, bans %+v: want 10 matches and no ban", res.Matched, res.Bans)
	}
}

func TestReplaySkipsOverlongLinesWithoutHoldingThem(t *testing.T) {
	in := "Nov 24 10:00:01 web1 sshd[1]: Failed password for root from 192.0.2.10 port 1 ssh2\n" +
		strings.Repeat("z", 3*source.DefaultMaxLine) + "\n" +
		"Nov 24 10:00:02 web1 sshd[1]: Failed password for root from 192.0.2.11 port 1 ssh2"
	res, err := Replay(strings.NewReader(in), loadSSHD(t).NewScanner(), ReplayOptions{Ref: sampleRef})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 3 || res.Skipped != 1 || res.Matched != 2 || res.Matches[1].Line != 3 {
		t.Fatalf("lines %d skipped %d matched %d matches %+v", res.Lines, res.Skipped, res.Matched, res.Matches)
	}
}

func BenchmarkReplaySSHD(b *testing.B) {
	f := loadSSHD(b)
	data, err := os.ReadFile(filepath.Join("..", "testdata", "logs", "auth-sample.log"))
	if err != nil {
		b.Fatal(err)
	}
	data = []byte(strings.Repeat(string(data), 100))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Replay(strings.NewReader(string(data)), f.NewScanner(), ReplayOptions{Ref: sampleRef}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReplayCountOnly: a replay for the text report (CountOnly) counts,
// tallies addresses and bans as the full one does, with no match list.
func TestReplayCountOnly(t *testing.T) {
	j := config.Jail{Name: "sshd", MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour}
	full, err := Replay(openSample(t, "auth-sample.log"), loadSSHD(t).NewScanner(), ReplayOptions{Ref: sampleRef, Jail: &j})
	if err != nil {
		t.Fatal(err)
	}
	counts, err := Replay(openSample(t, "auth-sample.log"), loadSSHD(t).NewScanner(), ReplayOptions{Ref: sampleRef, Jail: &j, CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Matches) == 0 || len(counts.Matches) != 0 {
		t.Fatalf("matches: full %d, count-only %d", len(full.Matches), len(counts.Matches))
	}
	if full.Lines != counts.Lines || full.Matched != counts.Matched || full.Missed != counts.Missed ||
		!slices.Equal(full.Hosts, counts.Hosts) || len(full.Bans) != len(counts.Bans) || len(full.Bans) == 0 {
		t.Fatalf("count-only %+v, full %+v", counts, full)
	}
}
