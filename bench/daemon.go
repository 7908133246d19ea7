package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair"
)

// daemonProc is an `xdpban run` (the real binary) of this run, on the
// pair's host interface in the host namespace. Every section that needs
// the daemon starts it with startDaemon.
type daemonProc struct {
	bin, dir, sock, pin, state, conf, out string
	p                                     *nspair.Pair
	client                                *control.Client
	cmd                                   *exec.Cmd
	done                                  chan error
}

// daemonConf is what a section's daemon runs with.
type daemonConf struct {
	// keys are the [xdpban] settings of xdpban.local (map sizes).
	keys map[string]int
	// extra is more of xdpban.local, after [xdpban] (a [fleet] section).
	extra string
	// jails is jail.local; the shipped sshd jail, which would follow
	// this machine's auth log, is disabled when empty.
	jails string
	// ready, when set, is asked once the socket answers until it says
	// the daemon is ready for the section (its jails follow their logs:
	// the socket answers before they start). It returns why not yet.
	ready func(ctx context.Context, d *daemonProc) error
}

// startDaemon writes the configuration into dir and runs the daemon
// until its socket answers and c.ready agrees. The daemon is stopped at
// cleanup if the section does not stop it first.
func startDaemon(ctx context.Context, o opts, p *nspair.Pair, dir string, c daemonConf) (*daemonProc, error) {
	if _, err := os.Stat(o.bin); err != nil {
		return nil, fmt.Errorf("xdpban binary %s: %w: run `make build` or pass -bin", o.bin, err)
	}
	d := &daemonProc{
		bin:   o.bin,
		p:     p,
		dir:   dir,
		sock:  filepath.Join(dir, "run", "xdpban.sock"),
		pin:   pinDir(),
		state: filepath.Join(dir, "state"),
		conf:  filepath.Join(dir, "etc"),
		out:   filepath.Join(dir, "daemon.log"),
		done:  make(chan error, 1),
	}
	if err := os.MkdirAll(d.conf, 0o755); err != nil {
		return nil, fmt.Errorf("daemon config dir: %w", err)
	}
	var b strings.Builder
	b.WriteString("[xdpban]\n")
	for _, k := range slices.Sorted(maps.Keys(c.keys)) {
		fmt.Fprintf(&b, "%s = %d\n", k, c.keys[k])
	}
	b.WriteString(c.extra)
	if c.jails == "" {
		c.jails = "[sshd]\nenabled = false\n"
	}
	for name, body := range map[string]string{"xdpban.local": b.String(), "jail.local": c.jails} {
		if err := os.WriteFile(filepath.Join(d.conf, name), []byte(body), 0o644); err != nil {
			return nil, fmt.Errorf("write daemon %s: %w", name, err)
		}
	}
	if err := d.launch(ctx, c); err != nil {
		return nil, err
	}
	atCleanup(d.stop)
	return d, nil
}

// launch runs `xdpban run` and waits until its socket answers and c.ready
// agrees.
func (d *daemonProc) launch(ctx context.Context, c daemonConf) error {
	p, dir := d.p, d.dir
	out, err := os.OpenFile(d.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("daemon log: %w", err)
	}
	defer out.Close()
	// nsenter, not `ip netns exec`: the latter remounts /sys and would
	// hide the bpffs the pins live on. --detach-on-exit: a stopped
	// daemon takes its XDP program and pins with it.
	args := append([]string{"--net=" + p.Host.Path(), "--", d.bin}, d.paths()...)
	args = append(args, "run", "--iface", p.HostIf, "--backend", "xdp", "--banlog", filepath.Join(dir, "ban.log"), "--detach-on-exit")
	d.cmd = exec.Command("nsenter", args...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	// A group of its own, so stop reaches anything it started too; and
	// told to stop when this run dies without cleaning up (SIGKILL), as
	// nsenter execs the daemon in place.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child ends,
		// not the process: this thread is held until the daemon exits.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := d.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.done <- d.cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start xdpban run: %w", err)
	}
	d.client = control.NewClient(d.sock)
	const within = 30 * time.Second
	deadline := time.Now().Add(within)
	for {
		err := pingDaemon(ctx, d.sock)
		if err == nil && c.ready != nil {
			err = c.ready(ctx, d)
		}
		if err == nil {
			return nil
		}
		select {
		case werr := <-d.done:
			// Reaped here: stop must not wait for it again.
			d.cmd = nil
			return fmt.Errorf("xdpban run exited at start (%v): %s", werr, d.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("xdpban run not ready %s after start (%v): %s", within, err, d.tail())
		}
	}
}

// restart kills the daemon (SIGKILL: the kernel keeps enforcing, as in a
// crash or an upgrade that stops it hard) and starts it again, and
// returns how long the new one took until its socket answered.
func (d *daemonProc) restart(ctx context.Context) (time.Duration, error) {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0, fmt.Errorf("daemon not running")
	}
	d.client.Close()
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
	d.cmd = nil
	t0 := time.Now()
	if err := d.launch(ctx, daemonConf{}); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func pingDaemon(ctx context.Context, sock string) error {
	c := control.NewClient(sock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.Ping(ctx)
}

func (d *daemonProc) paths() []string {
	return []string{"--socket", d.sock, "--pin-path", d.pin, "--state-dir", d.state, "--config", d.conf}
}

// tail is the end of the daemon's output, for errors.
func (d *daemonProc) tail() string {
	b, _ := os.ReadFile(d.out)
	return lastLines(string(b), 3)
}

// pid is the daemon's own pid: nsenter without --fork execs the program.
func (d *daemonProc) pid() (int, error) {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0, fmt.Errorf("daemon not running")
	}
	pid := d.cmd.Process.Pid
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || exe != d.bin {
		return 0, fmt.Errorf("pid %d is %q, not the daemon %s", pid, exe, d.bin)
	}
	return pid, nil
}

// stop ends the daemon (SIGTERM, SIGKILL after 15s); safe to call twice.
func (d *daemonProc) stop() {
	if d.client != nil {
		d.client.Close()
	}
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	stopGroup(d.cmd, d.done, 15*time.Second)
	d.cmd = nil
}

// stopGroup sends SIGTERM to the process group cmd leads (started with
// Setpgid) and SIGKILL after grace; done is its Wait's result.
func stopGroup(cmd *exec.Cmd, done <-chan error, grace time.Duration) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}
