package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/xdpban/xdpban/internal/nspair"
)

// The demo's network is an internal/nspair pair, its bastion being the
// pair's host; every step that made something registers its undo.

// Every name the demo creates starts with one of these and carries the
// demo's pid, so the next run can tell a killed run's leftovers (pid
// gone) from a demo running beside it.
const (
	nsPrefix  = "xdemo-"
	pinPrefix = "xdpban-demo-"
	tmpPrefix = "xdpban-demo-"
	bpffs     = "/sys/fs/bpf"
	netnsDir  = nspair.NetnsDir
)

// undo is a run's cleanup stack, run newest first.
type undo struct {
	mu  sync.Mutex
	fns []func()
}

func (u *undo) push(f func()) {
	u.mu.Lock()
	u.fns = append(u.fns, f)
	u.mu.Unlock()
}

// run undoes everything registered so far; safe to call twice.
func (u *undo) run() {
	u.mu.Lock()
	fns := u.fns
	u.fns = nil
	u.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// newNetwork makes the bastion and the attacker namespaces of run id (an
// nspair.NewID) and registers their deletion.
func newNetwork(u *undo, id string) (*nspair.Pair, error) {
	p, err := nspair.New(nspair.Config{Prefix: nsPrefix, IfPrefix: "xdm", HostRole: "bastion", AttackerRole: "attacker", ID: id})
	if err != nil {
		return nil, err
	}
	// Deleting the namespaces takes the veth and the XDP link with them.
	u.push(func() { _ = p.Close() })
	return p, nil
}

// sweepStale removes what demos killed with SIGKILL left behind (their
// pid is gone): the daemon they started, then namespaces, pin dirs and
// scratch dirs. It returns what it removed, for the narration.
func sweepStale() []string {
	var removed []string
	// A stale daemon is found by its command line, which names the
	// dead demo's scratch config dir; it is ended by pid.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			dir := filepath.Base(filepath.Dir(string(arg)))
			if filepath.Base(string(arg)) == "etc" && nspair.Stale(dir, tmpPrefix) {
				stopPID(pid)
				removed = append(removed, fmt.Sprintf("xdpban daemon pid %d", pid))
				break
			}
		}
	}
	// What cannot be removed stays for the next sweep; the demo's own
	// cleanup check reports anything of its own left behind.
	ns, _ := nspair.Sweep(nsPrefix)
	for _, n := range ns {
		removed = append(removed, "netns "+n)
	}
	pins, _ := nspair.SweepDir(bpffs, pinPrefix)
	tmps, _ := nspair.SweepDir(os.TempDir(), tmpPrefix)
	return append(append(removed, pins...), tmps...)
}

// stopPID asks a process to stop and kills it if it has not within 5s.
func stopPID(pid int) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
