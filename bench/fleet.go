package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// The fleet section: three `xdpban run` daemons (the real binary), each
// with an embedded NATS node, the three clustered with replicas 3, and an
// attacker, all on one bridge, each in a namespace of its own. Bans are
// made on a through its socket (what `xdpban ban` sends); some of them
// name attacker addresses that stream numbered datagrams to a, b and c
// (nspairtest.Probe), and the time from the ban request to the first
// datagram that never arrived is the propagation on b and c (and the
// local ban latency on a, the baseline of the ratio).

const (
	fleetIf       = "fl0"
	fleetPortBase = 7200
	fleetProbes   = 10 // probed bans per case
	fleetProbeGap = time.Millisecond
	// fleetWorkers send the paced bans: a socket ban waits for its
	// store commit (fsync), so one client cannot send 1,000 a second.
	fleetWorkers = 32
)

type fleetHost struct {
	name string
	addr netip.Addr
	ns   *nspair.NS
	d    *daemonProc
}

// fleetBed builds the bridge, the attacker (192.0.2.66 plus the probed
// sources) and the three hosts (192.0.2.11-13), and starts the daemons.
func fleetBed(ctx context.Context, o opts, sources []netip.Addr) (hosts []*fleetHost, attacker *nspair.NS, err error) {
	ipn := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	br, err := newNS("fbr")
	if err != nil {
		return nil, nil, err
	}
	if err := errors.Join(ipn("-n", br.Name, "link", "add", "br0", "type", "bridge"), ipn("-n", br.Name, "link", "set", "br0", "up")); err != nil {
		return nil, nil, err
	}
	plug := func(n *nspair.NS, port string, addrs ...string) error {
		// Made in the bridge's namespace with the peer moved straight
		// into n: no interface of the bed is ever in the root namespace.
		if err := ipn("-n", br.Name, "link", "add", port, "type", "veth", "peer", "name", fleetIf, "netns", n.Name); err != nil {
			return err
		}
		if err := ipn("-n", br.Name, "link", "set", port, "master", "br0", "up"); err != nil {
			return err
		}
		for _, a := range addrs {
			if err := ipn("-n", n.Name, "addr", "add", a, "dev", fleetIf); err != nil {
				return err
			}
		}
		return errors.Join(ipn("-n", n.Name, "link", "set", fleetIf, "up"), ipn("-n", n.Name, "link", "set", "lo", "up"))
	}
	if attacker, err = newNS("fatk"); err != nil {
		return nil, nil, err
	}
	addrs := []string{"192.0.2.66/24"}
	for _, s := range sources {
		addrs = append(addrs, s.String()+"/32")
	}
	if err := plug(attacker, "vatk", addrs...); err != nil {
		return nil, nil, err
	}
	names := []string{"a", "b", "c"}
	var clients, routes []string
	for i := range names {
		clients = append(clients, fmt.Sprintf("nats://192.0.2.1%d:4222", i+1))
		routes = append(routes, fmt.Sprintf("nats://192.0.2.1%d:6222", i+1))
	}
	for i, n := range names {
		h := &fleetHost{name: n, addr: netip.MustParseAddr(fmt.Sprintf("192.0.2.1%d", i+1))}
		if h.ns, err = newNS("f" + n); err != nil {
			return nil, nil, err
		}
		if err := plug(h.ns, "v"+n, h.addr.String()+"/24"); err != nil {
			return nil, nil, err
		}
		hosts = append(hosts, h)
	}
	for i, h := range hosts {
		var peers []string
		for j := range hosts {
			if j != i {
				peers = append(peers, routes[j])
			}
		}
		h.d, err = startDaemon(ctx, o, &nspair.Pair{Host: h.ns, HostIf: fleetIf}, filepath.Join(o.work, "fleet-"+h.name), daemonConf{
			keys: map[string]int{"map_size_v4": 16384, "map_size_v6": 262144, "map_size_v4_net": 1024, "map_size_v6_net": 1024},
			extra: fmt.Sprintf("[fleet]\nenabled = true\nnode = %s\nlisten = %s:4222\ncluster_listen = %s:6222\nroutes = %s\nservers = %s\n",
				h.name, h.addr, h.addr, strings.Join(peers, ", "), strings.Join(clients, ", ")),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("daemon %s: %w", h.name, err)
		}
	}
	// In step: every daemon read the bucket (the cluster elected its
	// leaders).
	deadline := time.Now().Add(60 * time.Second)
	for _, h := range hosts {
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := h.d.client.Status(cctx)
			cancel()
			if err == nil && st.Fleet != nil && st.Fleet.InStep {
				break
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("daemon %s not in step with the fleet after 60s (%v): %s", h.name, err, h.d.tail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return hosts, attacker, nil
}

// fleetProbe streams from src to one host.
type fleetProbe struct {
	host string
	src  netip.Addr
	pr   *nspairtest.Probe
}

func openFleetProbe(attacker *nspair.NS, h *fleetHost, src netip.Addr, port uint16) (*nspairtest.Probe, error) {
	dst := netip.AddrPortFrom(h.addr, port)
	var recv, send *net.UDPConn
	if err := h.ns.Do(func() error {
		var err error
		recv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		return nil, fmt.Errorf("probe: listen on %s: %w", dst, err)
	}
	if err := attacker.Do(func() error {
		var err error
		send, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		recv.Close()
		return nil, fmt.Errorf("probe: udp from %s: %w", src, err)
	}
	return nspairtest.NewProbe(send, recv, fleetProbeGap), nil
}

// fleetCase is one way of banning: n bans (probed ones at the indexes
// in probed) at rate bans/s, or all at once when rate is 0.
type fleetCase struct {
	name string
	n    int
	rate float64
}

// fleetResult is what one case measured, in ms.
type fleetResult struct {
	local, remote []float64
	// everywhere: the whole burst in force on b and c (status counts).
	everywhere float64
	achieved   float64 // bans/s sent
}

func sectionFleet(ctx context.Context, o opts, s *Section) error {
	cases := []fleetCase{{"10 bans/s", 40, 10}, {"1,000 bans/s", 3000, 1000}, {"10k burst", 10000, 0}}
	if o.quick {
		cases = []fleetCase{{"10 bans/s", 20, 10}, {"1,000 bans/s", 1000, 1000}, {"10k burst", 2000, 0}}
	}
	var sources []netip.Addr
	for i := range len(cases) * fleetProbes {
		sources = append(sources, netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}))
	}
	hosts, attacker, err := fleetBed(ctx, o, sources)
	if err != nil {
		return err
	}
	s.Table = &Table{Header: []string{"case", "figure", "value", "unit"}}
	row := func(cas, what string, v float64, unit string) {
		s.Table.Rows = append(s.Table.Rows, []string{cas, what, num(v), unit})
	}
	filler := 0
	for ci, c := range cases {
		r, err := fleetRun(ctx, hosts, attacker, c, sources[ci*fleetProbes:(ci+1)*fleetProbes], &filler)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		p50, p99 := median(r.remote), percentile(r.remote, 99)
		l50 := median(r.local)
		for _, f := range []Figure{
			{Case: c.name, Tool: "xdpban", Metric: "propagation_p50", Value: p50, Unit: "ms"},
			{Case: c.name, Tool: "xdpban", Metric: "propagation_p99", Value: p99, Unit: "ms"},
			{Case: c.name, Tool: "xdpban", Metric: "local_p50", Value: l50, Unit: "ms"},
			{Case: c.name, Tool: "xdpban", Metric: "propagation_over_local_p50", Value: p50 / l50, Unit: "x"},
			{Case: c.name, Tool: "xdpban", Metric: "bans_per_s_sent", Value: r.achieved, Unit: "bans/s"},
		} {
			s.add(f)
		}
		row(c.name, "ban on a → first drop on b, c: p50", p50, "ms")
		row(c.name, "ban on a → first drop on b, c: p99", p99, "ms")
		row(c.name, "ban on a → first drop on a (local): p50", l50, "ms")
		row(c.name, "propagation p50 / local p50", p50/l50, "x")
		row(c.name, "bans sent on a", r.achieved, "bans/s")
		switch c.rate {
		case 1000:
			s.target("p99 propagation at 1,000 bans/s", p99, "ms", true, 100)
		case 0:
			s.add(Figure{Case: c.name, Tool: "xdpban", Metric: "applied_everywhere", Value: r.everywhere, Unit: "ms"})
			row(c.name, "whole burst in force on b and c", r.everywhere, "ms")
			s.target("10k burst in force on every host", r.everywhere, "ms", true, 2000)
		}
		slog.Info("fleet case", "case", c.name, "p50_ms", p50, "p99_ms", p99, "local_p50_ms", l50, "everywhere_ms", r.everywhere)
	}
	catchN := 100_000
	if o.quick {
		catchN = 10_000
	}
	cas := fmt.Sprintf("catch-up of %s bans", num(float64(catchN)))
	ms, err := fleetCatchUp(ctx, hosts, catchN, &filler)
	if err != nil {
		return fmt.Errorf("%s: %w", cas, err)
	}
	s.add(Figure{Case: cas, Tool: "xdpban", Metric: "catch_up", Value: ms, Unit: "ms"})
	row(cas, "c started → all in force on c", ms, "ms")
	if !o.quick {
		s.target("catch-up of 100k bans after an absence", ms, "ms", true, 10000)
	}
	slog.Info("fleet catch-up", "bans", catchN, "ms", ms)
	s.note("Three daemons on one bridge, each with an embedded NATS JetStream node, clustered with replicas 3; the attacker streams a datagram every %v from each probed address to each host. %d probed bans per case, on b and c: %d samples per case, so p99 is the largest but one or the largest.",
		fleetProbeGap, fleetProbes, 2*fleetProbes)
	s.note("Bans are socket requests to a (one ban each, up to %d at a time, paced; the burst as chunks of 5,000); \"bans sent\" is the rate a accepted them. The fillers are IPv6 /64s that carry no traffic. Times start when a's request is sent and end at the first datagram that never arrived.", fleetWorkers)
	s.note("Catch-up: c is stopped (SIGTERM), a bans the IPv6 fillers in chunks of 5,000 until b holds them all, then c is started; the figure runs from c's process start (its own start-up and the restore of what it held included) until its ban count holds every one.")
	s.note("The outbox publishes in key order, IPv4 keys before IPv6: the probed (IPv4) bans of the burst leave a before its IPv6 fillers, so the burst's probe figures flatter it; \"whole burst in force on b and c\" (both hosts' ban counts up by 10,000) is the fair figure, and the target's.")
	return nil
}

// fleetRun runs one case; filler numbers the IPv6 fillers across cases.
func fleetRun(ctx context.Context, hosts []*fleetHost, attacker *nspair.NS, c fleetCase, probed []netip.Addr, filler *int) (fleetResult, error) {
	var res fleetResult
	type probeAt struct {
		fleetProbe
		idx int // which ban of the case names src
	}
	var probes []probeAt
	step := c.n / len(probed)
	byIdx := map[int]netip.Addr{}
	for i, src := range probed {
		idx := i*step + step - 1 // the last ban of the burst is probed too
		byIdx[idx] = src
		for hi, h := range hosts {
			port := uint16(fleetPortBase + (i*len(hosts)+hi)%1000)
			pr, err := openFleetProbe(attacker, h, src, port)
			if err != nil {
				return res, err
			}
			defer pr.Close()
			probes = append(probes, probeAt{fleetProbe{h.name, src, pr}, idx})
		}
	}
	for _, p := range probes {
		if err := p.pr.Start(ctx, 20); err != nil {
			return res, fmt.Errorf("probe %s → %s: %w", p.src, p.host, err)
		}
	}
	items := make([]control.BanItem, c.n)
	for i := range items {
		if src, ok := byIdx[i]; ok {
			items[i] = control.BanItem{Addr: src.String(), For: "1h"}
			continue
		}
		*filler++
		items[i] = control.BanItem{Addr: fmt.Sprintf("2001:db8:%x:%x::", 0x1000+*filler>>16, *filler&0xffff), For: "1h"}
	}
	a := hosts[0].d
	before := map[string]int{}
	for _, h := range hosts[1:] {
		st, err := h.d.client.Status(ctx)
		if err != nil {
			return res, err
		}
		before[h.name] = st.Bans
	}
	sent := make([]time.Time, c.n)
	t0 := time.Now()
	if c.rate == 0 {
		for i := range sent {
			sent[i] = t0
		}
		for off := 0; off < len(items); off += 5000 {
			if _, err := a.client.Ban(ctx, items[off:min(off+5000, len(items))]); err != nil {
				return res, fmt.Errorf("burst: %w", err)
			}
		}
	} else {
		jobs := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var ferr error
		for range fleetWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					mu.Lock()
					sent[i] = time.Now()
					mu.Unlock()
					if _, err := a.client.Ban(ctx, items[i:i+1]); err != nil {
						mu.Lock()
						ferr = errors.Join(ferr, err)
						mu.Unlock()
					}
				}
			}()
		}
		gap := time.Duration(float64(time.Second) / c.rate)
		for i := range items {
			if d := time.Until(t0.Add(time.Duration(i) * gap)); d > 0 {
				time.Sleep(d)
			}
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		if ferr != nil {
			return res, fmt.Errorf("bans on a: %w", ferr)
		}
	}
	res.achieved = float64(c.n) / time.Since(t0).Seconds()
	if c.rate == 0 {
		res.achieved = float64(c.n) / time.Since(t0).Seconds()
		// The burst in force on b and c: their ban counts.
		for _, h := range hosts[1:] {
			for {
				st, err := h.d.client.Status(ctx)
				if err == nil && st.Bans >= before[h.name]+c.n {
					break
				}
				if time.Since(t0) > 60*time.Second {
					return res, fmt.Errorf("%s holds %d of the burst's %d bans after 60s", h.name, st.Bans-before[h.name], c.n)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		res.everywhere = float64(time.Since(t0)) / float64(time.Millisecond)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ferr error
	for _, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cut, err := p.pr.WaitCut(ctx, 50*time.Millisecond, 30*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ferr = errors.Join(ferr, fmt.Errorf("%s → %s: %w", p.src, p.host, err))
				return
			}
			ms := float64(cut.Since(sent[p.idx])) / float64(time.Millisecond)
			if p.host == hosts[0].name {
				res.local = append(res.local, ms)
			} else {
				res.remote = append(res.remote, ms)
			}
		}()
	}
	wg.Wait()
	return res, ferr
}

// fleetCatchUp stops c, bans n more on a until b holds them, and times
// c's start until it holds them too, in ms.
func fleetCatchUp(ctx context.Context, hosts []*fleetHost, n int, filler *int) (float64, error) {
	a, b, c := hosts[0].d, hosts[1].d, hosts[2].d
	count := func(d *daemonProc) (int, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := d.client.Status(cctx)
		return st.Bans, err
	}
	waitCount := func(d *daemonProc, want int, within time.Duration) error {
		deadline := time.Now().Add(within)
		for {
			got, err := count(d)
			if err == nil && got >= want {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d bans after %v (%v): %s", got, want, within, err, d.tail())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	held, err := count(c)
	if err != nil {
		return 0, err
	}
	before, err := count(b)
	if err != nil {
		return 0, err
	}
	c.stop()
	items := make([]control.BanItem, n)
	for i := range items {
		*filler++
		items[i] = control.BanItem{Addr: fmt.Sprintf("2001:db8:%x:%x::", 0x1000+*filler>>16, *filler&0xffff), For: "1h"}
	}
	for off := 0; off < n; off += 5000 {
		if _, err := a.client.Ban(ctx, items[off:min(off+5000, n)]); err != nil {
			return 0, fmt.Errorf("bans on a: %w", err)
		}
	}
	if err := waitCount(b, before+n, 2*time.Minute); err != nil {
		return 0, fmt.Errorf("b: %w", err)
	}
	t0 := time.Now()
	if err := c.launch(ctx, daemonConf{}); err != nil {
		return 0, fmt.Errorf("restart c: %w", err)
	}
	if err := waitCount(c, held+n, time.Minute); err != nil {
		return 0, fmt.Errorf("c: %w", err)
	}
	return float64(time.Since(t0)) / float64(time.Millisecond), nil
}
