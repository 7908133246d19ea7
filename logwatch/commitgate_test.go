package logwatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/logwatch/source"
)

// TestPositionWaitsForItsDecisions: a log position is saved past a line
// only once the decision that line made is committed (Done(nil)), out of
// order too; a decision that failed holds it back.
func TestPositionWaitsForItsDecisions(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "auth.log")
	head := "2026-11-24T12:00:00Z startup\n"
	appendFile(t, log, head)
	pos := source.NewMemPositions()
	out := make(chan bans.Decision, 10)
	e := NewEngine(EngineOptions{Out: out, Positions: pos, Rescan: 50 * time.Millisecond})
	t.Cleanup(e.StopAll)
	j := testJail(log)
	j.MaxRetry = 1
	if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: newFake}); err != nil {
		t.Fatal(err)
	}
	key := "sshd|file:" + log
	saved := func() int64 {
		p, _, _ := pos.Load(key)
		return p.Offset
	}
	waitSaved := func(want int64) {
		t.Helper()
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if saved() == want {
				return
			}
		}
		t.Fatalf("saved offset %d, want %d", saved(), want)
	}
	waitSaved(int64(len(head)))

	var ds []bans.Decision
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		appendFile(t, log, failLine(time.Now(), a, 0)+"\n")
	}
	for len(ds) < 3 {
		select {
		case d := <-out:
			ds = append(ds, d)
		case <-time.After(3 * time.Second):
			t.Fatalf("%d decisions", len(ds))
		}
	}
	fi, _ := os.Stat(log)
	// Read to the end, decisions pending: nothing past the first failure.
	time.Sleep(200 * time.Millisecond)
	if got := saved(); got != int64(len(head)) {
		t.Fatalf("saved offset %d with every decision pending, want %d (before the first failure)", got, len(head))
	}
	ds[2].Done(nil)
	ds[1].Done(nil)
	time.Sleep(100 * time.Millisecond)
	if got := saved(); got != int64(len(head)) {
		t.Fatalf("saved offset %d with the first decision pending, want %d", got, len(head))
	}
	ds[0].Done(nil)
	waitSaved(fi.Size())

	// A decision whose ban failed holds the position where it was.
	appendFile(t, log, failLine(time.Now(), "192.0.2.4", 0)+"\n")
	d := <-out
	d.Done(errors.New("map full"))
	appendFile(t, log, "2026-11-24T12:00:01Z unrelated\n")
	time.Sleep(200 * time.Millisecond)
	if got := saved(); got != fi.Size() {
		t.Fatalf("saved offset %d after a failed ban, want %d (before its line)", got, fi.Size())
	}
}
