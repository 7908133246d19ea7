package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// fleetBed is three protected hosts and an attacker on one bridge, each
// in a namespace of its own; the bridge is in a fifth. No interface of it
// exists in the root namespace.
type fleetBed struct {
	hosts    []*fleetHost
	attacker *nspair.NS
	bridge   *nspair.NS
}

type fleetHost struct {
	name string
	addr netip.Addr
	ns   *nspair.NS
	w    *world
	recv *nspairtest.Receiver
	// from the attacker's addresses to this host
	senders map[netip.Addr]*net.UDPConn
}

const fleetIf = "fl0"

var (
	attackerA = netip.MustParseAddr("192.0.2.66")  // banned from a
	attackerI = netip.MustParseAddr("192.0.2.77")  // in c's ignoreip
	attackerK = netip.MustParseAddr("192.0.2.88")  // banned with a node down
	attackerP = netip.MustParseAddr("192.0.2.200") // banned on c while it is cut off (outside the /26)
)

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

func newNS(t *testing.T, role string) *nspair.NS {
	t.Helper()
	// The test pairs' prefix: a killed run's namespaces are swept.
	n, err := nspair.NewNS("xbt-", role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// newFleetBed builds the bridge and the hosts a, b, c (192.0.2.11-13),
// each with a config directory whose [fleet] clusters the three
// embedded nodes; extra[i] is host i's jail.local.
func newFleetBed(t *testing.T, jails ...string) *fleetBed {
	t.Helper()
	nspairtest.Require(t)
	br := newNS(t, "fbr")
	ipCmd(t, "-n", br.Name, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", br.Name, "link", "set", "br0", "up")
	bed := &fleetBed{attacker: newNS(t, "fatk"), bridge: br}
	plug := func(n *nspair.NS, port string, addrs ...string) {
		// Made inside the bridge namespace with its peer moved straight
		// into n: never in the root namespace.
		ipCmd(t, "-n", br.Name, "link", "add", port, "type", "veth", "peer", "name", fleetIf, "netns", n.Name)
		ipCmd(t, "-n", br.Name, "link", "set", port, "master", "br0", "up")
		for _, a := range addrs {
			ipCmd(t, "-n", n.Name, "addr", "add", a, "dev", fleetIf)
		}
		ipCmd(t, "-n", n.Name, "link", "set", fleetIf, "up")
		ipCmd(t, "-n", n.Name, "link", "set", "lo", "up")
	}
	plug(bed.attacker, "vatk", attackerA.String()+"/24", attackerI.String()+"/32", attackerK.String()+"/32", attackerP.String()+"/32")
	names := []string{"a", "b", "c"}
	var clients, routes []string
	for i := range names {
		clients = append(clients, fmt.Sprintf("nats://192.0.2.1%d:4222", i+1))
		routes = append(routes, fmt.Sprintf("nats://192.0.2.1%d:6222", i+1))
	}
	for i, n := range names {
		h := &fleetHost{name: n, addr: netip.MustParseAddr(fmt.Sprintf("192.0.2.1%d", i+1)), ns: newNS(t, "f"+n),
			senders: map[netip.Addr]*net.UDPConn{}}
		plug(h.ns, "v"+n, h.addr.String()+"/24")
		dir := t.TempDir()
		h.w = &world{
			p:      &nspairtest.Pair{Host: &nspairtest.NS{NS: h.ns}, HostIf: fleetIf},
			socket: filepath.Join(dir, "run", "xdpban.sock"),
			pin:    nspairtest.PinDir(t),
			state:  filepath.Join(dir, "state"),
			banlog: filepath.Join(dir, "xdpban.log"),
			config: filepath.Join(dir, "etc"),
		}
		var peers []string
		for j := range names {
			if j != i {
				peers = append(peers, routes[j])
			}
		}
		writeTestConfig(t, h.w.config, fmt.Sprintf("[fleet]\nenabled = true\nnode = %s\nlisten = %s:4222\ncluster_listen = %s:6222\nroutes = %s\nservers = %s\n",
			n, h.addr, h.addr, strings.Join(peers, ", "), strings.Join(clients, ", ")))
		if i < len(jails) && jails[i] != "" {
			if err := os.WriteFile(filepath.Join(h.w.config, "jail.local"), []byte(jails[i]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		h.recv = h.w.p.Listen(t, testPort)
		for _, from := range []netip.Addr{attackerA, attackerI, attackerK, attackerP} {
			var c *net.UDPConn
			err := bed.attacker.Do(func() error {
				var err error
				c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)),
					net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.addr, testPort)))
				return err
			})
			if err != nil {
				t.Fatalf("udp from %s to %s: %v", from, h.addr, err)
			}
			t.Cleanup(func() { c.Close() })
			h.senders[from] = c
		}
		bed.hosts = append(bed.hosts, h)
	}
	return bed
}

// reaches sends a few datagrams from the attacker's address from and
// reports whether any arrived.
func (h *fleetHost) reaches(from netip.Addr) bool {
	before := h.recv.Count(from)
	for range 5 {
		h.senders[from].Write([]byte("x"))
		time.Sleep(time.Millisecond)
	}
	return h.recv.WaitFor(from, before+1, 150*time.Millisecond) > before
}

// startAll starts the daemons, then waits for the fleet: a daemon
// answers before its embedded node has found its peers.
func (bed *fleetBed) startAll(t *testing.T, hs ...*fleetHost) {
	t.Helper()
	for _, h := range hs {
		h.w.start(t)
	}
	for _, h := range hs {
		h.inStep(t)
	}
}

func (h *fleetHost) status(t *testing.T) control.Status {
	t.Helper()
	var st control.Status
	if err := json.Unmarshal([]byte(h.w.mustCLI(t, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *fleetHost) inStep(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, h.name+" connected to the fleet", func() bool {
		st := h.status(t)
		return st.Fleet != nil && st.Fleet.InStep
	})
}

// TestFleetNamespaces: three daemons with embedded NATS nodes clustered
// over one bridge, and an attacker on it.
func TestFleetNamespaces(t *testing.T) {
	start := time.Now()
	bed := newFleetBed(t, "", "", "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 "+attackerI.String()+"\n[sshd]\nenabled = false\n")
	a, b, c := bed.hosts[0], bed.hosts[1], bed.hosts[2]
	for _, h := range bed.hosts {
		if !h.reaches(attackerA) {
			t.Fatalf("the attacker does not reach %s before any daemon runs", h.name)
		}
	}
	bed.startAll(t, a, b, c)
	t.Logf("three daemons in step after %v", time.Since(start).Round(time.Millisecond))

	// A ban on a drops the attacker on b and c.
	banned := time.Now()
	a.w.mustCLI(t, "ban", attackerA.String(), "--for", "1h")
	for _, h := range bed.hosts {
		waitFor(t, 5*time.Second, h.name+" drops the attacker banned on a", func() bool { return !h.reaches(attackerA) })
	}
	t.Logf("ban on a dropped on a, b and c (probed in turn, 150 ms each) within %v", time.Since(banned).Round(time.Millisecond))
	if e := b.w.list(t)[attackerA.String()+"/32"]; e.Origin != "a" {
		t.Fatalf("b lists %+v, want the ban with origin a", e)
	}
	if e := a.w.list(t)[attackerA.String()+"/32"]; e.Origin != "" {
		t.Fatalf("a lists its own ban with origin %q", e.Origin)
	}

	// An unban on b lifts it everywhere, a included.
	b.w.mustCLI(t, "unban", attackerA.String())
	for _, h := range bed.hosts {
		waitFor(t, 5*time.Second, h.name+" lets the attacker through after the unban on b", func() bool { return h.reaches(attackerA) })
	}

	// c away while a bans: c catches up when it is back.
	c.w.d.stop(t)
	away := time.Now()
	a.w.mustCLI(t, "ban", attackerA.String(), "--for", "1h")
	waitFor(t, 20*time.Second, "b drops the attacker banned while c is away", func() bool { return !b.reaches(attackerA) })
	t.Logf("c stopped: a's next ban dropped on b after %v", time.Since(away).Round(time.Millisecond))
	if !c.reaches(attackerA) {
		// The XDP program stays when the daemon stops: c still drops
		// what it banned before, not this, which it never heard of.
		t.Fatal("c drops a ban made while it was stopped, before it is back")
	}
	back := time.Now()
	c.w.start(t)
	c.inStep(t)
	waitFor(t, 10*time.Second, "c drops the ban made while it was away", func() bool { return !c.reaches(attackerA) })
	t.Logf("c restarted: caught up %v after its start", time.Since(back).Round(time.Millisecond))

	// c's ignoreip wins over a remote prefix that merely overlaps it.
	a.w.mustCLI(t, "ban", "192.0.2.64/26", "--for", "1h")
	waitFor(t, 5*time.Second, "b drops the /26", func() bool { return !b.reaches(attackerI) })
	waitFor(t, 5*time.Second, "c counts the refusal", func() bool {
		st := c.status(t)
		return st.Fleet != nil && st.Fleet.Refused["ignoreip"] >= 1
	})
	if !c.reaches(attackerI) {
		t.Fatal("c drops its ignoreip address, banned through a remote /26")
	}
	if _, ok := c.w.list(t)["192.0.2.64/26"]; ok {
		t.Fatal("c lists the /26 covering its ignoreip")
	}

	// c cut off the bridge: its ban applies at once and waits in its
	// outbox; healed, the outbox is replayed and the others drop it.
	ipCmd(t, "-n", bed.bridge.Name, "link", "set", "vc", "down")
	c.w.mustCLI(t, "ban", attackerP.String(), "--for", "1h")
	time.Sleep(time.Second)
	if !a.reaches(attackerP) || !b.reaches(attackerP) {
		t.Fatal("a ban made on c while it was cut off reached the others")
	}
	if st := c.status(t); st.Fleet.Outbox != 1 {
		t.Fatalf("c cut off: outbox %d, want its 1 ban queued: %+v", st.Fleet.Outbox, *st.Fleet)
	}
	healed := time.Now()
	ipCmd(t, "-n", bed.bridge.Name, "link", "set", "vc", "up")
	for _, h := range []*fleetHost{a, b} {
		waitFor(t, 30*time.Second, h.name+" drops the ban c made while cut off", func() bool { return !h.reaches(attackerP) })
	}
	t.Logf("c's outbox replayed: dropped on a and b %v after the heal", time.Since(healed).Round(time.Millisecond))

	// A node killed (b's daemon, and with it its NATS node): bans still
	// reach the rest.
	b.w.d.cmd.Process.Signal(syscall.SIGKILL)
	<-b.w.d.done
	a.w.mustCLI(t, "ban", attackerK.String(), "--for", "1h")
	killed := time.Now()
	for c.reaches(attackerK) {
		// The stream elects a leader among the two nodes left, and a
		// client that was on b's node reconnects and reads a snapshot.
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("c does not drop a ban made 30s after b's node died: a %+v, c %+v", *a.status(t).Fleet, *c.status(t).Fleet)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a ban made with b's node dead dropped on c after %v", time.Since(killed).Round(time.Millisecond))
	t.Logf("whole test %v", time.Since(start).Round(time.Millisecond))
}
