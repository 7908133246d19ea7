package logwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/filter"
)

// The parallel replay must say exactly what the sequential one says: the
// same counts, matches in file order with the same times, hosts and the
// jail's bans, across batch boundaries, dateless lines (which take the
// last date seen), too-long lines and lines that are not UTF-8.
func TestReplayParallelEqualsSequential(t *testing.T) {
	var b strings.Builder
	base := time.Date(2026, 11, 24, 0, 0, 0, 0, time.Local)
	for i := range 3*replayBatchLines + 777 {
		ts := base.Add(time.Duration(i) * 250 * time.Millisecond).Format(time.Stamp)
		addr := fmt.Sprintf("192.0.2.%d", i%97)
		switch i % 11 {
		case 0:
			fmt.Fprintf(&b, "%s host sshd[%d]: Failed password for root from %s port %d ssh2\n", ts, i, addr, 1024+i)
		case 1:
			fmt.Fprintf(&b, "%s host sshd[%d]: Invalid user u%d from 2001:db8::%x port 22\n", ts, i, i, i%300)
		case 2:
			// No date: a continuation that takes the last date seen.
			fmt.Fprintf(&b, "sshd[%d]: Failed password for invalid user x from %s port 1 ssh2\n", i, addr)
		case 3:
			fmt.Fprintf(&b, "%s host sshd[%d]: Accepted publickey for ops from 198.51.100.1 port 2 ssh2\n", ts, i)
		case 4:
			fmt.Fprintf(&b, "%s host sshd[%d]: Failed password for \xff\xfe from %s port 3 ssh2\n", ts, i, addr)
		case 5:
			fmt.Fprintf(&b, "%s host sshd[%d]: Connection closed by authenticating user root %s port 4 [preauth]\n", ts, i, addr)
		case 6:
			b.WriteString(strings.Repeat("A", 300) + "\n")
		default:
			fmt.Fprintf(&b, "%s host CRON[%d]: pam_unix(cron:session): session opened for user root\n", ts, i)
		}
	}
	b.WriteString(ts(base) + " host sshd[1]: Failed password for root from 203.0.113.5 port 5 ssh2") // no final newline
	text := b.String()
	f := loadSSHD(t)
	if !f.LineIndependent() {
		t.Fatal("the shipped sshd filter should be line-independent")
	}
	j := config.Jail{Name: "sshd", MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour}
	for _, jail := range []*config.Jail{nil, &j} {
		opt := ReplayOptions{Ref: sampleRef, Jail: jail, MaxLine: 200}
		seq, err := Replay(strings.NewReader(text), f.NewScanner(), opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{2, 3, 8} {
			popt := opt
			popt.NewScanner, popt.Workers = f.NewScanner, workers
			par, err := Replay(strings.NewReader(text), f.NewScanner(), popt)
			if err != nil {
				t.Fatal(err)
			}
			if par.Lines != seq.Lines || par.Matched != seq.Matched || par.Missed != seq.Missed || par.Skipped != seq.Skipped || par.Ignored != seq.Ignored {
				t.Fatalf("workers %d: counts %d/%d/%d/%d/%d, sequential %d/%d/%d/%d/%d", workers,
					par.Lines, par.Matched, par.Missed, par.Skipped, par.Ignored, seq.Lines, seq.Matched, seq.Missed, seq.Skipped, seq.Ignored)
			}
			if !reflect.DeepEqual(par.Matches, seq.Matches) || !reflect.DeepEqual(par.Hosts, seq.Hosts) || !reflect.DeepEqual(par.Bans, seq.Bans) {
				t.Fatalf("workers %d: matches, hosts or bans differ from the sequential replay (%d/%d matches, %d/%d bans)",
					workers, len(par.Matches), len(seq.Matches), len(par.Bans), len(seq.Bans))
			}
		}
		if seq.Matched < 5*replayBatchLines/11 || seq.Skipped == 0 || (jail != nil && len(seq.Bans) == 0) {
			t.Fatalf("the log exercises too little: %d matched, %d skipped, %d bans", seq.Matched, seq.Skipped, len(seq.Bans))
		}
	}
}

func ts(t time.Time) string { return t.Format(time.Stamp) }

func TestLineIndependent(t *testing.T) {
	if f, err := filter.Load(nil, "sshd", map[string]string{"mode": "aggressive"}); err == nil && f.LineIndependent() && f.MaxLines > 1 {
		t.Error("a multi-line filter reported line-independent")
	}
	f, err := filter.CompileRegex(`^user <F-MLFID>\S+</F-MLFID> from <HOST>$`)
	if err != nil {
		t.Fatal(err)
	}
	if f.LineIndependent() {
		t.Error("a filter merging by <F-MLFID> reported line-independent")
	}
}

// A filter whose date is optional: a dateless line takes the last date
// seen (fail2ban's rule), which lives in the scanner: a batch's scanner is
// primed with the lines before it, or its first dateless lines would get
// another time than in the sequential replay.
func TestReplayParallelCarriesTheLastDate(t *testing.T) {
	dir := t.TempDir()
	conf := "[Definition]\nfailregex = ^fail from <HOST>$\ndatepattern = ^(?:%%Y-%%m-%%d %%H:%%M:%%S )?\n"
	if err := os.MkdirAll(filepath.Join(dir, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "filter.d", "opt.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := filter.Load([]string{dir}, "opt", nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := time.Now()
	var b strings.Builder
	for i := range 2*replayBatchLines + 10 {
		if i%replayBatchLines == replayBatchLines-1 {
			// The last line of each batch carries the date the next
			// batch's first (dateless) lines inherit.
			fmt.Fprintf(&b, "%s fail from 192.0.2.%d\n", ref.Add(-time.Duration(i)*time.Millisecond).Format("2006-01-02 15:04:05"), i%200)
			continue
		}
		fmt.Fprintf(&b, "fail from 198.51.100.%d\n", i%200)
	}
	seq, err := Replay(strings.NewReader(b.String()), f.NewScanner(), ReplayOptions{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	par, err := Replay(strings.NewReader(b.String()), f.NewScanner(), ReplayOptions{Ref: ref, NewScanner: f.NewScanner, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(par.Matches, seq.Matches) {
		for i := range seq.Matches {
			if i < len(par.Matches) && par.Matches[i] != seq.Matches[i] {
				t.Fatalf("match %d: parallel %+v, sequential %+v", i, par.Matches[i], seq.Matches[i])
			}
		}
		t.Fatalf("parallel replay found %d matches, sequential %d", len(par.Matches), len(seq.Matches))
	}
	if seq.Matches[replayBatchLines].Time == "" {
		t.Fatalf("line %d took no date: the log does not exercise the carried date", replayBatchLines+1)
	}
}
