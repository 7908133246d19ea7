package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/syncbuf"
)

// collector records emitted lines.
type collector struct {
	mu    sync.Mutex
	lines []string
	srcs  []string
	ch    chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) emit(src, line string) {
	c.mu.Lock()
	c.lines = append(c.lines, line)
	c.srcs = append(c.srcs, src)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// waitN waits until at least n lines arrived or d passed.
func (c *collector) waitN(t *testing.T, n int, d time.Duration) []string {
	t.Helper()
	deadline := time.After(d)
	for {
		if l := c.snapshot(); len(l) >= n {
			return l
		}
		select {
		case <-c.ch:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			l := c.snapshot()
			t.Fatalf("got %d lines within %s, want %d; last: %q", len(l), d, n, tail(l))
			return nil
		}
	}
}

func tail(l []string) []string {
	if len(l) > 3 {
		return l[len(l)-3:]
	}
	return l
}

func startFollower(t *testing.T, opt FollowOptions) (*Follower, *collector, *syncbuf.Buffer) {
	t.Helper()
	c := newCollector()
	lb := &syncbuf.Buffer{}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(lb), nil))
	}
	if opt.Rescan == 0 {
		opt.Rescan = 100 * time.Millisecond
	}
	fl := NewFollower(opt, c.emit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("follower: %v", err)
		}
	})
	return fl, c, lb
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFollowAppendsAndJoinsPartialLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth.log")
	appendFile(t, p, "one\ntw")
	_, c, _ := startFollower(t, FollowOptions{Globs: []string{p}})
	c.waitN(t, 1, 2*time.Second)
	appendFile(t, p, "o\r\nthree\n")
	got := c.waitN(t, 3, 2*time.Second)
	if strings.Join(got, "|") != "one|two|three" {
		t.Fatalf("lines = %q, want one, two, three", got)
	}
}

var seqRe = regexp.MustCompile(`seq=(\d+)`)

// seqWriter appends "seq=N" lines at about rate lines/s in bursts of 50,
// holding mu while writing so a rotator can act between bursts.
type seqWriter struct {
	mu   sync.Mutex
	path string
	f    *os.File
	n    int
}

func (w *seqWriter) reopen(t testing.TB) {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	w.f = f
}

func (w *seqWriter) run(t testing.TB, total, rate int) {
	const burst = 50
	tick := time.NewTicker(time.Second * burst / time.Duration(rate))
	defer tick.Stop()
	var b []byte
	for w.n < total {
		<-tick.C
		w.mu.Lock()
		b = b[:0]
		for i := 0; i < burst && w.n < total; i++ {
			b = fmt.Appendf(b, "Nov 24 12:00:00 host app[1]: event seq=%d\n", w.n)
			w.n++
		}
		if _, err := w.f.Write(b); err != nil {
			t.Error(err)
		}
		w.mu.Unlock()
	}
}

func seqs(t *testing.T, lines []string) map[int]int {
	t.Helper()
	m := map[int]int{}
	for _, l := range lines {
		s := seqRe.FindStringSubmatch(l)
		if s == nil {
			t.Fatalf("line without sequence: %q", l)
		}
		n, _ := strconv.Atoi(s[1])
		m[n]++
	}
	return m
}

// TestFollowRenameRotationUnderLoad: 10k lines/s, the file renamed away
// every 300 ms, with and without logrotate's create; the writer keeps
// writing to the old file for a while before it reopens (as daemons do
// until their HUP). Every line must arrive exactly once. The same scenario
// is BenchmarkFollowRotation's, which runs nxadm/tail on it too.
func TestFollowRenameRotationUnderLoad(t *testing.T) {
	for _, sc := range []rotationScenario{renameCreate, renameNoCreate} {
		t.Run(sc.name, func(t *testing.T) {
			o := runRotation(t, sc, startOurs)
			if o.lost != 0 || o.dup != 0 || o.foreign != 0 {
				t.Fatalf("%d lines lost, %d duplicated, %d torn over %d rotations; want none", o.lost, o.dup, o.foreign, o.rotations)
			}
			if o.rotations < 3 {
				t.Fatalf("only %d rotations happened", o.rotations)
			}
		})
	}
}

// TestFollowGlobAlsoMatchingRotatedNames: with logpath auth.log*, the
// renamed file is the same file under a new name and is not read twice.
func TestFollowGlobAlsoMatchingRotatedNames(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth.log")
	w := &seqWriter{path: p}
	w.reopen(t)
	_, c, _ := startFollower(t, FollowOptions{Globs: []string{p + "*"}})
	const total = 10000
	done := make(chan struct{})
	go func() { defer close(done); w.run(t, total, 10000) }()
	for i := 0; ; i++ {
		select {
		case <-done:
		case <-time.After(250 * time.Millisecond):
			w.mu.Lock()
			os.Rename(p, fmt.Sprintf("%s.%d", p, i))
			w.reopen(t)
			w.mu.Unlock()
			continue
		}
		break
	}
	c.waitN(t, total, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := c.snapshot()
	m := seqs(t, got)
	for i := 0; i < total; i++ {
		if m[i] != 1 {
			t.Fatalf("seq %d seen %d times, want once", i, m[i])
		}
	}
}

// TestFollowCopyTruncateUnderLoad: logrotate's copytruncate while 10k
// lines/s are written. Lines written between our last read and the
// truncation exist only in the copy; each line must be read by us or be
// in the copy, and nothing read twice.
func TestFollowCopyTruncateUnderLoad(t *testing.T) {
	o := runRotation(t, copyTruncate, startOurs)
	if o.dup != 0 || o.foreign != 0 {
		t.Fatalf("%d lines duplicated, %d torn; want none", o.dup, o.foreign)
	}
	// Lines written after our last read and before the truncation are
	// read from the copy (recoverCopy): none is lost.
	if o.lost != 0 {
		t.Fatalf("%d lines lost (%d of them in a rotated copy)", o.lost, o.lostInCopy)
	}
	if o.rotations < 3 {
		t.Fatalf("only %d rotations happened", o.rotations)
	}
	t.Logf("copytruncate: %d lines read, %d only in the rotated copies (%d rotations)", o.delivered, o.lostInCopy, o.rotations)
}

func TestFollowFileAppearingLaterDeletedAndRecreated(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "later.log")
	_, c, _ := startFollower(t, FollowOptions{Globs: []string{p}})
	time.Sleep(50 * time.Millisecond)
	appendFile(t, p, "first\n")
	c.waitN(t, 1, 2*time.Second)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	appendFile(t, p, "second\n")
	got := c.waitN(t, 2, 2*time.Second)
	if strings.Join(got, "|") != "first|second" {
		t.Fatalf("lines = %q", got)
	}
}

func TestFollowGlobPicksUpNewFilesAndDirs(t *testing.T) {
	dir := t.TempDir()
	_, c, _ := startFollower(t, FollowOptions{Globs: []string{filepath.Join(dir, "*", "access.log")}})
	time.Sleep(50 * time.Millisecond)
	os.Mkdir(filepath.Join(dir, "site1"), 0o755)
	appendFile(t, filepath.Join(dir, "site1", "access.log"), "a\n")
	c.waitN(t, 1, 3*time.Second)
	os.Mkdir(filepath.Join(dir, "site2"), 0o755)
	appendFile(t, filepath.Join(dir, "site2", "access.log"), "b\n")
	appendFile(t, filepath.Join(dir, "site2", "error.log"), "not followed\n")
	got := c.waitN(t, 2, 3*time.Second)
	time.Sleep(150 * time.Millisecond)
	if got = c.snapshot(); strings.Join(got, "|") != "a|b" {
		t.Fatalf("lines = %q, want a, b", got)
	}
}

// Lines that are not UTF-8 or hold control characters are delivered
// (decoded as fail2ban does, see intake.go); only over-long lines are
// skipped.
func TestFollowSkipsBadLinesAndCountsThem(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.log")
	var b bytes.Buffer
	b.WriteString("good1\n")
	b.WriteString("latin1 \xe9t\xe9\n")                          // not UTF-8
	b.WriteString("bin\x00\x01\x02garbage\n")                    // binary
	b.WriteString(strings.Repeat("x", DefaultMaxLine+10) + "\n") // too long
	b.WriteString("good2\n")
	appendFile(t, p, b.String())
	fl, c, _ := startFollower(t, FollowOptions{Globs: []string{p}})
	c.waitN(t, 4, 2*time.Second)
	// An over-long line still being written (no newline yet) is not held.
	appendFile(t, p, strings.Repeat("y", 3*DefaultMaxLine))
	appendFile(t, p, "tail\ngood3\n")
	got := c.waitN(t, 5, 3*time.Second)
	if strings.Join(got, "|") != "good1|latin1 \uFFFDt\uFFFD|bin\x00\x01\x02garbage|good2|good3" {
		t.Fatalf("lines = %q", got)
	}
	st := fl.Stats()
	if len(st) != 1 || st[0].LinesRead != 7 || st[0].LinesSkipped != 2 || st[0].LinesReplaced != 1 {
		t.Fatalf("stats = %+v, want 7 read, 2 skipped, 1 with bytes replaced", st)
	}
}

func TestFollowResumesFromSavedPosition(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth.log")
	pos := NewMemPositions()
	appendFile(t, p, "a\nb\n")
	run := func(want int) []string {
		c := newCollector()
		fl := NewFollower(FollowOptions{Globs: []string{p}, Positions: pos, Rescan: 50 * time.Millisecond}, c.emit)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- fl.Run(ctx) }()
		got := c.waitN(t, want, 2*time.Second)
		time.Sleep(100 * time.Millisecond)
		cancel()
		<-done
		return append(got[:0:0], c.snapshot()...)
	}
	if got := run(2); strings.Join(got, "|") != "a|b" {
		t.Fatalf("first run: %q", got)
	}
	appendFile(t, p, "c\n")
	if got := run(1); strings.Join(got, "|") != "c" {
		t.Fatalf("after restart: %q, want only the new line c", got)
	}
	// Rotated while down: the new file is read from its start.
	os.Rename(p, p+".1")
	appendFile(t, p, "d\n")
	if got := run(1); strings.Join(got, "|") != "d" {
		t.Fatalf("after rotation while down: %q, want d", got)
	}
	// Truncated and refilled past the old offset while down (same inode).
	os.WriteFile(p, []byte("e-longer-line\nf\n"), 0o644)
	if got := run(2); strings.Join(got, "|") != "e-longer-line|f" {
		t.Fatalf("after truncation while down: %q", got)
	}
}

func TestFollowUnreadableFileIsRetried(t *testing.T) {
	if os.Getuid() == 0 {
		unreadableAsNobody(t)
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "secret.log")
	appendFile(t, p, "x\n")
	os.Chmod(p, 0)
	fl, c, lb := startFollower(t, FollowOptions{Globs: []string{p}})
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(lb.String(), "cannot read log file "+p) {
		if time.Now().After(deadline) {
			t.Fatalf("no error naming the file was logged: %s", lb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := fl.Stats(); len(st) != 1 || !strings.Contains(st[0].Err, "permission denied") {
		t.Fatalf("stats do not show the error: %+v", st)
	}
	os.Chmod(p, 0o644)
	c.waitN(t, 1, 2*time.Second)
}

// unreadableAsNobody reruns the permission test as an unprivileged user:
// root reads any file, so only another uid can see EACCES.
func unreadableAsNobody(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "xdpban-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o1777)
	bin := filepath.Join(dir, "logwatch.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestFollowUnreadableFileIsRetried$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFollowUnreadableFileIsRetried")) {
		t.Fatalf("unprivileged run failed: %v\n%s", err, out)
	}
}
