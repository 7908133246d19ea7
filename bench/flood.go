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
	"github.com/xdpban/xdpban/fallback/nftables"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/nspair"
	"github.com/xdpban/xdpban/loader"
)

// Section 2: what enforcement costs the protected host under a flood as
// the ban list grows. The attacker namespace floods the host namespace
// over the veth with trafgen, once from banned and once from unbanned
// sources, with xdpban's XDP program, xdpban's nftables and iptables+ipset
// fallbacks and a fail2ban-style chain of one DROP rule per address in
// turn enforcing the same list; then the same in IPv6, with /64 bans.

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
	// IPv6: each source in a /64 of its own (the default ban widening),
	// the 8th byte of the address counting through them.
	floodBanned6 = netip.MustParseAddr("2001:db8:100::1")
	floodClean6  = netip.MustParseAddr("2001:db8:200::1")
	floodBNet6   = netip.MustParsePrefix("2001:db8:100::/48")
)

// floodSource is the k-th source address (0-based) of a flood from base:
// the next address in IPv4, the next /64 in IPv6.
func floodSource(base netip.Addr, k int) netip.Addr {
	if base.Is6() {
		a := base.As16()
		a[7] += byte(k)
		return netip.AddrFrom16(a)
	}
	a := base.As4()
	a[3] += byte(k)
	return netip.AddrFrom4(a)
}

// floodBanListV6 is floodBanList in IPv6: /64 prefixes, the flood's
// banned sources' among fillers from 2001:db8:8000::/33 (never on the
// wire).
func floodBanListV6(n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	next, filler := 0, 0
	for i := 0; i < n; i++ {
		if next < floodSources && i == (2*next+1)*n/(2*floodSources) {
			out = append(out, netip.PrefixFrom(floodSource(floodBanned6, next), 64).Masked())
			next++
			continue
		}
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(fillV6(filler)), 64))
		filler++
	}
	return out
}

// floodBanList is the n addresses every enforcement bans: the flood's
// banned sources at evenly spread positions, fillers from 240.0.0.0/4
// (never on the wire) elsewhere. The order matters only to the chain,
// where the newest ban is on top as fail2ban inserts it.
func floodBanList(n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	next, filler := 0, 0
	for i := 0; i < n; i++ {
		if next < floodSources && i == (2*next+1)*n/(2*floodSources) {
			out = append(out, netip.PrefixFrom(floodSource(floodBanned, next), 32))
			next++
			continue
		}
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(fillV4(filler)), 32))
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
	install func(ctx context.Context, p *nspair.Pair, addrs []netip.Prefix) (enforcer, error)
}

// quietLogger keeps the backends' per-open Info lines out of the run's
// output; warnings still show.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func floodBans(addrs []netip.Prefix) []bans.Ban {
	bs := make([]bans.Ban, len(addrs))
	for i, a := range addrs {
		bs[i] = bans.Ban{Prefix: a, Jail: "flood"}
	}
	return bs
}

// mapSizes fits a ban list in the XDP maps: /32s in ban_v4, and /64s in
// ban_v6, which is keyed by the widened /64 (the LPM trie holds the
// other lengths).
func mapSizes(addrs []netip.Prefix) config.MapSizes {
	c := int(capacity(len(addrs)))
	if len(addrs) > 0 && addrs[0].Addr().Is6() {
		return config.MapSizes{V4: 1024, V6: c}
	}
	return config.MapSizes{V4: c}
}

type xdpEnforcer struct{ x *loader.XDP }

// xdpMode is how the XDP program got attached to the host veth (native
// or generic), for the notes.
var xdpMode string

func installXDP(ctx context.Context, p *nspair.Pair, addrs []netip.Prefix) (enforcer, error) {
	var x *loader.XDP
	err := p.Host.Do(func() error {
		var err error
		x, err = loader.Open(ctx, loader.Options{
			Interfaces: []string{p.HostIf},
			PinPath:    pinDir(),
			MapSizes:   loader.MapSizes(mapSizes(addrs)),
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

type nftEnforcer struct{ b *nftables.Backend }

func installNFT(ctx context.Context, p *nspair.Pair, addrs []netip.Prefix) (enforcer, error) {
	b, err := nftables.Open(ctx, nftables.Options{
		Netns:   p.Host.Path(),
		MaxElem: int(capacity(len(addrs))),
		Logger:  quietLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("set up xdpban's nftables backend: %w", err)
	}
	if err := b.Add(ctx, floodBans(addrs)...); err != nil {
		_ = b.Detach()
		return nil, fmt.Errorf("ban %d addresses in nftables: %w", len(addrs), err)
	}
	return &nftEnforcer{b: b}, nil
}

func (e *nftEnforcer) xdpDropped() (uint64, error) { return 0, nil }

func (e *nftEnforcer) remove(context.Context) error {
	if err := e.b.Detach(); err != nil {
		return fmt.Errorf("remove xdpban's nftables table: %w", err)
	}
	return nil
}

type ipsetEnforcer struct{ b *iptables.IPTables }

func installIPSet(ctx context.Context, p *nspair.Pair, addrs []netip.Prefix) (enforcer, error) {
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

func installChain(ctx context.Context, p *nspair.Pair, addrs []netip.Prefix) (enforcer, error) {
	var in bytes.Buffer
	fmt.Fprintf(&in, "*filter\n:%s - [0:0]\n-A INPUT -j %s\n", f2bChain, f2bChain)
	// fail2ban inserts each ban at the top (-I chain 1): the list, in
	// ban order, ends up reversed; writing it reversed in one
	// transaction gives the same chain without 100,000 execs.
	for i := len(addrs) - 1; i >= 0; i-- {
		fmt.Fprintf(&in, "-A %s -s %s -j DROP\n", f2bChain, addrs[i])
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
	// iptables-nft leaves its (empty) ip filter tables; xdpban's own
	// table must be gone.
	if out, err = p.Host.Output(ctx, "nft", "list", "tables"); err == nil && strings.Contains(out, "xdpban") {
		return fmt.Errorf("host namespace still has xdpban's nftables table after it was detached: %s", oneLine(out))
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

// parseSNMP6 reads /proc/net/snmp6's "Name value" lines.
func parseSNMP6(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			out[f[0]] = v
		}
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
	conns           []*net.UDPConn
	banned, cleanRx atomic.Uint64
}

func (r *receiver) close() {
	for _, c := range r.conns {
		c.Close()
	}
}

func startReceiver(p *nspair.Pair) (*receiver, error) {
	r := &receiver{}
	err := p.Host.Do(func() error {
		for _, nw := range []string{"udp4", "udp6"} {
			c, err := net.ListenUDP(nw, &net.UDPAddr{Port: floodPort})
			if err != nil {
				return err
			}
			r.conns = append(r.conns, c)
		}
		return nil
	})
	if err != nil {
		r.close()
		return nil, fmt.Errorf("receiver on udp port %d in netns %s: %w", floodPort, p.Host.Name, err)
	}
	for _, c := range r.conns {
		_ = c.SetReadBuffer(4 << 20)
		go func() {
			buf := make([]byte, 2048)
			for {
				_, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				if a := from.Addr().Unmap(); floodBNet.Contains(a) || floodBNet6.Contains(a) {
					r.banned.Add(1)
				} else {
					r.cleanRx.Add(1)
				}
			}
		}()
	}
	return r, nil
}

// flooder runs bounded floods from the attacker namespace.
type flooder struct {
	p   *nspair.Pair
	rcv *receiver
	// sender makes the sender of one flood kind (banned sources or not,
	// IPv4 or IPv6).
	sender func(banned, v6 bool) floodSender
	// v6 selects the family the next floods use and count.
	v6 bool
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
	if base.Is6() {
		return trafgenConfig6(mac(dst), mac(src), base)
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

// trafgenConfig6 is the IPv6 frame, 64 bytes as in IPv4: Ethernet, IPv6,
// UDP with its checksum (mandatory in IPv6) and 2 bytes of payload; the
// source's 8th byte counts through floodSources /64s.
func trafgenConfig6(dst, src string, base netip.Addr) string {
	bytesOf := func(b []byte) string {
		parts := make([]string, len(b))
		for i, x := range b {
			parts[i] = strconv.Itoa(int(x))
		}
		return strings.Join(parts, ", ")
	}
	b, h := base.As16(), nspair.HostV6.As16()
	return fmt.Sprintf(`{
  %s, %s, 0x86, 0xdd,
  0x60, 0x00, 0x00, 0x00, const16(10), 17, 64,
  %s, dinc(%d, %d), %s,
  %s,
  const16(40000), const16(%d), const16(10), csumudp6(14, 54),
  fill(0x00, 2)
}
`, dst, src, bytesOf(b[:7]), b[7], int(b[7])+floodSources-1, bytesOf(b[8:]), bytesOf(h[:]), floodPort)
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
	type kind struct{ banned, v6 bool }
	bases := map[kind]netip.Addr{
		{true, false}: floodBanned, {false, false}: floodClean,
		{true, true}: floodBanned6, {false, true}: floodClean6,
	}
	if _, err := exec.LookPath("trafgen"); err == nil {
		cfg := map[kind]string{}
		for k, base := range bases {
			path := filepath.Join(o.work, fmt.Sprintf("flood-banned-%v-v6-%v.cfg", k.banned, k.v6))
			if err := os.WriteFile(path, []byte(trafgenConfig(hostMAC, attMAC, base)), 0o644); err != nil {
				return nil, fmt.Errorf("write trafgen config: %w", err)
			}
			cfg[k] = path
		}
		f.sender = func(banned, v6 bool) floodSender {
			return &trafgenSender{ns: p.Attacker, dev: p.AttackerIf, cfg: cfg[kind{banned, v6}], count: f.count}
		}
		f.senderNote = "trafgen (netsniff-ng), one sender process (-P 1) through the qdisc layer (-q)"
	} else {
		f.sender = func(banned, v6 bool) floodSender {
			return &packetSender{ns: p.Attacker, dev: p.AttackerIf, frames: floodFrames(hostMAC, attMAC, bases[kind{banned, v6}]), count: f.count}
		}
		f.senderNote = "trafgen not found (install netsniff-ng for the usual sender), so a Go AF_PACKET socket, one sendto per frame, one thread"
	}
	if f.rcv, err = startReceiver(p); err != nil {
		return nil, err
	}
	atCleanup(f.rcv.close)
	return f, nil
}

func (f *flooder) snap(e enforcer) (floodSnap, error) {
	s := floodSnap{at: time.Now()}
	var err error
	if s.softirq, err = readSoftirq(); err != nil {
		return s, err
	}
	if f.v6 {
		b, err := nsFile(f.p.Host, "snmp6")
		if err != nil {
			return s, err
		}
		m := parseSNMP6(b)
		s.inReceives, s.inDelivers = m["Ip6InReceives"], m["Ip6InDelivers"]
		s.udpIn = m["Udp6InDatagrams"] + m["Udp6NoPorts"] + m["Udp6InErrors"]
	} else {
		b, err := nsFile(f.p.Host, "snmp")
		if err != nil {
			return s, err
		}
		m := parseSNMP(b)
		s.inReceives, s.inDelivers = m["Ip.InReceives"], m["Ip.InDelivers"]
		// Every datagram past netfilter lands in one of these, whether
		// or not the receiver keeps up.
		s.udpIn = m["Udp.InDatagrams"] + m["Udp.NoPorts"] + m["Udp.InErrors"]
	}
	b, err := nsFile(f.p.Attacker, "dev")
	if err != nil {
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
	snd := f.sender(banned, f.v6)
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
	sizes6 := []int{10, 1000, 100000}
	if o.quick {
		sizes, sizes6 = []int{10, 1000, 10000}, []int{10, 1000}
	}
	peers := []floodPeer{{"xdpban", installXDP}}
	var skipped []string
	if _, err := exec.LookPath("nft"); err == nil {
		// nft only reads the table back for the checks; the backend
		// speaks netlink itself.
		peers = append(peers, floodPeer{"nftables", installNFT})
	} else {
		skipped = append(skipped, "nftables: nft not found (apt-get install nftables)")
	}
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
	// IPv6: the hash and trie peers; a per-address chain of /64 rules
	// is the v4 chain's story again.
	var peers6 []floodPeer
	for _, peer := range peers {
		if peer.tool != "iptables-chain" {
			peers6 = append(peers6, peer)
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
	for _, fam := range []struct {
		v6    bool
		sizes []int
		peers []floodPeer
		list  func(int) []netip.Prefix
	}{{false, sizes, peers, floodBanList}, {true, sizes6, peers6, floodBanListV6}} {
		f.v6 = fam.v6
		th, cd, err := floodFamily(ctx, s, f, p, fam.v6, fam.sizes, fam.peers, fam.list)
		if err != nil {
			return err
		}
		through += th
		cleanDropped += cd
	}

	s.target("packets from banned sources that got through (all tools, all sizes)", float64(through), "pkt", true, 0)
	s.target("unbanned packets dropped (all tools, all sizes)", float64(cleanDropped), "pkt", true, 0)
	lo, hi := sizeLabel(sizes[0])+" bans", sizeLabel(sizes[len(sizes)-1])+" bans"
	flat := ratio(s.find(hi, "xdpban", "cpu_ms_per_mpkt_dropped"), s.find(lo, "xdpban", "cpu_ms_per_mpkt_dropped"))
	s.target(fmt.Sprintf("xdpban CPU per Mpkt dropped, %s vs %s (flat)", hi, lo), flat, "x", true, 1.5)
	if nf := ratio(s.find(hi, "nftables", "cpu_ms_per_mpkt_dropped"), s.find(lo, "nftables", "cpu_ms_per_mpkt_dropped")); !math.IsNaN(nf) {
		s.target(fmt.Sprintf("nftables CPU per Mpkt dropped, %s vs %s (flat)", hi, lo), nf, "x", true, 1.5)
	}
	lo6, hi6 := caseName(sizes6[0], true), caseName(sizes6[len(sizes6)-1], true)
	if f6 := ratio(s.find(hi6, "xdpban", "cpu_ms_per_mpkt_dropped"), s.find(lo6, "xdpban", "cpu_ms_per_mpkt_dropped")); !math.IsNaN(f6) {
		s.target(fmt.Sprintf("xdpban CPU per Mpkt dropped, %s vs %s (flat)", hi6, lo6), f6, "x", true, 1.5)
	}
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
	s.note("Traffic: %s, in the attacker namespace; 64-byte IPv4/UDP frames to port %d over the veth, cycling through %d sources: banned 198.51.100.1–%d, unbanned 203.0.113.1–%d; in IPv6, 64-byte IPv6/UDP frames (UDP checksum set, as IPv6 requires) from one address in each of %[3]d /64s: banned 2001:db8:100:0::1 to 2001:db8:107:0::1, unbanned 2001:db8:200::1 to 2001:db8:207::1 (the 8th byte counting). Each flood is bounded at %[6]s packets and measured over a %[7]s window after a warm-up; the sender is then stopped and the host drained.",
		f.senderNote, floodPort, floodSources, floodSources, floodSources, group(strconv.Itoa(f.count)), f.window)
	s.note("Host CPU: the softirq time of all CPUs in /proc/stat over the window, divided by the packets dropped (banned flood) or passed to UDP (unbanned flood). The veth delivers in NET_RX softirq on the sending CPU (no IRQ, no RPS), so that softirq time is the host's whole receive path: XDP, or IP input with netfilter and, for passed packets, UDP delivery. The sender's own cost (its AF_PACKET socket and the veth transmit) is system time and not counted. %s. The sender and host share the CPU, so drops/s is the pair's throughput, not the enforcement's ceiling.", softirqAccounting())
	s.note("Dropped = XDP's drop counter (xdpban) or IP InReceives − InDelivers in the host namespace (netfilter drops in INPUT; Ip6InReceives − Ip6InDelivers in IPv6); passed = UDP InDatagrams + NoPorts + InErrors (their Udp6 twins in IPv6). Banned got through = datagrams from banned sources that reached UDP or the receiver socket in the host namespace, counted over each whole flood and its drain.")
	mode := xdpMode
	if mode == "" {
		mode = "unknown"
	}
	s.note("xdpban: the loader's program on the host veth (%s mode), one /32 entry per ban. ipset: xdpban's own netfilter fallback (iptables.ModeIPSet): chain xdpban jumped to from INPUT, one `-m set --match-set xdpban-v4 src -j DROP` rule, a hash:net set with timeout, counters and comments. iptables-chain: what fail2ban's iptables actions build: chain %s jumped to from INPUT, one `-s ADDR/32 -j DROP` rule per ban (loaded with one iptables-restore), RETURN last; %s. nftables: xdpban's nftables backend: table inet xdpban, a base chain at input (priority filter − 10) jumping to one lookup rule per set, the /32 bans in a hash set with timeout and element counters; the IPv6 /64 bans in an interval set (rbtree) of the same kind. IPv6 runs xdpban (the /64s in ban_v6, the hash keyed by the widened /64), nftables and ipset (hash:net family inet6), with /64 bans as the daemon makes them; no per-address chain.",
		mode, f2bChain, iptablesVariant())
	s.note("On a veth, XDP costs more than on a NIC: frames from a socket reach the host veth as socket buffers, which the veth copies into an XDP buffer before the program runs (and, for XDP_PASS, hands to GRO, which a veth turns on while an XDP program is attached), while a driver with native XDP runs the program before any socket buffer exists. The xdpban figures here are an upper bound; that copy is why xdpban's cost for passed packets is above the netfilter peers' with short lists. Section 1 gives the program's own cost. The `none` row is the same unbanned flood with nothing loaded.")
	s.note("Ban lists: the %d banned flood sources spread evenly through the list, fillers from 240.0.0.0/4 (never on the wire). In the chain, a banned packet walks on average half the rules and an unbanned one all of them; hash lookups (XDP, ipset) do not depend on the order.", floodSources)
	return nil
}

// caseName labels a list size: "1k bans" in IPv4, "1k v6 /64 bans".
func caseName(n int, v6 bool) string {
	if v6 {
		return sizeLabel(n) + " v6 /64 bans"
	}
	return sizeLabel(n) + " bans"
}

// floodFamily floods with no enforcement, then each peer with each list
// size, in one address family, adding figures and rows to s. It returns
// the banned packets that got through and the unbanned ones dropped.
func floodFamily(ctx context.Context, s *Section, f *flooder, p *nspair.Pair, v6 bool, sizes []int, peers []floodPeer, list func(int) []netip.Prefix) (through, cleanDropped uint64, err error) {
	none := "no bans"
	if v6 {
		none = "no bans v6"
	}
	// A flood with nothing to divide by (no drop) is a skipped cell,
	// not a NaN the JSON cannot hold.
	add := func(fig Figure) {
		if math.IsNaN(fig.Value) || math.IsInf(fig.Value, 0) {
			fig.Value, fig.Skipped = 0, "no packets to divide by"
		}
		s.add(fig)
	}
	base, err := f.run(ctx, noEnforcer{}, false)
	if err != nil {
		return 0, 0, fmt.Errorf("flood without enforcement (%s): %w", none, err)
	}
	cleanDropped += base.cleanDropped
	add(Figure{Case: none, Tool: "none", Metric: "unbanned_passed_per_s", Value: perSec(base.passed, base.elapsed), Unit: "pkt/s"})
	add(Figure{Case: none, Tool: "none", Metric: "cpu_ms_per_mpkt_passed", Value: msPerMpkt(base.cpu, base.passed), Unit: "ms"})
	label := "0"
	if v6 {
		label = "0 (v6)"
	}
	s.Table.Rows = append(s.Table.Rows, []string{label, "none (no enforcement)", "—", "—", "—", "—",
		num(s.find(none, "none", "unbanned_passed_per_s")), num(s.find(none, "none", "cpu_ms_per_mpkt_passed")), "—"})
	for _, n := range sizes {
		addrs := list(n)
		cas := caseName(n, v6)
		row := sizeLabel(n)
		if v6 {
			row += " v6 /64"
		}
		for _, peer := range peers {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
			t0 := time.Now()
			e, err := peer.install(ctx, p, addrs)
			if err != nil {
				if ctx.Err() != nil {
					return 0, 0, ctx.Err()
				}
				add(Figure{Case: cas, Tool: peer.tool, Metric: "drops_per_s", Skipped: err.Error()})
				s.Table.Rows = append(s.Table.Rows, []string{row, peer.tool, "skipped: " + oneLine(err.Error())})
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
				return 0, 0, fmt.Errorf("%s with %s: %w", peer.tool, cas, err)
			}
			if err := checkClean(ctx, p); err != nil {
				return 0, 0, err
			}
			slog.Info("flood", "tool", peer.tool, "bans", n, "v6", v6, "load", load.Round(time.Millisecond),
				"sent", dr.sent, "dropped", dr.dropped, "drop_s", dr.elapsed.Round(time.Millisecond), "sent_clean", pr.sent, "passed", pr.passed, "through", dr.bannedThrough)

			through += dr.bannedThrough
			cleanDropped += pr.cleanDropped
			add(Figure{Case: cas, Tool: peer.tool, Metric: "drops_per_s", Value: perSec(dr.dropped, dr.elapsed), Unit: "pkt/s"})
			add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_ms_per_mpkt_dropped", Value: msPerMpkt(dr.cpu, dr.dropped), Unit: "ms"})
			add(Figure{Case: cas, Tool: peer.tool, Metric: "banned_got_through", Value: float64(dr.bannedThrough), Unit: "pkt"})
			add(Figure{Case: cas, Tool: peer.tool, Metric: "unbanned_passed_per_s", Value: perSec(pr.passed, pr.elapsed), Unit: "pkt/s"})
			add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_ms_per_mpkt_passed", Value: msPerMpkt(pr.cpu, pr.passed), Unit: "ms"})
			add(Figure{Case: cas, Tool: peer.tool, Metric: "unbanned_dropped", Value: float64(pr.cleanDropped), Unit: "pkt"})
			add(Figure{Case: cas, Tool: peer.tool, Metric: "load_s", Value: load.Seconds(), Unit: "s"})
		}
		// Ratios against xdpban at the same list size, once all ran.
		xd, xp := s.find(cas, "xdpban", "cpu_ms_per_mpkt_dropped"), s.find(cas, "xdpban", "cpu_ms_per_mpkt_passed")
		for _, peer := range peers {
			d, pa := s.find(cas, peer.tool, "cpu_ms_per_mpkt_dropped"), s.find(cas, peer.tool, "cpu_ms_per_mpkt_passed")
			if math.IsNaN(s.find(cas, peer.tool, "drops_per_s")) {
				continue
			}
			rd, rp := ratio(d, xd), ratio(pa, xp)
			if peer.tool != "xdpban" {
				add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_dropped_ratio_vs_xdpban", Value: rd, Unit: "x"})
				add(Figure{Case: cas, Tool: peer.tool, Metric: "cpu_passed_ratio_vs_xdpban", Value: rp, Unit: "x"})
			}
			s.Table.Rows = append(s.Table.Rows, []string{row, peer.tool,
				num(s.find(cas, peer.tool, "drops_per_s")), num(d), fmt.Sprintf("%.2f", rd),
				num(s.find(cas, peer.tool, "banned_got_through")),
				num(s.find(cas, peer.tool, "unbanned_passed_per_s")), num(pa), fmt.Sprintf("%.2f", rp)})
		}
	}
	return through, cleanDropped, nil
}
