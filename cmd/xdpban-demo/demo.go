package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair"
)

// Options are the demo's settings.
type Options struct {
	XDPBan   string // the xdpban binary
	BanTime  time.Duration
	MaxRetry int
	// Pace is the pause between the attacker's login attempts and between
	// live counter readings: slow enough to read along.
	Pace time.Duration
	Out  io.Writer
}

func defaultOptions() Options {
	return Options{XDPBan: "bin/xdpban", BanTime: 20 * time.Second, MaxRetry: 5, Pace: 2 * time.Second}
}

func (o Options) check() error {
	if o.BanTime < 5*time.Second || o.BanTime > 5*time.Minute || o.BanTime%time.Second != 0 {
		return fmt.Errorf("-bantime %s: use whole seconds from 5s to 5m", o.BanTime)
	}
	if o.MaxRetry < 1 || o.MaxRetry > 20 {
		return fmt.Errorf("-maxretry %d: use 1 to 20", o.MaxRetry)
	}
	st, err := os.Stat(o.XDPBan)
	if err != nil || st.IsDir() {
		return fmt.Errorf("xdpban binary %q not found: run `make build` or pass -xdpban PATH", o.XDPBan)
	}
	return nil
}

// Result is what the demo saw happen, for its test.
type Result struct {
	FailedAtBan     int           // the jail's failure count when the ban showed
	BanAfter        time.Duration // last failure logged → ban listed (20 ms polls)
	LoginBlocked    bool          // a login attempt during the ban got no answer
	DroppedPackets  uint64        // the ban entry's packet counter, last reading
	XDPDropped      uint64        // the program's global dropped counter
	SentDuringBan   int64         // UDP the attacker sent while the ban held
	ArrivedDuring   int64         // ... and how many of those reached the bastion
	MapDump         string        // bpftool's dump of ban_v4 during the ban
	Unbanned        bool          // the entry left the list when bantime ran out
	UnbanAfter      time.Duration // ban listed → entry gone
	DaemonUnbanLine bool          // the daemon logged msg=unban ... reason=expired
	ArrivedAfter    int64         // UDP reaching the bastion after the unban
	LoginAfter      bool          // a login attempt after the unban was answered
	// Created are the namespaces, pin dir, scratch dir and daemon pid the
	// run made; Leftovers those still there after cleanup.
	Created   []string
	Leftovers []string
}

const (
	sshPort    = 22
	udpPort    = 9 // discard
	udpRate    = 100
	attackerIP = "192.0.2.2"
)

// narrator writes the story; the daemon's log lines interleave with it
// as they happen, so writes are whole lines under a lock.
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (n *narrator) line(format string, a ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, format+"\n", a...)
}

func (n *narrator) step(title string) {
	n.line("\n== [+%4.1fs] %s", time.Since(n.start).Seconds(), title)
}

func (n *narrator) say(format string, a ...any) { n.line("   "+format, a...) }

func (n *narrator) block(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		n.line("     %s", l)
	}
}

// demo is one run's state.
type demo struct {
	o       Options
	n       *narrator
	u       *undo
	net     *nspair.Pair
	dir     string // scratch dir
	cfg     string // scratch config dir
	pin     string
	socket  string
	authLog string
	client  *control.Client
	dlog    chan string   // the daemon's log lines with msg=ban/unban
	running chan struct{} // closed when the daemon logs that it runs
	sent    atomic.Int64
	arrived atomic.Int64
	sshPID  atomic.Int64
	failNS  atomic.Int64 // when the fake sshd last logged a failure
	res     Result
}

// run plays the demo and cleans up after it whatever happens.
func run(ctx context.Context, o Options) (res *Result, err error) {
	d := &demo{o: o, n: &narrator{w: o.Out, start: time.Now()}, u: &undo{}, dlog: make(chan string, 16), running: make(chan struct{})}
	d.sshPID.Store(4000)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("demo panicked: %v", p)
		}
		d.n.step("Cleaning up")
		d.u.run()
		d.res.Leftovers = leftovers(d.res.Created)
		if len(d.res.Leftovers) == 0 {
			d.n.say("removed: %s; nothing is left", strings.Join(d.res.Created, ", "))
		} else {
			d.n.say("left behind (remove by hand): %s", strings.Join(d.res.Leftovers, ", "))
			if err == nil {
				err = fmt.Errorf("cleanup left %s behind", strings.Join(d.res.Leftovers, ", "))
			}
		}
		res = &d.res
	}()
	if err := d.setup(ctx); err != nil {
		return nil, err
	}
	return nil, d.play(ctx)
}

func (d *demo) setup(ctx context.Context) error {
	d.n.step("Setting up: a bastion and an attacker, each in a network namespace of its own")
	if removed := sweepStale(); len(removed) > 0 {
		d.n.say("removed what an earlier, killed demo left behind: %s", strings.Join(removed, ", "))
	}
	id := nspair.NewID()
	var err error
	if d.dir, err = os.MkdirTemp("", tmpPrefix+id+"-"); err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	dir := d.dir
	d.u.push(func() { _ = os.RemoveAll(dir) })
	d.pin = filepath.Join(bpffs, pinPrefix+id)
	d.u.push(func() { _ = os.RemoveAll(d.pin) })
	d.res.Created = append(d.res.Created, d.dir, d.pin)
	if d.net, err = newNetwork(d.u, id); err != nil {
		return err
	}
	d.res.Created = append(d.res.Created, "netns "+d.net.Host.Name, "netns "+d.net.Attacker.Name)
	d.n.say("netns %-26s %s on %s (the protected SSH server)", d.net.Host.Name, nspair.HostV4, d.net.HostIf)
	d.n.say("netns %-26s %s on %s", d.net.Attacker.Name, nspair.AttackerV4, d.net.AttackerIf)
	d.n.say("one veth pair between them, documentation addresses, no default route")

	d.cfg = filepath.Join(d.dir, "etc")
	d.socket = filepath.Join(d.dir, "run", "xdpban.sock")
	d.authLog = filepath.Join(d.dir, "auth.log")
	if err := os.MkdirAll(d.cfg, 0o755); err != nil {
		return fmt.Errorf("scratch config dir: %w", err)
	}
	if err := os.WriteFile(d.authLog, nil, 0o640); err != nil {
		return fmt.Errorf("demo auth log: %w", err)
	}
	// Small maps: the shipped sizes preallocate a million entries.
	daemonConf := fmt.Sprintf("[xdpban]\nbackend = xdp\ninterfaces = %s\npin_path = %s\nsocket = %s\nstate_dir = %s\nbanlog = %s\n"+
		"map_size_v4 = 1024\nmap_size_v6 = 1024\nmap_size_v4_net = 64\nmap_size_v6_net = 64\n",
		d.net.HostIf, d.pin, d.socket, filepath.Join(d.dir, "state"), filepath.Join(d.dir, "xdpban.log"))
	jailConf := fmt.Sprintf("[sshd]\nlogpath  = %s\nbackend  = file\nmaxretry = %d\nfindtime = 10m\nbantime  = %ds\nbantime.increment = false\n",
		d.authLog, d.o.MaxRetry, int(d.o.BanTime.Seconds()))
	if err := os.WriteFile(filepath.Join(d.cfg, "xdpban.local"), []byte(daemonConf), 0o644); err != nil {
		return fmt.Errorf("write xdpban.local: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.cfg, "jail.local"), []byte(jailConf), 0o644); err != nil {
		return fmt.Errorf("write jail.local: %w", err)
	}
	d.n.say("scratch config %s: the shipped sshd jail, with this jail.local:", d.cfg)
	d.n.block(jailConf)

	if err := d.startDaemon(ctx); err != nil {
		return err
	}
	if err := d.startServices(); err != nil {
		return err
	}
	return nil
}

// startDaemon runs `xdpban run` in the bastion and waits for its socket.
func (d *demo) startDaemon(ctx context.Context) error {
	args := []string{"--net=" + d.net.Host.Path(), "--", d.o.XDPBan, "--config", d.cfg, "run", "--detach-on-exit"}
	d.n.say("starting the daemon in the bastion: %s --config %s run --detach-on-exit", d.o.XDPBan, d.cfg)
	cmd := exec.Command("nsenter", args...)
	// nsenter execs xdpban in place, so the daemon is this process's
	// child: it is told to stop if the demo dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("daemon stderr: %w", err)
	}
	cmd.Stdout = cmd.Stderr
	exited := make(chan struct{})
	logged := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child ends,
		// not the process: this thread is held until the daemon exits.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		<-logged
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start xdpban run: %w", err)
	}
	d.res.Created = append(d.res.Created, fmt.Sprintf("pid %d", cmd.Process.Pid))
	go d.relayDaemonLog(stderr, logged)
	d.u.push(func() {
		select {
		case <-exited:
			return
		default:
		}
		// SIGTERM: the daemon detaches its XDP program and pins
		// (--detach-on-exit) before it exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	d.client = control.NewClient(d.socket)
	d.u.push(d.client.Close)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := d.client.Ping(pctx)
		cancel()
		if err == nil {
			// Its "running" line belongs before the story goes on.
			select {
			case <-d.running:
			case <-time.After(2 * time.Second):
			}
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("xdpban run exited at start (its log is above)")
		default:
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("xdpban socket %s not answering 20s after start: %w", d.socket, err)
		}
		if err := wait(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// relayDaemonLog prints the daemon's log lines into the story (without
// the timestamp the narration already gives) and passes ban and unban
// lines on.
func (d *demo) relayDaemonLog(r io.Reader, done chan<- struct{}) {
	defer close(done)
	sc := bufio.NewScanner(r)
	runningSeen := false
	for sc.Scan() {
		l := sc.Text()
		if _, rest, ok := strings.Cut(l, " level="); ok && strings.HasPrefix(l, "time=") {
			l = "level=" + rest
		}
		d.n.line("   [xdpban] %s", l)
		if !runningSeen && strings.Contains(l, `msg="xdpban running"`) {
			runningSeen = true
			close(d.running)
		}
		if strings.Contains(l, "msg=ban ") || strings.Contains(l, "msg=unban ") {
			select {
			case d.dlog <- l:
			default:
			}
		}
	}
}

// startServices starts the bastion's fake sshd and UDP sink and the
// attacker's UDP stream.
func (d *demo) startServices() error {
	var ln net.Listener
	var sink *net.UDPConn
	err := d.net.Host.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", nspair.HostV4, sshPort)); err != nil {
			return fmt.Errorf("listen on port %d: %w", sshPort, err)
		}
		sink, err = net.ListenUDP("udp4", &net.UDPAddr{IP: nspair.HostV4.AsSlice(), Port: udpPort})
		return err
	})
	if err != nil {
		return fmt.Errorf("bastion services: %w", err)
	}
	d.u.push(func() { ln.Close() })
	d.u.push(func() { sink.Close() })
	go d.fakeSSHD(ln)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := sink.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil && from.Addr().Unmap().String() == attackerIP {
				d.arrived.Add(1)
			}
		}
	}()

	var src *net.UDPConn
	err = d.net.Attacker.Do(func() error {
		var err error
		src, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: nspair.HostV4.AsSlice(), Port: udpPort})
		return err
	})
	if err != nil {
		return fmt.Errorf("attacker udp socket: %w", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Bounded: udpRate a second for at most the demo's longest
		// possible run, and never after cleanup starts.
		limit := int64(udpRate) * int64((d.o.BanTime + 3*time.Minute).Seconds())
		t := time.NewTicker(time.Second / udpRate)
		defer t.Stop()
		payload := []byte("not really ssh")
		for d.sent.Load() < limit {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if _, err := src.Write(payload); err == nil {
				d.sent.Add(1)
			}
		}
	}()
	d.u.push(func() { close(stop); wg.Wait(); src.Close() })
	return nil
}

// fakeSSHD answers each connection with an OpenSSH banner and logs a
// failed password for it, in OpenSSH's words, to the demo's auth.log
// before it hangs up: the attacker's connection is the login attempt.
func (d *demo) fakeSSHD(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		ra := c.RemoteAddr().(*net.TCPAddr)
		_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
		line := fmt.Sprintf("%s bastion sshd[%d]: Failed password for root from %s port %d ssh2\n",
			time.Now().Format(time.Stamp), d.sshPID.Add(1), ra.IP, ra.Port)
		if f, err := os.OpenFile(d.authLog, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			_, _ = f.WriteString(line)
			f.Close()
			d.failNS.Store(time.Now().UnixNano())
		}
		c.Close()
	}
}

// login is one attempt from the attacker: it connects to port 22 and
// reads the banner; the bastion logs the failure and hangs up. It
// returns the banner, or the error when nothing answered.
func (d *demo) login(ctx context.Context) (string, error) {
	var banner string
	err := d.net.Attacker.Do(func() error {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var dl net.Dialer
		c, err := dl.DialContext(dctx, "tcp4", fmt.Sprintf("%s:%d", nspair.HostV4, sshPort))
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := bufio.NewReader(c).ReadString('\n')
		banner = strings.TrimSpace(b)
		if err != nil {
			return fmt.Errorf("read banner: %w", err)
		}
		// Wait for the hang-up: by then the failure is in the log.
		_, _ = io.Copy(io.Discard, c)
		return nil
	})
	return banner, err
}

// xdpban runs a CLI command against the demo's daemon and shows it.
func (d *demo) xdpban(ctx context.Context, filter func(string) bool, args ...string) error {
	d.n.say("$ xdpban %s", strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, d.o.XDPBan, append([]string{"--config", d.cfg}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xdpban %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if filter == nil || filter(l) {
			keep = append(keep, l)
		}
	}
	d.n.block(strings.Join(keep, "\n"))
	return nil
}

// traffic tells what the attacker's UDP stream did since the last call.
type traffic struct{ sent, arrived int64 }

func (d *demo) snapshot() traffic { return traffic{d.sent.Load(), d.arrived.Load()} }

func (d *demo) trafficSince(t traffic, what string) traffic {
	now := d.snapshot()
	d.n.say("traffic %s: attacker sent %d UDP packets, %d arrived at the bastion", what, now.sent-t.sent, now.arrived-t.arrived)
	return now
}

func (d *demo) banEntry(ctx context.Context) (*control.Entry, error) {
	es, err := d.client.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	for _, e := range es {
		if e.Addr == attackerIP+"/32" {
			return &e, nil
		}
	}
	return nil, nil
}

func (d *demo) play(ctx context.Context) error {
	n := d.n
	n.step("xdpban is running in the bastion, XDP attached to " + d.net.HostIf)
	n.say("(every `xdpban ...` below is `%s --config %s ...`)", d.o.XDPBan, d.cfg)
	if err := d.xdpban(ctx, nil, "status", "sshd"); err != nil {
		return err
	}

	n.step(fmt.Sprintf("The attacker starts sending traffic: %d UDP packets a second to %s:%d", udpRate, nspair.HostV4, udpPort))
	t0 := d.snapshot()
	if err := wait(ctx, d.o.Pace); err != nil {
		return err
	}
	d.trafficSince(t0, "so far")

	n.step(fmt.Sprintf("The attacker guesses root's password over SSH; the jail bans after %d failures", d.o.MaxRetry))
	for i := 1; i <= d.o.MaxRetry; i++ {
		banner, err := d.login(ctx)
		if err != nil {
			return fmt.Errorf("login attempt %d before any ban got no answer: %w", i, err)
		}
		n.say("attempt %d: %s answered, password rejected; the bastion's auth.log now ends with:", i, banner)
		n.block(lastLine(d.authLog))
		if i == (d.o.MaxRetry+1)/2 && i < d.o.MaxRetry {
			if err := wait(ctx, 300*time.Millisecond); err != nil {
				return err
			}
			if err := d.xdpban(ctx, nil, "status", "sshd"); err != nil {
				return err
			}
		}
		if i < d.o.MaxRetry {
			if err := wait(ctx, d.o.Pace); err != nil {
				return err
			}
		}
	}

	var banned *control.Entry
	for deadline := time.Now().Add(15 * time.Second); banned == nil; {
		e, err := d.banEntry(ctx)
		if err != nil {
			return err
		}
		if e != nil {
			banned = e
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no ban 15s after %d failures", d.o.MaxRetry)
		}
		if err := wait(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	bannedAt := time.Now()
	atBan := d.snapshot()
	d.res.BanAfter = bannedAt.Sub(time.Unix(0, d.failNS.Load()))
	// The map entry comes first, the jail's books right after it.
	var js control.JailStatus
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; {
		if js, err = d.client.JailStatus(ctx, "sshd"); err != nil {
			return fmt.Errorf("jail status: %w", err)
		}
		if js.CurrentlyBanned > 0 || time.Now().After(deadline) {
			break
		}
		if err := wait(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	d.res.FailedAtBan = js.TotalFailed
	n.step(fmt.Sprintf("Banned: %s is in the XDP map %d ms after the last failure", attackerIP, d.res.BanAfter.Milliseconds()))
	if err := d.xdpban(ctx, nil, "status", "sshd"); err != nil {
		return err
	}

	n.step("Dropped in XDP: nothing from the attacker reaches the bastion's network stack")
	if _, err := d.login(ctx); err != nil {
		d.res.LoginBlocked = true
		n.say("attempt %d: no answer within 2s (%s): its SYNs were dropped before the bastion's TCP saw them", d.o.MaxRetry+1, shortErr(err))
	} else {
		n.say("attempt %d: answered, which it should not have been", d.o.MaxRetry+1)
	}
	shown, shownAt := atBan, bannedAt
	dumped := false
	var expires time.Time
	if banned.Expires != nil {
		expires, _ = time.Parse(time.RFC3339, *banned.Expires)
	}
	for {
		e, err := d.banEntry(ctx)
		if err != nil {
			return err
		}
		if e == nil {
			break
		}
		// Traffic is counted while the entry still has time to run, so
		// packets passing once it expired never count against it.
		if expires.IsZero() || time.Until(expires) > time.Second {
			now := d.snapshot()
			d.res.SentDuringBan = now.sent - atBan.sent
			d.res.ArrivedDuring = now.arrived - atBan.arrived
		}
		d.res.DroppedPackets = e.Packets
		if err := d.xdpban(ctx, nil, "list"); err != nil {
			return err
		}
		label := fmt.Sprintf("in the last %.1fs", time.Since(shownAt).Seconds())
		if shownAt == bannedAt {
			label = "since the ban"
		}
		shown, shownAt = d.trafficSince(shown, label), time.Now()
		if !dumped {
			dumped = true
			n.say("the XDP program's global counters:")
			if err := d.xdpban(ctx, func(l string) bool { return strings.HasPrefix(l, "counter:") }, "status"); err != nil {
				return err
			}
			if err := d.dumpMap(ctx); err != nil {
				return err
			}
		}
		if time.Since(bannedAt) > d.o.BanTime+15*time.Second {
			return fmt.Errorf("ban still listed %s after it began (bantime %s)", time.Since(bannedAt).Round(time.Second), d.o.BanTime)
		}
		// Next reading after two paces, or sooner once the entry is gone.
		for end := time.Now().Add(2 * d.o.Pace); time.Now().Before(end); {
			if err := wait(ctx, 250*time.Millisecond); err != nil {
				return err
			}
			if e, err := d.banEntry(ctx); err != nil {
				return err
			} else if e == nil {
				break
			}
		}
	}
	d.res.Unbanned = true
	d.res.UnbanAfter = time.Since(bannedAt)
	st, err := d.client.Status(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	d.res.XDPDropped = st.Counters["dropped"]

	n.step(fmt.Sprintf("Unbanned: the %s bantime ran out, the entry is gone (%.1fs after the ban)", d.o.BanTime, d.res.UnbanAfter.Seconds()))
	select {
	case l := <-d.waitUnbanLine(ctx):
		d.res.DaemonUnbanLine = strings.Contains(l, "reason=expired")
	case <-time.After(3 * time.Second):
	}
	if err := d.xdpban(ctx, nil, "list"); err != nil {
		return err
	}
	after := d.snapshot()
	banner, err := d.login(ctx)
	if err == nil {
		d.res.LoginAfter = true
		n.say("attempt %d: %s answered again (and this failure counts towards the next ban)", d.o.MaxRetry+2, banner)
	} else {
		n.say("attempt %d: still no answer (%s)", d.o.MaxRetry+2, shortErr(err))
	}
	if err := wait(ctx, d.o.Pace); err != nil {
		return err
	}
	d.res.ArrivedAfter = d.snapshot().arrived - after.arrived
	d.trafficSince(after, "since the unban")
	if err := d.xdpban(ctx, nil, "status", "sshd"); err != nil {
		return err
	}
	n.step("Summary")
	n.say("failures counted before the ban: %d; ban %d ms after the last one", d.res.FailedAtBan, d.res.BanAfter.Milliseconds())
	n.say("while banned: the attacker sent %d UDP packets, %d arrived; XDP dropped %d packets from it (UDP and SYNs)",
		d.res.SentDuringBan, d.res.ArrivedDuring, d.res.DroppedPackets)
	n.say("unbanned %.1fs after the ban (bantime %s); %d packets arrived in the %.1fs after it",
		d.res.UnbanAfter.Seconds(), d.o.BanTime, d.res.ArrivedAfter, d.o.Pace.Seconds())
	return nil
}

// waitUnbanLine delivers the daemon's next unban log line.
func (d *demo) waitUnbanLine(ctx context.Context) <-chan string {
	c := make(chan string, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-d.dlog:
				if strings.Contains(l, "msg=unban ") {
					c <- l
					return
				}
			}
		}
	}()
	return c
}

// dumpMap shows the pinned IPv4 ban map through bpftool: the values'
// fields are named from the BTF in xdpban's object.
func (d *demo) dumpMap(ctx context.Context) error {
	path := filepath.Join(d.pin, "ban_v4")
	d.n.say("$ bpftool map dump pinned %s", path)
	if _, err := exec.LookPath("bpftool"); err != nil {
		d.n.say("bpftool is not installed (apt-get install bpftool, or `make deps`): no dump")
		return nil
	}
	out, err := exec.CommandContext(ctx, "bpftool", "map", "dump", "pinned", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bpftool map dump pinned %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	d.res.MapDump = string(out)
	d.n.block(string(out))
	d.n.say("key: the banned address's bytes; expires_ns: CLOCK_BOOTTIME end of the ban; packets/bytes: dropped so far")
	return nil
}

func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	s := strings.TrimRight(string(b), "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// leftovers reports which of the run's creations still exist.
func leftovers(created []string) []string {
	var left []string
	for _, c := range created {
		switch {
		case strings.HasPrefix(c, "netns "):
			if _, err := os.Stat(filepath.Join(netnsDir, strings.TrimPrefix(c, "netns "))); err == nil {
				left = append(left, c)
			}
		case strings.HasPrefix(c, "pid "):
			var pid int
			if _, err := fmt.Sscanf(c, "pid %d", &pid); err == nil && syscall.Kill(pid, 0) == nil {
				left = append(left, "xdpban daemon "+c)
			}
		default:
			if _, err := os.Stat(c); err == nil {
				left = append(left, c)
			}
		}
	}
	return left
}

// shortErr is a dial error without the addresses the story already gave.
func shortErr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}
