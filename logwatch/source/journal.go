package source

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The journal is read through `journalctl --follow --output=json` rather
// than libsystemd: no cgo, and the JSON export format is stable.

type JournalOptions struct {
	Bin     string
	Matches []string
	// Positions/Key persist the cursor of the last handled entry.
	Positions Positions
	Key       string
	// Since is where to start without a saved cursor (now − findtime:
	// older failures could not ban anyway).
	Since   time.Time
	MaxLine int
	Logger  *slog.Logger
}

type Journal struct {
	opt  JournalOptions
	emit func(src, line string, at time.Time)

	read, skipped atomic.Uint64
	mu            sync.Mutex
	err           string
	cursor        string
}

func NewJournal(opt JournalOptions, emit func(src, line string, at time.Time)) *Journal {
	if opt.MaxLine <= 0 {
		opt.MaxLine = DefaultMaxLine
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Journal{opt: opt, emit: emit}
}

func (j *Journal) name() string { return strings.Join(j.opt.Matches, " ") }

// Run keeps journalctl running until ctx is done, restarting it after
// the saved cursor when it exits.
func (j *Journal) Run(ctx context.Context) {
	if p, ok, err := j.opt.Positions.Load(j.opt.Key); err != nil {
		j.opt.Logger.Warn("cannot load journal cursor; starting at now - findtime", "err", err)
	} else if ok {
		j.cursor = p.Cursor
	}
	backoff := time.Second
	for {
		start := time.Now()
		err := j.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		j.setErr(err.Error())
		j.opt.Logger.Error(fmt.Sprintf("journal source %q: %v (restarting in %s)", j.name(), err, backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (j *Journal) args() []string {
	a := []string{"--follow", "--output=json", "--no-pager", "--quiet"}
	j.mu.Lock()
	c := j.cursor
	j.mu.Unlock()
	if c != "" {
		a = append(a, "--after-cursor="+c)
	} else {
		a = append(a, "--since=@"+strconv.FormatInt(j.opt.Since.Unix(), 10))
	}
	// journalmatch entries are FIELD=value terms and "+" (OR), passed
	// through as journalctl arguments.
	for _, m := range j.opt.Matches {
		a = append(a, strings.Fields(m)...)
	}
	return a
}

func (j *Journal) runOnce(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, j.opt.Bin, j.args()...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("journalctl: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w: install systemd's journalctl or set backend = file", j.opt.Bin, err)
	}
	j.setErr("")
	rerr := j.consume(out)
	werr := cmd.Wait()
	j.saveCursor()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := strings.TrimSpace(strings.SplitN(stderr.String(), "\n", 2)[0])
	switch {
	case rerr != nil:
		return rerr
	case werr != nil && msg != "":
		return fmt.Errorf("journalctl: %w: %s", werr, msg)
	case werr != nil:
		return fmt.Errorf("journalctl: %w", werr)
	default:
		return errors.New("journalctl exited")
	}
}

// consume reads one JSON object per line until EOF.
func (j *Journal) consume(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read journalctl output: %w", err)
		}
		if len(buf)+len(chunk) <= j.opt.MaxLine*2 {
			buf = append(buf, chunk...)
		} else {
			buf = append(buf[:0], "{"...) // over-long: make it fail to parse
		}
		if isPrefix {
			continue
		}
		j.entry(buf)
		buf = buf[:0]
		if br.Buffered() == 0 {
			// End of a burst: persist so a restart neither loses nor
			// recounts entries.
			j.saveCursor()
		}
	}
}

// journalEntry is the subset of journalctl's JSON export xdpban reads.
// Values are strings, arrays of byte values (non-UTF-8 data) or null.
type journalEntry struct {
	Cursor    string          `json:"__CURSOR"`
	Realtime  string          `json:"__REALTIME_TIMESTAMP"`
	Message   json.RawMessage `json:"MESSAGE"`
	Hostname  json.RawMessage `json:"_HOSTNAME"`
	Ident     json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	Comm      json.RawMessage `json:"_COMM"`
	SyslogPID json.RawMessage `json:"SYSLOG_PID"`
	PID       json.RawMessage `json:"_PID"`
}

func (j *Journal) entry(raw []byte) {
	j.read.Add(1)
	line, at, cursor, ok := FormatJournalEntry(raw)
	if cursor != "" {
		j.mu.Lock()
		j.cursor = cursor
		j.mu.Unlock()
	}
	if !ok || len(line) > j.opt.MaxLine {
		j.skipped.Add(1)
		return
	}
	line, _ = Intake(line)
	j.emit("journal", line, at)
}

// FormatJournalEntry turns one journalctl JSON object into the line a
// filter sees, formatted as fail2ban's systemd backend does
// ("[HOST ]IDENT[PID]: MESSAGE", newlines as \n) and prefixed with the
// entry's time in syslog form, so the same filters work on files and the
// journal. at is __REALTIME_TIMESTAMP. ok is false for entries that are
// not JSON objects or have no MESSAGE.
func FormatJournalEntry(raw []byte) (line string, at time.Time, cursor string, ok bool) {
	var e journalEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", time.Time{}, "", false
	}
	us, err := strconv.ParseInt(e.Realtime, 10, 64)
	if err != nil {
		return "", time.Time{}, e.Cursor, false
	}
	at = time.UnixMicro(us)
	msg, ok := journalString(e.Message)
	if !ok {
		return "", at, e.Cursor, false
	}
	var parts []string
	if h, ok := journalString(e.Hostname); ok && h != "" {
		parts = append(parts, h)
	}
	ident, _ := journalString(e.Ident)
	if ident == "" {
		ident, _ = journalString(e.Comm)
	}
	if ident != "" {
		pid, _ := journalString(e.SyslogPID)
		if pid == "" {
			pid, _ = journalString(e.PID)
		}
		if pid != "" {
			ident += "[" + pid + "]"
		}
		parts = append(parts, ident+":")
	}
	parts = append(parts, msg)
	line = at.Format(time.Stamp) + " " + strings.ReplaceAll(strings.Join(parts, " "), "\n", `\n`)
	return line, at, e.Cursor, true
}

// journalString decodes a journal field: a string, or an array of byte
// values (how journalctl exports non-UTF-8 data; an invalid result is
// rejected later as a skipped line).
func journalString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var bs []int
	if err := json.Unmarshal(raw, &bs); err == nil {
		b := make([]byte, 0, len(bs))
		for _, v := range bs {
			if v < 0 || v > 255 {
				return "", false
			}
			b = append(b, byte(v))
		}
		return string(b), true
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), true
	}
	return "", false
}

func (j *Journal) saveCursor() {
	j.mu.Lock()
	c := j.cursor
	j.mu.Unlock()
	if c == "" || j.opt.Positions == nil {
		return
	}
	if err := j.opt.Positions.Save(j.opt.Key, Position{Cursor: c}); err != nil {
		j.opt.Logger.Warn("cannot save journal cursor", "err", err)
	}
}

func (j *Journal) setErr(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.err = s
}

func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Stats{Kind: "journal", Name: j.name(), LinesRead: j.read.Load(), LinesSkipped: j.skipped.Load(), Err: j.err}
}

// limitWriter keeps the first n bytes written (journalctl's error).
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
