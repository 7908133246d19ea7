package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// journalHandler puts sd-daemon's "<N>" priority in front of each log
// line, so journald (SyslogLevelPrefix=yes, its default) files a warning
// as a warning instead of every line at info.
type journalHandler struct {
	mu    *sync.Mutex
	buf   *bytes.Buffer
	inner slog.Handler // writes into buf
	out   io.Writer
}

func newJournalHandler(out io.Writer, mk func(io.Writer) slog.Handler) *journalHandler {
	buf := new(bytes.Buffer)
	return &journalHandler{mu: new(sync.Mutex), buf: buf, inner: mk(buf), out: out}
}

// syslogPriority maps slog levels to syslog's (sd-daemon(3)).
func syslogPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := fmt.Fprintf(h.out, "<%d>%s", syslogPriority(r.Level), h.buf.Bytes())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}

// toJournal reports whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM names its device and inode (systemd.exec(5)).
// A writer that is not a file (a test's buffer) trusts the variable.
func toJournal(w io.Writer, getenv func(string) string) bool {
	js := getenv("JOURNAL_STREAM")
	if js == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return true
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
