package logwatch

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/logwatch/source"
)

// journalJSON renders one entry as `journalctl --output=json` prints it
// for an sshd message received over syslog (field set and encoding as
// systemd writes them: every value a string, timestamps in µs).
func journalJSON(i int, at time.Time, msg any) string {
	e := map[string]any{
		"__CURSOR":                   fmt.Sprintf("s=8f3c2a0b1c7e4a0e9d6c3b2a1f0e9d8c;i=%x;b=5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b;m=%x;t=%x;x=9f8e7d6c5b4a%04x", 0x1a2b+i, 0x2b3c4d5e+i, at.UnixMicro(), i),
		"__REALTIME_TIMESTAMP":       fmt.Sprint(at.UnixMicro()),
		"__MONOTONIC_TIMESTAMP":      fmt.Sprint(729566558 + i),
		"_BOOT_ID":                   "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
		"_MACHINE_ID":                "0123456789abcdef0123456789abcdef",
		"_HOSTNAME":                  "web1",
		"PRIORITY":                   "6",
		"SYSLOG_FACILITY":            "4",
		"SYSLOG_IDENTIFIER":          "sshd",
		"_TRANSPORT":                 "syslog",
		"_UID":                       "0",
		"_GID":                       "0",
		"_COMM":                      "sshd",
		"_EXE":                       "/usr/sbin/sshd",
		"_CMDLINE":                   "sshd: root [priv]",
		"_CAP_EFFECTIVE":             "1ffffffffff",
		"_SYSTEMD_CGROUP":            "/system.slice/ssh.service",
		"_SYSTEMD_UNIT":              "ssh.service",
		"_SYSTEMD_SLICE":             "system.slice",
		"_SYSTEMD_INVOCATION_ID":     "c0ffee00c0ffee00c0ffee00c0ffee00",
		"SYSLOG_PID":                 fmt.Sprint(4242 + i),
		"_PID":                       fmt.Sprint(4242 + i),
		"SYSLOG_TIMESTAMP":           at.Format(time.Stamp) + " ",
		"MESSAGE":                    msg,
		"_SOURCE_REALTIME_TIMESTAMP": fmt.Sprint(at.UnixMicro() - 57),
	}
	b, _ := json.Marshal(e)
	return string(b)
}

func TestFormatJournalEntry(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 1, 123456000, time.Local)
	line, got, cur, ok := source.FormatJournalEntry([]byte(journalJSON(0, at, "Failed password for root from 192.0.2.10 port 50022 ssh2")))
	want := "Nov 24 12:00:01 web1 sshd[4242]: Failed password for root from 192.0.2.10 port 50022 ssh2"
	if !ok || line != want || !got.Equal(at) || !strings.HasPrefix(cur, "s=8f3c") {
		t.Fatalf("got %q %s %q %v, want %q at %s", line, got, cur, ok, want, at)
	}
	// Non-UTF-8 data arrives as an array of bytes; multi-line messages
	// are joined with a literal \n as fail2ban does.
	bytesMsg := []int{}
	for _, c := range []byte("a\nb") {
		bytesMsg = append(bytesMsg, int(c))
	}
	line, _, _, ok = source.FormatJournalEntry([]byte(journalJSON(1, at, bytesMsg)))
	if !ok || !strings.HasSuffix(line, `sshd[4243]: a\nb`) {
		t.Fatalf("byte-array message: %q %v", line, ok)
	}
	// _COMM and _PID stand in for SYSLOG_IDENTIFIER / SYSLOG_PID.
	line, _, _, ok = source.FormatJournalEntry([]byte(`{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1764000000000000","_COMM":"dropbear","_PID":"7","MESSAGE":"hi"}`))
	if !ok || !strings.HasSuffix(line, " dropbear[7]: hi") {
		t.Fatalf("_COMM fallback: %q", line)
	}
	for _, bad := range []string{`not json`, `{"__REALTIME_TIMESTAMP":"1","MESSAGE":null}`, `{"MESSAGE":"x"}`, `[]`} {
		if _, _, _, ok := source.FormatJournalEntry([]byte(bad)); ok {
			t.Errorf("FormatJournalEntry(%s) accepted", bad)
		}
	}
}

// fakeJournalctl writes a journalctl stand-in that records its arguments,
// prints the entries of data after --after-cursor, then follows (sleeps).
func fakeJournalctl(t *testing.T, dir, data string) (bin, argsLog string) {
	bin = filepath.Join(dir, "journalctl")
	argsLog = filepath.Join(dir, "args.log")
	script := `#!/bin/sh
echo "$*" >> '` + argsLog + `'
after=""
for a in "$@"; do case "$a" in --after-cursor=*) after="${a#--after-cursor=}";; esac; done
skip=0; [ -n "$after" ] && skip=1
while IFS= read -r line; do
  if [ $skip = 1 ]; then
    case "$line" in *"\"__CURSOR\":\"$after\""*) skip=0;; esac
    continue
  fi
  printf '%s\n' "$line"
done < '` + data + `'
exec sleep 1000
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, argsLog
}

func TestEngineJournalBackendWithCursor(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "journal.json")
	now := time.Now()
	var lines []string
	for i := 0; i < 3; i++ {
		lines = append(lines, journalJSON(i, now.Add(time.Duration(i-10)*time.Second), "fail from 192.0.2.90 port 2222"))
	}
	lines = append(lines, journalJSON(3, now, "Accepted publickey for alice from 198.51.100.5"))
	os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	bin, argsLog := fakeJournalctl(t, dir, data)

	pos := source.NewMemPositions()
	out := make(chan bans.Decision, 10)
	start := func() *Engine {
		e := NewEngine(EngineOptions{Out: out, Positions: pos, Journalctl: bin})
		j := testJail("")
		j.LogPaths = nil
		j.JournalMatch = []string{"_SYSTEMD_UNIT=ssh.service + _COMM=sshd"}
		if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: newFake}); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := start()
	select {
	case d := <-out:
		if d.Addr.String() != "192.0.2.90" || !d.At.Equal(time.UnixMicro(now.Add(-8*time.Second).UnixMicro())) {
			t.Fatalf("decision %+v: want 192.0.2.90 at the third entry's journal time", d)
		}
		d.Done(nil) // committed, as the daemon says: the cursor may be saved past it
	case <-time.After(3 * time.Second):
		t.Fatal("no decision from the journal")
	}
	waitJournalRead(t, e, 4)
	e.StopAll()

	// Restart: journalctl is resumed after the saved cursor and the new
	// entry only is read.
	f, _ := os.OpenFile(data, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(journalJSON(4, now, "fail from 192.0.2.91 port 1") + "\n")
	f.Close()
	e = start()
	defer e.StopAll()
	waitJournalRead(t, e, 1)
	time.Sleep(100 * time.Millisecond)
	st, _ := e.Stats("sshd")
	if st.Sources[0].LinesRead != 1 || st.TotalFailed != 1 {
		t.Fatalf("after restart: %+v, want exactly the one new entry", st)
	}
	args, _ := os.ReadFile(argsLog)
	calls := strings.Split(strings.TrimSpace(string(args)), "\n")
	if len(calls) != 2 {
		t.Fatalf("journalctl called %d times: %q", len(calls), calls)
	}
	if !strings.Contains(calls[0], "--follow --output=json") || !strings.Contains(calls[0], "--since=@") ||
		!strings.HasSuffix(calls[0], "_SYSTEMD_UNIT=ssh.service + _COMM=sshd") {
		t.Fatalf("first call %q", calls[0])
	}
	lastCursor := ""
	json.Unmarshal([]byte(`"`+strings.Split(strings.Split(lines[3], `"__CURSOR":"`)[1], `"`)[0]+`"`), &lastCursor)
	if !strings.Contains(calls[1], "--after-cursor="+lastCursor) {
		t.Fatalf("second call %q does not resume after %s", calls[1], lastCursor)
	}
}

func TestJournalctlMissingIsReportedAndRetried(t *testing.T) {
	out := make(chan bans.Decision)
	e := NewEngine(EngineOptions{Out: out, Journalctl: filepath.Join(t.TempDir(), "no-journalctl")})
	j := testJail("")
	j.LogPaths, j.JournalMatch = nil, []string{"_SYSTEMD_UNIT=ssh.service"}
	if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: newFake}); err != nil {
		t.Fatal(err)
	}
	defer e.StopAll()
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, _ := e.Stats("sshd")
		if strings.Contains(st.Sources[0].Err, "install systemd's journalctl or set backend = file") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("source error = %q", st.Sources[0].Err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitJournalRead(t *testing.T, e *Engine, n uint64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, _ := e.Stats("sshd")
		if len(st.Sources) == 1 && st.Sources[0].LinesRead >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal lines read: %+v, want %d", st.Sources, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
