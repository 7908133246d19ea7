package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xdpban/xdpban/internal/nspair"
)

// fail2ban is a fail2ban-server of this run: its own configuration,
// socket, pidfile and database in a scratch directory, running inside a
// network namespace, with one jail whose only action writes a timestamp
// to a file. It never runs a firewall action: the action.d directory it
// reads holds the stamp action and nothing else.
type fail2ban struct {
	dir, log, stamps, sock string
	cmd                    *exec.Cmd
	done                   chan error
}

// fail2banAvailable says why fail2ban cannot be measured, or nil.
func fail2banAvailable() error {
	for _, b := range []string{"fail2ban-server", "fail2ban-regex"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not found: install fail2ban (apt-get install fail2ban, or `make deps-bench`)", b)
		}
	}
	if _, err := os.Stat(fail2banFilter("sshd")); err != nil {
		return fmt.Errorf("fail2ban's sshd filter %s is missing: reinstall fail2ban", fail2banFilter("sshd"))
	}
	return nil
}

func fail2banFilter(name string) string { return "/etc/fail2ban/filter.d/" + name + ".conf" }

func fail2banVersion() string {
	out, err := exec.Command("fail2ban-server", "-V").Output()
	if err != nil {
		return "fail2ban (version unknown)"
	}
	return "fail2ban " + strings.TrimSpace(string(out))
}

// startFail2ban writes the configuration and starts the server in ns,
// and returns once the jail is running.
func startFail2ban(ctx context.Context, ns *nspair.NS, dir string) (*fail2ban, error) {
	f := &fail2ban{
		dir:    dir,
		log:    filepath.Join(dir, "auth.log"),
		stamps: filepath.Join(dir, "bans.stamp"),
		sock:   filepath.Join(dir, "f2b.sock"),
		done:   make(chan error, 1),
	}
	conf := filepath.Join(dir, "conf")
	if err := os.MkdirAll(filepath.Join(conf, "action.d"), 0o755); err != nil {
		return nil, fmt.Errorf("fail2ban config dir: %w", err)
	}
	// Filters are fail2ban's own, read where the package put them.
	if err := os.Symlink("/etc/fail2ban/filter.d", filepath.Join(conf, "filter.d")); err != nil {
		return nil, fmt.Errorf("fail2ban config dir: %w", err)
	}
	files := map[string]string{
		"fail2ban.conf": fmt.Sprintf(`[Definition]
loglevel = INFO
logtarget = %s
socket = %s
pidfile = %s
dbfile = %s
dbpurgeage = 1d
`, filepath.Join(dir, "fail2ban.log"), f.sock, filepath.Join(dir, "f2b.pid"), filepath.Join(dir, "f2b.sqlite3")),
		// fail2ban reads %% as a literal %, and Sprintf halves %%%% to %%.
		"action.d/stamp.conf": fmt.Sprintf(`[Definition]
actionstart =
actionstop =
actioncheck =
actionban = echo "<ip> $(date +%%%%s.%%%%N)" >> %s
actionunban =
`, f.stamps),
		"jail.conf": fmt.Sprintf(`[DEFAULT]
ignoreself = false
ignoreip = 127.0.0.1/8 ::1

[sshd]
enabled = true
filter = sshd
logpath = %s
backend = auto
maxretry = 1
findtime = 10m
bantime = 1h
action = stamp
`, f.log),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o644); err != nil {
			return nil, fmt.Errorf("write fail2ban %s: %w", name, err)
		}
	}
	if err := os.WriteFile(f.log, nil, 0o644); err != nil {
		return nil, fmt.Errorf("create fail2ban log: %w", err)
	}
	f.cmd = ns.Command(context.Background(), "fail2ban-server", "-f", "-x", "-c", conf,
		"-s", f.sock, "-p", filepath.Join(dir, "f2b.pid"), "--logtarget", filepath.Join(dir, "fail2ban.log"))
	f.cmd.Stdout, f.cmd.Stderr = nil, nil
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := f.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fail2ban-server: %w", err)
	}
	go func() { f.done <- f.cmd.Wait() }()
	atCleanup(f.stop)

	// Ready when the jail's start is logged.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "fail2ban.log"))
		if strings.Contains(string(b), "Jail 'sshd' started") {
			return f, nil
		}
		select {
		case err := <-f.done:
			// Reaped here: stop must not wait for it again.
			f.cmd = nil
			return nil, fmt.Errorf("fail2ban-server exited while starting: %v: %s", err, lastLines(string(b), 3))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fail2ban-server did not start its jail within 30s: %s", lastLines(string(b), 3))
		}
	}
}

// backend is the log backend fail2ban chose for backend = auto, from its
// log line "Jail 'sshd' uses pyinotify {}" (poller, Gamin, pyinotify,
// systemd).
func (f *fail2ban) backend() string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "fail2ban.log"))
	const mark = "Jail 'sshd' uses "
	for _, l := range strings.Split(string(b), "\n") {
		if _, rest, ok := strings.Cut(l, mark); ok {
			if name, _, _ := strings.Cut(rest, " "); name != "" {
				return "auto (" + name + ")"
			}
		}
	}
	return "auto"
}

func (f *fail2ban) stop() {
	if f.cmd == nil || f.cmd.Process == nil {
		return
	}
	// The process group: ip netns exec, the server and any action shell.
	stopGroup(f.cmd, f.done, 5*time.Second)
	f.cmd = nil
}

// latency appends one sshd failure from addr and waits for the ban
// action to stamp it; the result is stamp time minus append time.
func (f *fail2ban) latency(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	t0 := time.Now()
	if err := appendLine(f.log, sshdFailure(t0, addr)); err != nil {
		return 0, err
	}
	deadline := t0.Add(10 * time.Second)
	for {
		if ts, ok, err := findStamp(f.stamps, addr); err != nil {
			return 0, err
		} else if ok {
			return ts.Sub(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("fail2ban did not ban %s within 10s of the log line", addr)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func findStamp(path string, addr netip.Addr) (time.Time, bool, error) {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read ban stamps: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		ip, ts, ok := strings.Cut(sc.Text(), " ")
		if !ok || ip != addr.String() {
			continue
		}
		sec, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("ban stamp %q: %w", sc.Text(), err)
		}
		whole := int64(sec)
		return time.Unix(whole, int64((sec-float64(whole))*1e9)), true, nil
	}
	return time.Time{}, false, nil
}

// sshdFailure is a realistic OpenSSH failure line as syslog writes it.
func sshdFailure(t time.Time, addr netip.Addr) string {
	return fmt.Sprintf("%s bastion sshd[%d]: Failed password for invalid user admin from %s port %d ssh2",
		t.Format(time.Stamp), 20000+t.Nanosecond()%9000, addr, 40000+t.Nanosecond()%20000)
}

// appendLine appends one line with one write, as a syslog daemon does.
func appendLine(path, line string) error {
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	_, err = fh.WriteString(line + "\n")
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " / ")
}

// latencySources are the attacker addresses of the latency runs, one per
// run, all documentation addresses.
func latencySources(n int) []netip.Addr {
	var out []netip.Addr
	for _, base := range []string{"198.51.100.0", "203.0.113.0"} {
		a := netip.MustParseAddr(base)
		for i := 0; i < 254 && len(out) < n; i++ {
			a = a.Next()
			out = append(out, a)
		}
	}
	return out
}
