package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
	"github.com/xdpban/xdpban/internal/syncbuf"
)

// The binaries are built once for every test of the package, in a
// directory of the package's own.
var (
	buildOnce         sync.Once
	binDir            string
	xdpbanBin, demoGo string
	buildErr          error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) (xdpban, demo string) {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "xdemo-test-bin-"); buildErr != nil {
			return
		}
		xdpbanBin, demoGo = filepath.Join(binDir, "xdpban"), filepath.Join(binDir, "demo")
		for _, b := range [][2]string{{xdpbanBin, "github.com/xdpban/xdpban/cmd/xdpban"}, {demoGo, "github.com/xdpban/xdpban/cmd/xdpban-demo"}} {
			if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %w\n%s", b[1], err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return xdpbanBin, demoGo
}

// artifacts lists what a demo run by pid has in the system right now:
// namespaces, pin dirs, scratch dirs and processes naming its scratch dir.
func artifacts(t *testing.T, pid int) []string {
	t.Helper()
	id := strconv.Itoa(pid) + "-"
	var found []string
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], nsPrefix+id) {
			found = append(found, "netns "+f[0])
		}
	}
	for _, g := range []string{filepath.Join(bpffs, pinPrefix+id+"*"), filepath.Join(os.TempDir(), tmpPrefix+id+"*")} {
		m, _ := filepath.Glob(g)
		found = append(found, m...)
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte(tmpPrefix+id)) {
			found = append(found, "process "+p.Name()+": "+string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

// TestDemoEndToEnd plays the whole demo with a short bantime and checks
// that what it narrates happened: failures counted, the ban, packets
// dropped in XDP and none arriving, the unban, traffic and logins
// answered again, the map dump, and nothing left afterwards.
func TestDemoEndToEnd(t *testing.T) {
	nspairtest.Require(t)
	xdpban, _ := binaries(t)
	var out syncbuf.Buffer
	o := Options{XDPBan: xdpban, BanTime: 6 * time.Second, MaxRetry: 5, Pace: 500 * time.Millisecond, Out: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := run(ctx, o)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	story := out.String()
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf(format+"\nnarration:\n%s", append(a, story)...)
	}
	if res.FailedAtBan != 5 {
		fail("jail counted %d failures at the ban, want 5", res.FailedAtBan)
	}
	if !res.LoginBlocked {
		fail("a login during the ban was answered")
	}
	if res.SentDuringBan < 100 || res.ArrivedDuring != 0 {
		fail("during the ban %d UDP packets sent, %d arrived; want many sent, none arrived", res.SentDuringBan, res.ArrivedDuring)
	}
	// The entry's counter is read a moment apart from the sender's, so a
	// few packets either way are timing, not loss.
	if res.DroppedPackets < uint64(res.SentDuringBan)*9/10 || res.XDPDropped < res.DroppedPackets {
		fail("ban entry counted %d drops, global counter %d, for %d packets sent while banned", res.DroppedPackets, res.XDPDropped, res.SentDuringBan)
	}
	for _, f := range []string{`"key": [192,0,2,2`, `"expires_ns": `, `"packets": `, `"bytes": `, `"jail_id": 1`} {
		if !strings.Contains(res.MapDump, f) {
			fail("bpftool dump lacks %s:\n%s", f, res.MapDump)
		}
	}
	if !res.Unbanned || res.UnbanAfter < o.BanTime-time.Second || res.UnbanAfter > o.BanTime+5*time.Second {
		fail("unbanned=%v %s after the ban, want about %s", res.Unbanned, res.UnbanAfter, o.BanTime)
	}
	if !res.DaemonUnbanLine {
		fail("the daemon logged no unban with reason=expired")
	}
	if res.ArrivedAfter == 0 || !res.LoginAfter {
		fail("after the unban %d packets arrived, login answered=%v", res.ArrivedAfter, res.LoginAfter)
	}
	for _, want := range []string{
		"Failed password for root from 192.0.2.2 port ",
		"|  |- Total failed:\t3",
		"msg=ban jail=sshd addr=192.0.2.2/32",
		"== [", "Banned: 192.0.2.2 is in the XDP map",
		"192.0.2.2/32  sshd  ",
		"counter:    dropped",
		"msg=unban jail=sshd addr=192.0.2.2/32 reason=expired",
		"|- Total banned:\t1",
		"nothing is left",
	} {
		if !strings.Contains(story, want) {
			fail("narration lacks %q", want)
		}
	}
	if len(res.Created) < 5 || len(res.Leftovers) != 0 {
		fail("created %v, left %v", res.Created, res.Leftovers)
	}
	if left := artifacts(t, os.Getpid()); len(left) != 0 {
		// Other tests of this process may run demos too, but not at the
		// same time: this package's tests are sequential.
		fail("left behind: %v", left)
	}
}

// startDemo runs the demo program and returns it with a channel of its
// stdout lines.
func startDemo(t *testing.T, args ...string) (*exec.Cmd, <-chan string, *syncbuf.Buffer) {
	t.Helper()
	xdpban, demo := binaries(t)
	cmd := exec.Command(demo, append([]string{"-xdpban", xdpban}, args...)...)
	var all syncbuf.Buffer
	cmd.Stderr = &all
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		// Whatever the test left: the next run's sweep would remove it,
		// but do not wait for one.
		sweepStale()
	})
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
	}()
	return cmd, lines, &all
}

func waitLine(t *testing.T, lines <-chan string, all *syncbuf.Buffer, substr string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended before %q:\n%s", substr, all.String())
			}
			if strings.Contains(l, substr) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within %s:\n%s", substr, d, all.String())
		}
	}
}

// TestDemoInterrupted stops the demo with SIGTERM in the middle of the
// ban: it must exit non-zero having removed everything.
func TestDemoInterrupted(t *testing.T) {
	nspairtest.Require(t)
	cmd, lines, all := startDemo(t, "-bantime", "60s")
	waitLine(t, lines, all, "Banned: 192.0.2.2", 60*time.Second)
	if left := artifacts(t, cmd.Process.Pid); len(left) < 4 {
		t.Fatalf("during the demo only %v exist: the cleanup check below would prove nothing", left)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if cmd.ProcessState.ExitCode() != 130 {
			t.Fatalf("exit after SIGTERM: %v, want code 130\n%s", err, all.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("demo still running 30s after SIGTERM:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "nothing is left") || !strings.Contains(all.String(), "interrupted") {
		t.Fatalf("no cleanup report:\n%s", all.String())
	}
	if left := artifacts(t, cmd.Process.Pid); len(left) != 0 {
		t.Fatalf("left behind after SIGTERM: %v\n%s", left, all.String())
	}
}

// TestDemoKilledIsSweptNextRun kills the demo with SIGKILL (no cleanup
// possible) and checks that the next run's sweep removes its leftovers.
func TestDemoKilledIsSweptNextRun(t *testing.T) {
	nspairtest.Require(t)
	cmd, lines, all := startDemo(t)
	waitLine(t, lines, all, "xdpban is running in the bastion", 30*time.Second)
	pid := cmd.Process.Pid
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	left := artifacts(t, pid)
	var ns int
	for _, l := range left {
		if strings.HasPrefix(l, "netns ") {
			ns++
		}
	}
	if ns != 2 {
		t.Fatalf("after SIGKILL %v remain, want both namespaces at least (else the sweep is not tested)", left)
	}
	removed := sweepStale()
	if len(removed) < 2 {
		t.Fatalf("sweep removed %v of %v", removed, left)
	}
	// The daemon may take a moment to go (SIGTERM on its parent's death).
	deadline := time.Now().Add(10 * time.Second)
	for {
		left = artifacts(t, pid)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the sweep %v remain (removed %v)", left, removed)
		}
		time.Sleep(200 * time.Millisecond)
		sweepStale()
	}
}

// TestBadInput: a bad flag or value is one line on stderr and exit 2,
// before anything is created (no root needed).
func TestBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-bantime", "3s"},
		{"-bantime", "soon"},
		{"-bantime", "1500ms"},
		{"-maxretry", "0"},
		{"-xdpban", "/nonexistent/xdpban"},
		{"-nosuchflag"},
		{"extra"},
	} {
		_, demo := binaries(t)
		var stderr bytes.Buffer
		cmd := exec.Command(demo, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		if cmd.ProcessState.ExitCode() != 2 {
			t.Errorf("demo %v: %v, want exit 2; stderr: %s", args, err, stderr.String())
		}
		if lines := strings.Count(stderr.String(), "\n"); lines != 1 || !strings.HasPrefix(stderr.String(), "demo: ") {
			t.Errorf("demo %v: stderr is not one line: %q", args, stderr.String())
		}
	}
}
