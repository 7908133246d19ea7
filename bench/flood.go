package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xdpban/xdpban/fallback/iptables"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/nspair"
	"github.com/xdpban/xdpban/loader"
)

// Section 2: what enforcement costs the protected host under a flood as
// the ban list grows. The attacker namespace floods the host namespace
// over the veth with trafgen, once from banned and once from unbanned
// sources, with xdpban's XDP program, xdpban's iptables+ipset fallback and
// a fail2ban-style chain of one DROP rule per address in turn enforcing
// the same list.

const (
	floodPort = 9999
	// floodSources is how many source addresses each flood cycles
	// through; the banned ones are spread through the ban list so a
	// linear chain pays its average depth, not its best or worst.
	floodSources = 8
	// f2bChain is the peer's chain, named like fail2ban's f2b-<jail>.
	f2bChain = "f2b-bench"
)

var (
	floodBanned = netip.MustParseAddr("198.51.100.1")
	floodClean  = netip.MustParseAddr("203.0.113.1")
	floodBNet   = netip.MustParsePrefix("198.51.100.0/24")
)

// floodSource is the k-th source address (0-based) of a flood from base.
func floodSource(base netip.Addr, k int) netip.Addr {
	a := base.As4()
	a[3] += byte(k)
	return netip.AddrFrom4(a)
}

// floodBanList is the n addresses every enforcement bans: the flood's
// banned sources at evenly spread positions, fillers from 240.0.0.0/4
// (never on the wire) elsewhere. The order matters only to the chain,
// where the newest ban is on top as fail2ban inserts it.
func floodBanList(n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	next, filler := 0, 0
	for i := 0; i < n; i++ {
		if next < floodSources && i == (2*next+1)*n/(2*floodSources) {
			out = append(out, floodSource(floodBanned, next))
			next++
			continue
		}
		out = append(out, netip.AddrFrom4(fillV4(filler)))
		filler++
	}
	return out
}

// enforcer is one enforcement loaded with a ban list in the host
// namespace.
type enforcer interface {
	// xdpDropped is what an XDP program dropped so far; 0 for netfilter,
	// whose drops show in the IP counters instead.
	xdpDropped() (uint64, error)
	remove(ctx context.Context) error
}

type floodPeer struct {
	tool    string
	install func(ctx context.Context, p *nspair.Pair, addrs []netip.Addr) (enforcer, error)
}

// quietLogger keeps the backends' per-open Info lines out of the run's
// output; warnings still show.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func floodBans(addrs []netip.Addr) []bans.Ban {
	bs := make([]bans.Ban, len(addrs))
	for i, a := range addrs {
		bs[i] = bans.Ban{Prefix: netip.PrefixFrom(a, 32), Jail: "flood"}
	}
	return bs
}

type xdpEnforcer struct{ x *loader.XDP }

// xdpMode is how the XDP program got attached to the host veth (native
// or generic), for the notes.
var xdpMode string

func installXDP(ctx context.Context, p *nspair.Pair, addrs []netip.Addr) (enforcer, error) {
	var x *loader.XDP
	err := p.Host.Do(func() error {
		var err error
		x, err = loader.Open(ctx, loader.Options{
			Interfaces: []string{p.HostIf},
			PinPath:    pinDir(),
			MapSizes:   config.MapSizes{V4: int(capacity(len(addrs)))},
			Logger:     quietLogger(),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load xdpban on %s: %w", p.HostIf, err)
	}
	if err := x.Add(ctx, floodBans(addrs)...); err != nil {
		_ = x.Detach()
		return nil, fmt.Errorf("ban %d addresses in xdp: %w", len(addrs), err)
	}
	// Status reads the interfaces by name, in the host namespace.
	_ = p.Host.Do(func() error {
		st, err := x.Status(ctx)
		if err == nil && len(st.Interfaces) > 0 {
			xdpMode = st.Interfaces[0].Mode
		}
		return err
	})
	return &xdpEnforcer{x: x}, nil
}

func (e *xdpEnforcer) xdpDropped() (uint64, error) {
	c, err := e.x.Counters()
	if err != nil {
		return 0, fmt.Errorf("read xdp counters: %w", err)
	}
	return c["dropped"], nil
}

func (e *xdpEnforcer) remove(context.Context) error {
	if err := e.x.Detach(); err != nil {
		return fmt.Errorf("detach xdpban: %w", err)
	}
	return nil
}

type ipsetEnforcer struct{ b *iptables.IPTables }

func installIPSet(ctx context.Context, p *nspair.Pair, addrs []netip.Addr) (enforcer, error) {
	b, err := iptables.Open(ctx, iptables.Options{
		Mode:    iptables.ModeIPSet,
		Netns:   p.Host.Path(),
		MaxElem: int(capacity(len(addrs))),
		Logger:  quietLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("set up xdpban's iptables+ipset fallback: %w", err)
	}
	if err := b.Add(ctx, floodBans(addrs)...); err != nil {
		_ = b.Detach()
		return nil, fmt.Errorf("ban %d addresses in ipset: %w", len(addrs), err)
	}
	return &ipsetEnforcer{b: b}, nil
}

func (e *ipsetEnforcer) xdpDropped() (uint64, error) { return 0, nil }

func (e *ipsetEnforcer) remove(context.Context) error {
	if err := e.b.Detach(); err != nil {
		return fmt.Errorf("remove xdpban's iptables+ipset fallback: %w", err)
	}
	return nil
}

// chainEnforcer is what fail2ban's iptables actions build: a chain jumped
// to from INPUT, one "-s ADDR -j DROP" rule per ban, newest on top,
// RETURN at the end.
type chainEnforcer struct{ ns *nspair.NS }

func installChain(ctx context.Context, p *nspair.Pair, addrs []netip.Addr) (enforcer, error) {
	var in bytes.Buffer
	fmt.Fprintf(&in, "*filter\n:%s - [0:0]\n-A INPUT -j %s\n", f2bChain, f2bChain)
	// fail2ban inserts each ban at the top (-I chain 1): the list, in
	// ban order, ends up reversed; writing it reversed in one
	// transaction gives the same chain without 100,000 execs.
	for i := len(addrs) - 1; i >= 0; i-- {
		fmt.Fprintf(&in, "-A %s -s %s/32 -j DROP\n", f2bChain, addrs[i])
	}
	fmt.Fprintf(&in, "-A %s -j RETURN\nCOMMIT\n", f2bChain)
	if err := restoreIn(ctx, p.Host, &in); err != nil {
		return nil, fmt.Errorf("load %d per-address rules: %w", len(addrs), err)
	}
	return &chainEnforcer{ns: p.Host}, nil
}

func restoreIn(ctx context.Context, ns *nspair.NS, in *bytes.Buffer) error {
	cmd := ns.Command(ctx, "iptables-restore", "--noflush", "--wait", "10")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore in netns %s: %w: %s", ns.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

func (e *chainEnforcer) xdpDropped() (uint64, error) { return 0, nil }

func (e *chainEnforcer) remove(ctx context.Context) error {
	var in bytes.Buffer
	fmt.Fprintf(&in, "*filter\n-D INPUT -j %s\n-F %s\n-X %s\nCOMMIT\n", f2bChain, f2bChain, f2bChain)
	return restoreIn(ctx, e.ns, &in)
}

// noEnforcer is the host with nothing loaded: the floor of the receive
// path that every enforcement adds to.
type noEnforcer struct{}

func (noEnforcer) xdpDropped() (uint64, error)  { return 0, nil }
func (noEnforcer) remove(context.Context) error { return nil }

// checkClean fails when an enforcement left anything in the host
// namespace that would tax the next one's figures.
func checkClean(ctx context.Context, p *nspair.Pair) error {
	out, err := p.Host.Output(ctx, "iptables-save")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") || (strings.HasPrefix(l, ":") && !strings.Contains(l, "ACCEPT")) {
			return fmt.Errorf("host namespace still has %q after an enforcement was removed", l)
		}
	}
	out, err = p.Host.Output(ctx, "ip", "-d", "link", "show", "dev", p.HostIf)
	if err != nil {
		return err
	}
	if strings.Contains(out, "prog/xdp") {
		return fmt.Errorf("%s still has an XDP program after xdpban was detached", p.HostIf)
	}
	return nil
}

// floodSnap is every counter a flood is judged by, read at one instant.
type floodSnap struct {
	at time.Time
	// softirq is the NET_RX/all-softirq time of all CPUs in USER_HZ
	// ticks (/proc/stat).
	softirq uint64
	// Host namespace IP/UDP MIB counters.
	inReceives, inDelivers, udpIn uint64
	// sent is the attacker veth's tx packet count.
	sent    uint64
	xdpDrop uint64
	// Datagrams the receiver read, by source.
	rcvBanned, rcvClean uint64
}

// userHZ is the unit of /proc/stat: fixed at 100 for userspace on Linux.
const userHZ = 100

func readSoftirq() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat first line %q", line)
	}
	v, err := strconv.ParseUint(f[7], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/stat softirq field %q: %w", f[7], err)
	}
	return v, nil
}

// nsFile reads a /proc/net file of a namespace: /proc/thread-self/net is
// the calling thread's namespace, and Do runs on a thread switched into
// it.
func nsFile(ns *nspair.NS, name string) ([]byte, error) {
	var b []byte
	err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/" + name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s of netns %s: %w", name, ns.Name, err)
	}
	return b, nil
}

// parseSNMP turns /proc/net/snmp's header/value line pairs into
// "Proto.Field" → value.
func parseSNMP(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	var head []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if head == nil || head[0] != f[0] {
			head = f
			continue
		}
		for i := 1; i < len(f) && i < len(head); i++ {
			if v, err := strconv.ParseUint(f[i], 10, 64); err == nil {
				out[strings.TrimSuffix(f[0], ":")+"."+head[i]] = v
			}
		}
		head = nil
	}
	return out
}

// devTx is the tx packet count of an interface from /proc/net/dev.
func devTx(b []byte, dev string) (uint64, error) {
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) != dev {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 10 {
			break
		}
		return strconv.ParseUint(f[9], 10, 64)
	}
	return 0, fmt.Errorf("interface %s not in /proc/net/dev", dev)
}

// receiver counts the datagrams that reach a socket in the host
// namespace: a banned source's packet counted here got through.
type receiver struct {
	conn            *net.UDPConn
	banned, cleanRx atomic.Uint64
}

func startReceiver(p *nspair.Pair) (*receiver, error) {
	r := &receiver{}
	err := p.Host.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: floodPort})
		if err != nil {
			return err
		}
		r.conn = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receiver on udp port %d in netns %s: %w", floodPort, p.Host.Name, err)
	}
	_ = r.conn.SetReadBuffer(4 << 20)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := r.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if floodBNet.Contains(from.Addr().Unmap()) {
				r.banned.Add(1)
			} else {
				r.cleanRx.Add(1)
			}
		}
	}()
	return r, nil
}

// flooder runs bounded floods from the attacker namespace.
type flooder struct {
	p   *nspair.Pair
	rcv *receiver
	// sender makes the sender of one flood kind (banned sources or not).
	sender func(banned bool) floodSender
	// senderNote says which sender ran, for the notes.
	senderNote string
	// count bounds each flood in packets, window in time.
	count  int
	window time.Duration
}

// trafgenConfig is one 64-byte Ethernet/IPv4/UDP frame to the host whose
// source cycles through floodSources addresses from base. The IPv4
// checksum is recomputed per packet; the UDP checksum is 0 (none, legal
// for IPv4).
func trafgenConfig(dst, src net.HardwareAddr, base netip.Addr) string {
	mac := func(m net.HardwareAddr) string {
		return "0x" + strings.ReplaceAll(m.String(), ":", ", 0x")
	}
	b, h := base.As4(), nspair.HostV4.As4()
	return fmt.Sprintf(`{
  %s, %s, 0x08, 0x00,
  0x45, 0x00, const16(50), const16(0), 0x40, 0x00, 64, 17, csumip(14, 33),
  %d, %d, %d, dinc(%d, %d), %d, %d, %d, %d,
  const16(40000), const16(%d), const16(30), const16(0),
  fill(0x00, 22)
}
`, mac(dst), mac(src), b[0], b[1], b[2], b[3], int(b[3])+floodSources-1, h[0], h[1], h[2], h[3], floodPort)
}

func newFlooder(ctx context.Context, o opts, p *nspair.Pair) (*flooder, error) {
	hostMAC, err := p.Host.MAC(p.HostIf)
	if err != nil {
		return nil, err
	}
	attMAC, err := p.Attacker.MAC(p.AttackerIf)
	if err != nil {
		return nil, err
	}
	f := &flooder{p: p, count: 20000000, window: 3 * time.Second}
	if o.quick {
		f.count, f.window = 2000000, time.Second
	}
	bases := map[bool]netip.Addr{true: floodBanned, false: floodClean}
	if _, err := exec.LookPath("trafgen"); err == nil {
		cfg := map[bool]string{}
		for banned, base := range bases {
			path := filepath.Join(o.work, fmt.Sprintf("flood-banned-%v.cfg", banned))
			if err := os.WriteFile(path, []byte(trafgenConfig(hostMAC, attMAC, base)), 0o644); err != nil {
				return nil, fmt.Errorf("write trafgen config: %w", err)
			}
			cfg[banned] = path
		}
		f.sender = func(banned bool) floodSender {
			return &trafgenSender{ns: p.Attacker, dev: p.AttackerIf, cfg: cfg[banned], count: f.count}
		}
		f.senderNote = "trafgen (netsniff-ng), one sender process (-P 1) through the qdisc layer (-q)"
	} else {
		f.sender = func(banned bool) floodSender {
			return &packetSender{ns: p.Attacker, dev: p.AttackerIf, frames: floodFrames(hostMAC, attMAC, bases[banned]), count: f.count}
		}
		f.senderNote = "trafgen not found (install netsniff-ng for the usual sender), so a Go AF_PACKET socket, one sendto per frame, one thread"
	}
	if f.rcv, err = startReceiver(p); err != nil {
		return nil, err
	}
	atCleanup(func() { f.rcv.conn.Close() })
	return f, nil
}

func (f *flooder) snap(e enforcer) (floodSnap, error) {
	s := floodSnap{at: time.Now()}
	var err error
	if s.softirq, err = readSoftirq(); err != nil {
		return s, err
	}
	b, err := nsFile(f.p.Host, "snmp")
	if err != nil {
		return s, err
	}
	m := parseSNMP(b)
	s.inReceives, s.inDelivers = m["Ip.InReceives"], m["Ip.InDelivers"]
	// Every datagram past netfilter lands in one of these, whether or
	// not the receiver keeps up.
	s.udpIn = m["Udp.InDatagrams"] + m["Udp.NoPorts"] + m["Udp.InErrors"]
	if b, err = nsFile(f.p.Attacker, "dev"); err != nil {
		return s, err
	}
	if s.sent, err = devTx(b, f.p.AttackerIf); err != nil {
		return s, fmt.Errorf("attacker netns: %w", err)
	}
	if s.xdpDrop, err = e.xdpDropped(); err != nil {
		return s, err
	}
	s.rcvBanned, s.rcvClean = f.rcv.banned.Load(), f.rcv.cleanRx.Load()
	return s, nil
}

// floodResult is one flood's outcome.
type floodResult struct {
	elapsed time.Duration
	sent    uint64
	// dropped and passed are in the measurement window: dropped by the
	// enforcement, passed up to UDP.
	dropped, passed uint64
	cpu             time.Duration
	// bannedThrough counts banned-source packets that reached UDP or the
	// receiver, over the whole flood and its drain; cleanDropped counts
	// unbanned packets the enforcement dropped.
	bannedThrough, cleanDropped uint64
}

func dropsOf(a, b floodSnap) uint64 {
	return (b.xdpDrop - a.xdpDrop) + (b.inReceives - a.inReceives) - (b.inDelivers - a.inDelivers)
}

// run floods from banned (or unbanned) sources: warm-up until packets
// flow, a measured window, then the sender is stopped and the host
// drained before the final counters are read.
func (f *flooder) run(ctx context.Context, e enforcer, banned bool) (floodResult, error) {
	var r floodResult
	before, err := f.snap(e)
	if err != nil {
		return r, err
	}
	snd := f.sender(banned)
	done, err := snd.start()
	if err != nil {
		return r, err
	}
	exited := false
	stop := func() {
		if !exited {
			snd.stop(done)
			exited = true
		}
	}
	defer stop()

	// Warm-up: trafgen compiles its config and maps its ring first.
	warm := time.Now()
	for {
		s, err := f.snap(e)
		if err != nil {
			return r, err
		}
		if s.sent > before.sent+1000 {
			break
		}
		select {
		case err := <-done:
			exited = true
			return r, fmt.Errorf("%s ended before sending: %v: %s", snd.name(), err, snd.output())
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(warm) > 5*time.Second {
			return r, fmt.Errorf("%s sent nothing in 5s: %s", snd.name(), snd.output())
		}
	}
	s0, err := f.snap(e)
	if err != nil {
		return r, err
	}
	select {
	case <-time.After(f.window):
	case err := <-done:
		// The packet bound was reached first: the window ends there.
		exited = true
		if err != nil {
			return r, fmt.Errorf("%s: %w: %s", snd.name(), err, snd.output())
		}
	case <-ctx.Done():
		return r, ctx.Err()
	}
	s1, err := f.snap(e)
	if err != nil {
		return r, err
	}
	stop()

	// Drain: packets queued at the host when the sender stopped still
	// meet the enforcement; wait until the counters rest.
	after := s1
	for i := 0; i < 40; i++ {
		time.Sleep(50 * time.Millisecond)
		s, err := f.snap(e)
		if err != nil {
			return r, err
		}
		quiet := s.inReceives == after.inReceives && s.xdpDrop == after.xdpDrop && s.sent == after.sent
		after = s
		if quiet {
			break
		}
	}

	r.elapsed = s1.at.Sub(s0.at)
	r.sent = s1.sent - s0.sent
	r.dropped = dropsOf(s0, s1)
	r.passed = s1.udpIn - s0.udpIn
	r.cpu = time.Duration(s1.softirq-s0.softirq) * (time.Second / userHZ)
	if banned {
		r.bannedThrough = max(after.udpIn-before.udpIn, after.rcvBanned-before.rcvBanned)
	} else {
		r.cleanDropped = dropsOf(before, after)
	}
	return r, nil
}

// perSec is n per second of d.
func perSec(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(n) / d.Seconds()
}

// msPerMpkt is CPU milliseconds per million packets (numerically, ns per
// packet).
func msPerMpkt(cpu time.Duration, n uint64) float64 {
	if n == 0 {
		return math.NaN()
	}
	return float64(cpu.Milliseconds()) / (float64(n) / 1e6)
}

// softirqAccounting says how exact /proc/stat's softirq time is on this
// kernel: exact with IRQ_TIME_ACCOUNTING, sampled at the tick without.
func softirqAccounting() string {
	var cfg []byte
	if b, err := exec.Command("zcat", "/proc/config.gz").Output(); err == nil {
		cfg = b
	} else if b, err := os.ReadFile("/boot/config-" + probeMachine().Kernel); err == nil {
		cfg = b
	}
	switch {
	case bytes.Contains(cfg, []byte("\nCONFIG_IRQ_TIME_ACCOUNTING=y")):
		return "This kernel accounts softirq time exactly (IRQ_TIME_ACCOUNTING)"
	case len(cfg) > 0:
		return "This kernel samples softirq time at the tick (no IRQ_TIME_ACCOUNTING), so each figure carries a few % of sampling noise"
	}
	return "Softirq time is sampled at the tick unless the kernel has IRQ_TIME_ACCOUNTING (its config was not readable), so figures may carry a few % of sampling noise"
}

func iptablesVariant() string {
	out, err := exec.Command("iptables", "-V").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// sectionFlood measures section 2.
func sectionFlood(ctx context.Context, o opts, s *Section) error {
	sizes := []int{10, 1000, 10000, 100000}
	if o.quick {
		sizes = []int{10, 1000, 10000}
	}
	peers := []floodPeer{{"xdpban", installXDP}}
	var skipped []string
	for _, need := range []struct{ tool, bin string }{{"ipset", "ipset"}, {"iptables-chain", "iptables-restore"}} {
		if _, err := exec.LookPath(need.bin); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %s not found (apt-get install %s)", need.tool, need.bin, strings.TrimSuffix(need.bin, "-restore")))
			continue
		}
		if need.tool == "ipset" {
			peers = append(peers, floodPeer{"ipset", installIPSet})
		} else {
			peers = append(peers, floodPeer{"iptables-chain", installChain})
		}
	}

	p, err := newPair()
	if err != nil {
		return err
	}
	f, err := newFlooder(ctx, o, p)
	if err != nil {
		return err
	}

	s.Table = &Table{Header: []string{"bans", "tool", "drops/s", "CPU ms/Mpkt dropped", "×xdpban", "banned got through",
		"unbanned passed/s", "CPU ms/Mpkt passed", "×xdpban"}}
	var through, cleanDropped uint64
	base, err := f.run(ctx, noEnforcer{}, false)
	if err != nil {
		return fmt.Errorf("flood without enforcement: %w", err)
	}
	cleanDropped += base.cleanDropped
	s.add(Figure{Case: "no bans", Tool: "none", Metric: "unbanned_passed_per_s", Value: perSec(base.passed, base.elapsed), Unit: "pkt/s"})
	s.add(Figure{Case: "no bans", Tool: "none", Metric: "cpu_ms_per_mpkt_passed", Value: msPerMpkt(base.cpu, base.passed), Unit: "ms"})
	s.Table.Rows = append(s.Table.Rows, []string{"0", "none (no enforcement)", "—", "—", "—", "—",
		num(s.find("no bans", "none", "unbanned_passed_per_s")), num(s.find("no bans", "none", "cpu_ms_per_mpkt_passed")), "—"})
	for _, n := range sizes {
		addrs := floodBanList(n)
		for _, peer := range peers {
			if err := ctx.Err(); err != nil {
				return err
			}
			cas := sizeLabel(n) + " bans"
			t0 := time.Now()
			e, err := peer.install(ctx, p, addrs)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.add(Figure{Case: cas, Tool: peer.tool, Metric: "drops_per_s", Skipped: err.Error()})
				s.Table.Rows = append(s.Table.Rows, []string{sizeLabel(n), peer.tool, "skipped: " + oneLine(err.Error())})
				continue
			}
			load := time.Since(t0)
			dr, derr := f.run(ctx, e, true)
			var pr floodResult
			perr := derr
			if derr == nil {
				pr, perr = f.run(ctx, e, false)
			}
			rerr := e.remove(ctx)
			if err := errors.Join(perr, rerr); err != nil {
				return fmt.Errorf("%s with %d bans: %w", peer.tool, n, err)
			}
			if err := checkClean(ctx, p); err != nil {
				return err
			}
			slog.Info("flood", "tool", peer.tool, "bans", n, "load", load.Round(time.Millisecond),
				"sent", dr.sent, "dropped", dr.dropped, "drop_s", dr.elapsed.Round(time.Millisecond), "sent_clean", pr.sent, "passed", pr.passed, "through", dr.bannedThrough)

			through += dr.bannedThrough
			cleanDropped += pr.cleanDropped
			s.add(Figure{Case: cas, Tool: peer.tool, Metric: "drops_per_s", Value: perSec(dr.dropped, dr.elapsed), Unit: "pkt/s"})
			s.add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_ms_per_mpkt_dropped", Value: msPerMpkt(dr.cpu, dr.dropped), Unit: "ms"})
			s.add(Figure{Case: cas, Tool: peer.tool, Metric: "banned_got_through", Value: float64(dr.bannedThrough), Unit: "pkt"})
			s.add(Figure{Case: cas, Tool: peer.tool, Metric: "unbanned_passed_per_s", Value: perSec(pr.passed, pr.elapsed), Unit: "pkt/s"})
			s.add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_ms_per_mpkt_passed", Value: msPerMpkt(pr.cpu, pr.passed), Unit: "ms"})
			s.add(Figure{Case: cas, Tool: peer.tool, Metric: "unbanned_dropped", Value: float64(pr.cleanDropped), Unit: "pkt"})
			s.add(Figure{Case: cas, Tool: peer.tool, Metric: "load_s", Value: load.Seconds(), Unit: "s"})
		}
		// Ratios against xdpban at the same list size, once all three ran.
		cas := sizeLabel(n) + " bans"
		xd, xp := s.find(cas, "xdpban", "cpu_ms_per_mpkt_dropped"), s.find(cas, "xdpban", "cpu_ms_per_mpkt_passed")
		for _, peer := range peers {
			d, pa := s.find(cas, peer.tool, "cpu_ms_per_mpkt_dropped"), s.find(cas, peer.tool, "cpu_ms_per_mpkt_passed")
			if math.IsNaN(s.find(cas, peer.tool, "drops_per_s")) {
				continue
			}
			rd, rp := ratio(d, xd), ratio(pa, xp)
			if peer.tool != "xdpban" {
				s.add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_dropped_ratio_vs_xdpban", Value: rd, Unit: "x"})
				s.add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_passed_ratio_vs_xdpban", Value: rp, Unit: "x"})
			}
			s.Table.Rows = append(s.Table.Rows, []string{sizeLabel(n), peer.tool,
				num(s.find(cas, peer.tool, "drops_per_s")), num(d), fmt.Sprintf("%.2f", rd),
				num(s.find(cas, peer.tool, "banned_got_through")),
				num(s.find(cas, peer.tool, "unbanned_passed_per_s")), num(pa), fmt.Sprintf("%.2f", rp)})
		}
	}

	s.target("packets from banned sources that got through (all tools, all sizes)", float64(through), "pkt", true, 0)
	s.target("unbanned packets dropped (all tools, all sizes)", float64(cleanDropped), "pkt", true, 0)
	lo, hi := sizeLabel(sizes[0])+" bans", sizeLabel(sizes[len(sizes)-1])+" bans"
	flat := ratio(s.find(hi, "xdpban", "cpu_ms_per_mpkt_dropped"), s.find(lo, "xdpban", "cpu_ms_per_mpkt_dropped"))
	s.target(fmt.Sprintf("xdpban CPU per Mpkt dropped, %s vs %s (flat)", hi, lo), flat, "x", true, 1.5)
	if r := s.find(hi, "iptables-chain", "cpu_dropped_ratio_vs_xdpban"); !math.IsNaN(r) {
		s.target(fmt.Sprintf("iptables-chain/xdpban CPU per Mpkt dropped at %s", hi), r, "x", false, 10)
	}

	hiN := sizes[len(sizes)-1]
	var loads []string
	for _, peer := range peers {
		if v := s.find(hi, peer.tool, "load_s"); !math.IsNaN(v) {
			loads = append(loads, fmt.Sprintf("%s %.2f s", peer.tool, v))
		}
	}
	if len(loads) > 0 {
		s.note("Loading %s bans (setup included): %s.", group(strconv.Itoa(hiN)), strings.Join(loads, ", "))
	}
	for _, sk := range skipped {
		s.note("Skipped %s.", sk)
	}
	s.note("Traffic: %s, in the attacker namespace; 64-byte IPv4/UDP frames to port %d over the veth, cycling through %d sources: banned 198.51.100.1–%d, unbanned 203.0.113.1–%d. Each flood is bounded at %s packets and measured over a %s window after a warm-up; the sender is then stopped and the host drained.",
		f.senderNote, floodPort, floodSources, floodSources, floodSources, group(strconv.Itoa(f.count)), f.window)
	s.note("Host CPU: the softirq time of all CPUs in /proc/stat over the window, divided by the packets dropped (banned flood) or passed to UDP (unbanned flood). The veth delivers in NET_RX softirq on the sending CPU (no IRQ, no RPS), so that softirq time is the host's whole receive path: XDP, or IP input with netfilter and, for passed packets, UDP delivery. The sender's own cost (its AF_PACKET socket and the veth transmit) is system time and not counted. %s. The sender and host share the CPU, so drops/s is the pair's throughput, not the enforcement's ceiling.", softirqAccounting())
	s.note("Dropped = XDP's drop counter (xdpban) or IP InReceives − InDelivers in the host namespace (netfilter drops in INPUT); passed = UDP InDatagrams + NoPorts + InErrors. Banned got through = datagrams from banned sources that reached UDP or the receiver socket in the host namespace, counted over each whole flood and its drain.")
	mode := xdpMode
	if mode == "" {
		mode = "unknown"
	}
	s.note("xdpban: the loader's program on the host veth (%s mode), one /32 entry per ban. ipset: xdpban's own netfilter fallback (iptables.ModeIPSet): chain xdpban jumped to from INPUT, one `-m set --match-set xdpban-v4 src -j DROP` rule, a hash:net set with timeout, counters and comments. iptables-chain: what fail2ban's iptables actions build: chain %s jumped to from INPUT, one `-s ADDR/32 -j DROP` rule per ban (loaded with one iptables-restore), RETURN last; %s.",
		mode, f2bChain, iptablesVariant())
	s.note("On a veth, XDP costs more than on a NIC: frames from a socket reach the host veth as socket buffers, which the veth copies into an XDP buffer before the program runs (and, for XDP_PASS, hands to GRO, which a veth turns on while an XDP program is attached), while a driver with native XDP runs the program before any socket buffer exists. The xdpban figures here are an upper bound; that copy is why xdpban's cost for passed packets is above the netfilter peers' with short lists. Section 1 gives the program's own cost. The `none` row is the same unbanned flood with nothing loaded.")
	s.note("Ban lists: the %d banned flood sources spread evenly through the list, fillers from 240.0.0.0/4 (never on the wire). In the chain, a banned packet walks on average half the rules and an unbanned one all of them; hash lookups (XDP, ipset) do not depend on the order.", floodSources)
	return nil
}
