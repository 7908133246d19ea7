// Package banlog writes the ban log: one line per ban and unban in
// fail2ban's own format, logger name "fail2ban.actions" included, so
// fail2ban's shipped `recidive` filter (and any tool already parsing
// fail2ban.log) reads xdpban's log unchanged.
package banlog

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// DefaultPath is where the ban log goes unless `banlog` says otherwise.
const DefaultPath = "/var/log/xdpban/xdpban.log"

// timeLayout is fail2ban's: comma before the milliseconds.
const timeLayout = "2006-01-02 15:04:05,000"

// logger is the logger name fail2ban writes ban lines under; its recidive
// filter matches that name and no other, so xdpban writes it too.
const logger = "fail2ban.actions"

// Log appends ban/unban lines to a file. Safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	path string
	w    io.WriteCloser
	pid  int
	log  *slog.Logger
	now  func() time.Time
}

// Open opens (creating, 0640) the ban log for appending. An empty path
// means no file: only the slog lines are written.
func Open(path string, log *slog.Logger) (*Log, error) {
	if log == nil {
		log = slog.Default()
	}
	l := &Log{path: path, pid: os.Getpid(), log: log, now: time.Now}
	if path == "" {
		return l, nil
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return fmt.Errorf("ban log %s: %w", l.path, err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("ban log %s: %w: set `banlog` to a writable path", l.path, err)
	}
	l.w = f
	return nil
}

// Reopen closes and reopens the file, for logrotate's postrotate (SIGHUP).
func (l *Log) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.path == "" {
		return nil
	}
	if l.w != nil {
		l.w.Close()
	}
	return l.open()
}

// Addr is how a ban's target is written: always an address, since
// fail2ban's <HOST>, and so its recidive filter, matches nothing else
// ("198.51.100.0/24" would be missed). A single host is its address, a
// prefix its network address; the slog line, `xdpban list` and the store
// keep the prefix length. A recidive jail counting a prefix ban so bans
// the network address: never an address outside what was banned.
func Addr(p netip.Prefix) string {
	return p.Masked().Addr().String()
}

// Ban logs a ban.
func (l *Log) Ban(jail string, p netip.Prefix, expires time.Time) {
	l.write("Ban", jail, p)
	l.slogBan(jail, p, expires)
}

func (l *Log) slogBan(jail string, p netip.Prefix, expires time.Time) {
	args := []any{"jail", jail, "addr", p.String()}
	if expires.IsZero() {
		args = append(args, "permanent", true)
	} else {
		args = append(args, "expires", expires.UTC().Format(time.RFC3339))
	}
	l.log.Info("ban", args...)
}

// slogBatch is the largest batch logged ban by ban through slog; larger
// ones (a --from-file import) get one summary line there, since the ban
// log file already has every ban and a million-line import would
// otherwise write a million lines twice.
const slogBatch = 100

// BanBatch logs many bans with one write to the file.
func (l *Log) BanBatch(bs []bans.Ban) {
	if len(bs) == 0 {
		return
	}
	l.mu.Lock()
	if l.w != nil {
		// The line's head is the same for the whole batch; each line
		// appends only its jail and address (a million lines through
		// fmt were a tenth of an import).
		head := fmt.Appendf(nil, "%s %s [%d]: NOTICE  [", l.now().Format(timeLayout), logger, l.pid)
		buf := make([]byte, 0, 64*1024)
		for i, b := range bs {
			buf = append(buf, head...)
			buf = append(buf, b.Jail...)
			buf = append(buf, "] Ban "...)
			buf = b.Prefix.Masked().Addr().AppendTo(buf)
			buf = append(buf, '\n')
			if len(buf) >= 60*1024 || i == len(bs)-1 {
				if _, err := l.w.Write(buf); err != nil {
					l.log.Error("write ban log failed", "path", l.path, "err", err)
					break
				}
				buf = buf[:0]
			}
		}
	}
	l.mu.Unlock()
	if len(bs) <= slogBatch || l.path == "" {
		for _, b := range bs {
			l.slogBan(b.Jail, b.Prefix, b.Expires)
		}
		return
	}
	jails := map[string]int{}
	for _, b := range bs {
		jails[b.Jail]++
	}
	l.log.Info("bans", "count", len(bs), "jails", jails, "first", bs[0].Prefix.String(),
		"last", bs[len(bs)-1].Prefix.String(), "banlog", l.path)
}

// Unban logs an unban; why is "expired", "manual", "flush" or similar.
func (l *Log) Unban(jail string, p netip.Prefix, why string) {
	l.write("Unban", jail, p)
	l.log.Info("unban", "jail", jail, "addr", p.String(), "reason", why)
}

func (l *Log) write(verb, jail string, p netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return
	}
	line := fmt.Sprintf("%s %s [%d]: NOTICE  [%s] %s %s\n",
		l.now().Format(timeLayout), logger, l.pid, jail, verb, Addr(p))
	if _, err := io.WriteString(l.w, line); err != nil {
		l.log.Error("write ban log failed", "path", l.path, "err", err)
	}
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return nil
	}
	err := l.w.Close()
	l.w = nil
	return err
}
