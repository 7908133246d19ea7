package actions

import (
	"context"
	"log/slog"
	"testing"
)

// nopAction succeeds at once; it isolates the Runner's own cost.
type nopAction struct{ policy }

func (nopAction) Kind() string                     { return "webhook" }
func (nopAction) Run(context.Context, Event) error { return nil }

func nop() Action {
	return nopAction{policy{on: map[Kind]bool{Ban: true, Unban: true}, timeout: 1e9}}
}

// BenchmarkNotifyQueued: Notify with workers draining.
func BenchmarkNotifyQueued(b *testing.B) {
	r := NewRunner(Options{QueueSize: 1 << 16, Logger: discard})
	r.SetJail("sshd", []Action{nop()})
	r.Start(context.Background())
	ev := sampleEvent()
	b.ReportAllocs()
	for b.Loop() {
		r.Notify(ev)
	}
	b.StopTimer()
	r.Close(context.Background())
}

// BenchmarkNotifyFull: the drop path taken when an endpoint hangs.
func BenchmarkNotifyFull(b *testing.B) {
	r := NewRunner(Options{QueueSize: 1, Logger: discard})
	r.SetJail("sshd", []Action{nop()}) // never started: the queue stays full
	ev := sampleEvent()
	r.Notify(ev)
	b.ReportAllocs()
	for b.Loop() {
		r.Notify(ev)
	}
}

// BenchmarkPeerChanSend is the floor to compare with: a bare
// non-blocking send of the same event on a drained channel.
func BenchmarkPeerChanSend(b *testing.B) {
	q := make(chan job, 1<<16)
	done := make(chan struct{})
	go func() {
		for range q {
		}
		close(done)
	}()
	ev := sampleEvent()
	a := nop()
	for b.Loop() {
		select {
		case q <- job{a, ev}:
		default:
		}
	}
	close(q)
	<-done
}

var discard = slog.New(slog.DiscardHandler)
