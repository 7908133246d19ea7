package drops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkAppendLine is the line format as the daemon and watch write it.
func BenchmarkAppendLine(b *testing.B) {
	ev := sample()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendLine(buf[:0])
	}
}

// BenchmarkPeerSprintf is the obvious alternative, for the ratio.
func BenchmarkPeerSprintf(b *testing.B) {
	ev := sample()
	b.ReportAllocs()
	for b.Loop() {
		_ = fmt.Sprintf("drop time=%s iface=%s src=%s dst=%s proto=%s sport=%d dport=%d len=%d flags=%s jail=%s suppressed=%d",
			ev.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"), ev.Iface, ev.Src, ev.Dst, ProtoName(ev.Proto),
			ev.SPort, ev.DPort, ev.Len, FlagString(ev.Flags), ev.Jail, ev.Suppressed)
	}
}

// BenchmarkJSON is watch --json's encoding.
func BenchmarkJSON(b *testing.B) {
	ev := sample()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogDrop is log_drops: one slog record through a text handler.
func BenchmarkLogDrop(b *testing.B) {
	ev := sample()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelInfo, "drop", ev.Attrs()...)
	}
}

// BenchmarkHubPublish: one event to 4 watchers (one filtered out).
func BenchmarkHubPublish(b *testing.B) {
	h := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 4 {
		f, _ := ParseFilter("192.0.2.0/24")
		if i == 3 {
			f, _ = ParseFilter("198.51.100.0/24")
		}
		ch, _ := h.Subscribe(ctx, f, 1024)
		go func() {
			for range ch {
			}
		}()
	}
	ev := sample()
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(ev)
	}
}
