package source

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/syncbuf"
)

// The rotation part of the fault-injection suite (`go test -run Fault
// ./...`): a reader that lags behind its writer, across logrotate's two
// ways of rotating. Each reports lines counted vs appended.

// laggingFollower follows path, handing each line to a consumer slower
// than the writer (perLine of work per line, as a busy jail).
func laggingFollower(t *testing.T, path string, perLine time.Duration) (*Follower, *seqCounter, *syncbuf.Buffer) {
	t.Helper()
	c := newSeqCounter(1 << 20)
	lb := &syncbuf.Buffer{}
	n := 0
	fl := NewFollower(FollowOptions{Globs: []string{path}, Rescan: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(lb, nil))}, func(_, line string) {
		if n++; perLine > 0 && n%20 == 0 {
			time.Sleep(20 * perLine)
		}
		c.got(line)
	})
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

// waitCounted waits until want distinct lines were counted or nothing new
// arrived for quiet.
func waitCounted(c *seqCounter, want int, quiet, limit time.Duration) int {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		u, last := c.progress()
		if u >= want || (!last.IsZero() && time.Since(last) > quiet) {
			return u
		}
		time.Sleep(20 * time.Millisecond)
	}
	u, _ := c.progress()
	return u
}

func dupCount(c *seqCounter) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := 0
	for _, k := range c.counts {
		if k > 1 {
			d += int(k) - 1
		}
	}
	return d
}

// TestFaultRotationWriterKeepsWritingOldFile: the file is renamed away and
// the writer goes on writing to it for 7 s before it reopens the name (a
// daemon slow to get its HUP). Every line written to the old file counts.
func TestFaultRotationWriterKeepsWritingOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	w := &seqWriter{path: p}
	w.reopen(t)
	defer w.f.Close()
	_, c, _ := laggingFollower(t, p, 0)
	w.run(t, 1000, 10000)
	time.Sleep(100 * time.Millisecond)
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	const rate, late = 3500, 7 * time.Second
	total := 1000 + rate*int(late/time.Second)
	w.run(t, total, rate) // still the renamed file
	w.reopen(t)
	total += 1000
	w.run(t, total, 10000)
	got := waitCounted(c, total, 2*time.Second, 20*time.Second)
	t.Logf("writer kept writing the renamed file %s: %d of %d lines counted, %d duplicated", late, got, total, dupCount(c))
	if got != total || dupCount(c) != 0 {
		t.Fatalf("%d of %d lines counted, %d duplicated; want all, once", got, total, dupCount(c))
	}
}

// copyTruncateWriter is a seqWriter that copytruncates every `every`
// itself between bursts (so the copy holds everything written: nothing is
// lost to logrotate's own race), naming the copies with ext.
func copyTruncateRun(t *testing.T, w *seqWriter, total, rate int, every time.Duration, ext string) (rotations int) {
	done := make(chan struct{})
	go func() { defer close(done); w.run(t, total, rate) }()
	for i := 0; ; i++ {
		select {
		case <-done:
			return rotations
		case <-time.After(every):
			copyTruncateOnce(t, w, fmt.Sprintf("%s.%d%s", w.path, i, ext))
			rotations++
		}
	}
}

// TestFaultRotationCopyTruncateLaggingReader: 40,000 lines at 20,000
// lines/s, copytruncate every 400 ms, read by a consumer that manages
// ~10,000 lines/s: most of each rotation is still unread when the file is
// truncated. The rest of it is read from the copy: every line counts, once.
func TestFaultRotationCopyTruncateLaggingReader(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	w := &seqWriter{path: p}
	w.reopen(t)
	defer w.f.Close()
	fl, c, lb := laggingFollower(t, p, 100*time.Microsecond)
	const total = 40000
	rot := copyTruncateRun(t, w, total, 20000, 400*time.Millisecond, "")
	got := waitCounted(c, total, 3*time.Second, 30*time.Second)
	st := fl.Stats()
	t.Logf("copytruncate x%d, lagging reader: %d of %d lines counted, %d duplicated, %d bytes lost", rot, got, total, dupCount(c), st[0].BytesLost)
	if got != total || dupCount(c) != 0 || st[0].BytesLost != 0 {
		c.mu.Lock()
		var ranges []string
		for i := 0; i < total; i++ {
			if c.counts[i] == 0 {
				j := i
				for j < total && c.counts[j] == 0 {
					j++
				}
				ranges = append(ranges, fmt.Sprintf("%d-%d", i, j-1))
				i = j
			}
		}
		c.mu.Unlock()
		t.Logf("missing: %v", ranges)
		t.Fatalf("%d of %d lines counted, %d duplicated, %d bytes lost; want all once, none lost\n%s", got, total, dupCount(c), st[0].BytesLost, lb)
	}
	if rot < 3 {
		t.Fatalf("only %d rotations", rot)
	}
}

// TestFaultRotationTruncatedWithoutCopy: 20,000 lines written, then the
// file is truncated with no readable copy (logrotate compressing at once,
// or an operator's "> file") while the lagging reader is a third of the
// way through, and writing goes on. What was not read is gone: it is
// counted, to the byte, and logged; everything written after is read.
func TestFaultRotationTruncatedWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	w := &seqWriter{path: p}
	w.reopen(t)
	defer w.f.Close()
	fl, c, lb := laggingFollower(t, p, 100*time.Microsecond)
	w.run(t, 20000, 1000000)
	for u, _ := c.progress(); u < 6000; u, _ = c.progress() {
		time.Sleep(5 * time.Millisecond)
	}
	w.mu.Lock()
	if err := os.WriteFile(p+".1.gz", []byte("not readable as lines"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	w.mu.Unlock()
	const total = 21000
	w.run(t, total, 10000)
	got := waitCounted(c, total, 2*time.Second, 30*time.Second)
	var missing, missingBytes int
	c.mu.Lock()
	for n, k := range c.counts[:total] {
		if k == 0 {
			missing++
			missingBytes += len(fmt.Sprintf("Nov 24 12:00:00 host app[1]: event seq=%d\n", n))
		}
	}
	after := 0
	for _, k := range c.counts[20000:total] {
		after += int(k)
	}
	c.mu.Unlock()
	st := fl.Stats()
	t.Logf("truncated without a copy: %d of %d lines counted, %d never read (%d bytes), %d bytes reported lost", got, total, missing, missingBytes, st[0].BytesLost)
	if missing == 0 {
		t.Fatal("the reader was not lagging: nothing was truncated away unread")
	}
	if int(st[0].BytesLost) != missingBytes || after != total-20000 || dupCount(c) != 0 {
		t.Fatalf("%d bytes reported lost, %d never read; %d of the %d lines written after the truncation counted, %d duplicated", st[0].BytesLost, missingBytes, after, total-20000, dupCount(c))
	}
	if !strings.Contains(lb.String(), "were never read") {
		t.Fatalf("the loss was not logged:\n%s", lb)
	}
}

// TestFaultRotationTruncateAfterRename: the file was rotated by rename
// (auth.log.1 is the old file, written to after the new one appeared, and
// read in full) and later truncated in place:
// auth.log.1 is not a copy of what was truncated and is not read again.
func TestFaultRotationTruncateAfterRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	w := &seqWriter{path: p}
	w.reopen(t)
	defer w.f.Close()
	_, c, _ := laggingFollower(t, p, 0)
	w.run(t, 1000, 100000)
	waitCounted(c, 1000, time.Second, 5*time.Second)
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil { // logrotate's create
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the new file is followed
	w.run(t, 1500, 100000)             // late writes to the renamed file
	w.reopen(t)
	w.run(t, 2000, 100000)
	waitCounted(c, 2000, time.Second, 5*time.Second)
	w.mu.Lock()
	os.Truncate(p, 0)
	w.mu.Unlock()
	w.run(t, 3000, 100000)
	got := waitCounted(c, 3000, time.Second, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	t.Logf("rename, then truncation: %d of 3000 lines counted, %d duplicated", got, dupCount(c))
	if got != 3000 || dupCount(c) != 0 {
		t.Fatalf("%d of 3000 lines counted, %d duplicated; want all, once", got, dupCount(c))
	}
}
