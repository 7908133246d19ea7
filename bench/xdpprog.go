package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/nspair"
)

// Section 1: the per-packet cost of the XDP program itself, measured with
// BPF_PROG_TEST_RUN (no NIC, no driver: the program alone), for xdpban and
// for xdp-filter's deny-listed-address program on the same frames with
// the same number of banned addresses in its maps.

// Verdicts the programs return.
const (
	xdpDrop = 1
	xdpPass = 2
)

// Addresses of the frames. The frames never leave this process.
var (
	srcBannedV4 = netip.MustParseAddr("198.51.100.7")
	srcCleanV4  = netip.MustParseAddr("203.0.113.9")
	srcBannedV6 = netip.MustParseAddr("2001:db8:1::7")
	srcCleanV6  = netip.MustParseAddr("2001:db8:2::9")
)

// fillV4 is the i-th IPv4 filler key. 1M distinct IPv4 addresses do not
// fit the documentation ranges, so fillers come from 240.0.0.0/4
// (reserved, never routed); they are map keys only and never appear in a
// packet.
func fillV4(i int) [4]byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], 0xf0000000+uint32(i))
	return k
}

// fillV6 is the i-th IPv6 filler: 2001:db8:X:Y::/64 with the index in the
// third and fourth groups (never 2001:db8:1:: or 2001:db8:2::, the frame
// sources, since i starts above 2^16 in the third group's high bits).
func fillV6(i int) [16]byte {
	var k [16]byte
	copy(k[:4], []byte{0x20, 0x01, 0x0d, 0xb8})
	binary.BigEndian.PutUint32(k[4:8], 0x80000000|uint32(i))
	return k
}

// frame builds an Ethernet + IP + UDP frame of 64 bytes from src to the
// host address of the same family.
func frame(src netip.Addr) []byte {
	eth := []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0, 0}
	if src.Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 20+8+22)
		ip[8], ip[9] = 64, 17
		s, d := src.As4(), nspair.HostV4.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		return append(append(append(eth, ip...), udp(22)...), make([]byte, 22)...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x86dd)
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8+2)
	ip[6], ip[7] = 17, 64
	s, d := src.As16(), nspair.HostV6.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(append(append(eth, ip...), udp(2)...), make([]byte, 2)...)
}

func udp(payload int) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], 9999)
	binary.BigEndian.PutUint16(h[4:], uint16(8+payload))
	return h
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// progUnderTest is one program with its maps filled for one case.
type progUnderTest struct {
	tool string
	prog *ebpf.Program
	coll *ebpf.Collection
}

func (p *progUnderTest) Close() {
	if p.coll != nil {
		p.coll.Close()
	}
}

// xdpFilterObject finds xdp-filter's "allow by default, drop listed
// addresses" program for IP (xdpfilt_alw_ip.o) where xdp-tools installed
// it.
func xdpFilterObject() (string, error) {
	const name = "xdpfilt_alw_ip.o"
	cands := []string{}
	if out, err := exec.Command("dpkg", "-L", "xdp-tools").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if filepath.Base(l) == name {
				cands = append(cands, l)
			}
		}
	}
	// libxdp looks in these when xdp-filter loads.
	m, _ := filepath.Glob("/usr/lib/*/bpf/" + name)
	cands = append(cands, m...)
	cands = append(cands, "/usr/lib/bpf/"+name, "/usr/local/lib/bpf/"+name)
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("xdp-filter's BPF object %s not found: install xdp-tools (apt-get install xdp-tools, or `make deps-bench`)", name)
}

// loadXDPFilter loads xdp-filter's program with room for n entries in each
// address map and bans the same addresses xdpban gets.
func loadXDPFilter(path string, n int, v6 bool) (*progUnderTest, error) {
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		return nil, fmt.Errorf("read xdp-filter object %s: %w", path, err)
	}
	for _, m := range spec.Maps {
		// xdp-filter pins by name under /sys/fs/bpf/xdp-filter; the
		// benchmark must not touch a real xdp-filter's maps.
		m.Pinning = ebpf.PinNone
	}
	for _, name := range []string{"filter_ipv4", "filter_ipv6"} {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("xdp-filter object %s has no map %s: unsupported xdp-tools version", path, name)
		}
		ms.MaxEntries = capacity(n)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load xdp-filter object %s: %w", path, err)
	}
	put := &progUnderTest{tool: "xdp-filter", coll: coll}
	for _, p := range coll.Programs {
		put.prog = p
	}
	if put.prog == nil {
		coll.Close()
		return nil, fmt.Errorf("xdp-filter object %s has no program", path)
	}
	// Value: MAP_FLAG_SRC (1) in the low bits, a hit counter above
	// COUNTER_SHIFT; per CPU.
	const mapFlagSrc = 1
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		put.Close()
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	if !v6 {
		keys := make([][4]byte, 0, n+1)
		for i := 0; i < n; i++ {
			keys = append(keys, fillV4(i))
		}
		keys = append(keys, srcBannedV4.As4())
		err = batchPut(coll.Maps["filter_ipv4"], keys, perCPU(len(keys), ncpu, mapFlagSrc))
	} else {
		keys := make([][16]byte, 0, n+1)
		for i := 0; i < n; i++ {
			keys = append(keys, fillV6(i))
		}
		keys = append(keys, srcBannedV6.As16())
		err = batchPut(coll.Maps["filter_ipv6"], keys, perCPU(len(keys), ncpu, mapFlagSrc))
	}
	if err != nil {
		put.Close()
		return nil, fmt.Errorf("fill xdp-filter map: %w", err)
	}
	return put, nil
}

func perCPU(n, ncpu int, v uint64) []uint64 {
	out := make([]uint64, n*ncpu)
	for i := range out {
		out[i] = v
	}
	return out
}

// capacity is the map size both tools get for n entries: the same for
// both so neither gets a emptier hash table.
func capacity(n int) uint32 { return uint32(n + n/4 + 1024) }

// batchPut inserts keys in chunks (one syscall per chunk).
func batchPut[K any, V any](m *ebpf.Map, keys []K, values []V) error {
	const chunk = 16384
	per := len(values) / max(len(keys), 1)
	for i := 0; i < len(keys); i += chunk {
		j := min(i+chunk, len(keys))
		if _, err := m.BatchUpdate(keys[i:j], values[i*per:j*per], nil); err != nil {
			return fmt.Errorf("batch update %d..%d: %w", i, j, err)
		}
	}
	return nil
}

// dropLog is the drop-event sampling the daemon runs with by default
// (drop_log_rate, drop_log_global of the shipped xdpban.conf): every drop
// of a banned source then also goes through the event sampling.
type dropLog struct{ rate, global uint32 }

func defaultDropLog() (dropLog, error) {
	d, err := config.LoadDaemon("")
	if err != nil {
		return dropLog{}, fmt.Errorf("shipped daemon settings: %w", err)
	}
	return dropLog{rate: uint32(d.DropLogRate), global: uint32(d.DropLogGlobal)}, nil
}

// setDropLog writes the sampling into xdpban_meta as the loader's
// SetDropLog does (struct meta: drop_log_rate and drop_log_global are
// its fifth and sixth words).
func setDropLog(coll *ebpf.Collection, dl dropLog) error {
	m := coll.Maps["xdpban_meta"]
	if m == nil || m.ValueSize() != 32 {
		return errors.New("xdpban object has no 32-byte xdpban_meta: the bench's view of struct meta is out of date")
	}
	var v [8]uint32
	if err := m.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("read xdpban_meta: %w", err)
	}
	v[4], v[5] = dl.rate, dl.global
	if err := m.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("write xdpban_meta: %w", err)
	}
	return nil
}

// loadXdpbanProg loads xdpban's program (the object the loader embeds)
// with n single-address bans plus the banned frame source, and the
// daemon's default drop-event sampling.
func loadXdpbanProg(n int, v6 bool, dl dropLog) (*progUnderTest, error) {
	spec, err := xdpbanSpec()
	if err != nil {
		return nil, err
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	for _, name := range []string{"ban_v4", "ban_v6"} {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("xdpban object has no map %s", name)
		}
		ms.MaxEntries = capacity(n)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load xdpban object: %w", err)
	}
	put := &progUnderTest{tool: "xdpban", coll: coll, prog: coll.Programs["xdpban"]}
	if put.prog == nil {
		put.Close()
		return nil, errors.New("xdpban object has no program xdpban")
	}
	if err := setDropLog(coll, dl); err != nil {
		put.Close()
		return nil, err
	}
	// A zero ban_entry is a permanent ban of jail 0 with zero counters.
	name := "ban_v4"
	if v6 {
		name = "ban_v6"
	}
	m := coll.Maps[name]
	zero := zeroValues(n+1, int(m.ValueSize()))
	if !v6 {
		keys := make([][4]byte, 0, n+1)
		for i := 0; i < n; i++ {
			keys = append(keys, fillV4(i))
		}
		keys = append(keys, srcBannedV4.As4())
		err = batchPutAny(m, keys, zero)
	} else {
		keys := make([][16]byte, 0, n+1)
		for i := 0; i < n; i++ {
			keys = append(keys, fillV6(i))
		}
		// ban_v6 keys are the source masked to the configured width
		// (/64 by default).
		p, _ := srcBannedV6.Prefix(64)
		keys = append(keys, p.Addr().As16())
		err = batchPutAny(m, keys, zero)
	}
	if err != nil {
		put.Close()
		return nil, fmt.Errorf("fill xdpban map %s: %w", name, err)
	}
	return put, nil
}

// zeroValues is n zero values of size bytes each, typed as a slice of
// fixed-size arrays because BatchUpdate marshals a slice of fixed-size
// elements and the value layout belongs to the loader, not to this file.
func zeroValues(n, size int) any {
	return reflect.MakeSlice(reflect.SliceOf(reflect.ArrayOf(size, reflect.TypeFor[byte]())), n, n).Interface()
}

// batchPutAny is batchPut for values built by zeroValues.
func batchPutAny[K any](m *ebpf.Map, keys []K, values any) error {
	const chunk = 16384
	v := reflect.ValueOf(values)
	for i := 0; i < len(keys); i += chunk {
		j := min(i+chunk, len(keys))
		if _, err := m.BatchUpdate(keys[i:j], v.Slice(i, j).Interface(), nil); err != nil {
			return fmt.Errorf("batch update %d..%d: %w", i, j, err)
		}
	}
	return nil
}

// xdpbanSpec is the CollectionSpec of the program the daemon loads, with
// the load-time settings the loader would give it on this kernel.
func xdpbanSpec() (*ebpf.CollectionSpec, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "loader", "xdpban_bpfel.o")
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		return nil, fmt.Errorf("read xdpban object %s: %w (run `make generate`)", path, err)
	}
	// As the loader does: on 5.19+ a drop event gathers what other CPUs'
	// hit-cache slots hold back (objects before the cache lack it).
	if v, ok := spec.Variables["have_percpu_lookup"]; ok && features.HaveProgramHelper(ebpf.XDP, asm.FnMapLookupPercpuElem) == nil {
		if err := v.Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("set have_percpu_lookup: %w", err)
		}
	}
	return spec, nil
}

// repoRoot is the directory holding go.mod, found upwards from the
// working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: run from the xdpban checkout (make bench)", dir)
		}
	}
}

// benchProg runs prog on data repeat times in the kernel and returns the
// nanoseconds per run; want is the verdict the case must produce, so a
// mis-filled map cannot pass as a fast program.
func benchProg(p *progUnderTest, data []byte, repeat int, want uint32) (float64, error) {
	ret, d, err := p.prog.Benchmark(data, repeat, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: BPF_PROG_TEST_RUN: %w", p.tool, err)
	}
	if ret != want {
		return 0, fmt.Errorf("%s returned verdict %d, want %d: the map fill is wrong", p.tool, ret, want)
	}
	return float64(d) / float64(time.Nanosecond), nil
}

func sizeLabel(n int) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// sectionXDPProg measures section 1.
func sectionXDPProg(ctx context.Context, o opts, s *Section) error {
	objPath, err := xdpFilterObject()
	if err != nil {
		s.Skipped = err.Error()
		return nil
	}
	sizes := []int{0, 10000, 1000000}
	repeat, rounds := 1000000, 5
	if o.quick {
		sizes = []int{0, 10000, 100000}
		repeat, rounds = 100000, 3
	}
	dl, err := defaultDropLog()
	if err != nil {
		return err
	}
	floor, err := newLRUFloor()
	if err != nil {
		return err
	}
	defer floor.Close()
	// The floor runs in every drop round, beside xdpban: drift hits both.
	var floorNs []float64
	dropWorst := map[string]float64{}
	s.Table = &Table{Header: []string{"case", "bans", "xdpban ns/pkt", "xdp-filter ns/pkt", "ratio xdpban/xdp-filter"}}
	worst := 0.0
	for _, v6 := range []bool{false, true} {
		fam := "v4"
		banned, clean := srcBannedV4, srcCleanV4
		if v6 {
			fam, banned, clean = "v6", srcBannedV6, srcCleanV6
		}
		for _, n := range sizes {
			if err := ctx.Err(); err != nil {
				return err
			}
			xb, err := loadXdpbanProg(n, v6, dl)
			if err != nil {
				return err
			}
			xf, err := loadXDPFilter(objPath, n, v6)
			if err != nil {
				xb.Close()
				return err
			}
			for _, c := range []struct {
				verdict string
				src     netip.Addr
				want    uint32
			}{{"pass", clean, xdpPass}, {"drop", banned, xdpDrop}} {
				data := frame(c.src)
				var a, b []float64
				// Interleaved rounds, so drift (frequency, noisy
				// neighbours) hits both tools alike.
				for r := 0; r < rounds; r++ {
					x, err := benchProg(xb, data, repeat, c.want)
					if err != nil {
						xb.Close()
						xf.Close()
						return fmt.Errorf("%s %s %d bans: %w", fam, c.verdict, n, err)
					}
					y, err := benchProg(xf, data, repeat, c.want)
					if err != nil {
						xb.Close()
						xf.Close()
						return fmt.Errorf("%s %s %d bans: %w", fam, c.verdict, n, err)
					}
					a, b = append(a, x), append(b, y)
					if c.verdict == "drop" {
						f, err := benchProg(floor.put, floorFrame, repeat, xdpDrop)
						if err != nil {
							xb.Close()
							xf.Close()
							return err
						}
						floorNs = append(floorNs, f)
					}
				}
				cas := fmt.Sprintf("%s %s %s", fam, c.verdict, sizeLabel(n))
				ma, mb := median(a), median(b)
				s.add(Figure{Case: cas, Tool: "xdpban", Metric: "ns_per_packet", Value: ma, Unit: "ns"})
				s.add(Figure{Case: cas, Tool: "xdp-filter", Metric: "ns_per_packet", Value: mb, Unit: "ns"})
				r := ratio(ma, mb)
				s.add(Figure{Case: cas, Tool: "xdpban", Metric: "ratio_vs_xdp-filter", Value: r, Unit: "x"})
				worst = max(worst, r)
				if c.verdict == "drop" {
					dropWorst[fam] = max(dropWorst[fam], ma)
				}
				bans := sizeLabel(n)
				if c.verdict == "drop" {
					bans = sizeLabel(n) + " + source"
				}
				s.Table.Rows = append(s.Table.Rows, []string{fam + " " + c.verdict, bans,
					fmt.Sprintf("%.1f", ma), fmt.Sprintf("%.1f", mb), fmt.Sprintf("%.2f", r)})
			}
			xb.Close()
			xf.Close()
		}
	}
	s.target("per-packet cost xdpban/xdp-filter (worst case)", worst, "x", true, 1.0)
	fl := median(floorNs)
	s.add(Figure{Case: "floor: one LRU hash hit, beside the drop rounds", Tool: "bpf", Metric: "ns_per_packet", Value: fl, Unit: "ns"})
	for _, fam := range []string{"v4", "v6"} {
		s.target(fmt.Sprintf("XDP drop %s ≤ 1.0× one bare LRU lookup (floor) in the same run (worst of the ban counts)", fam),
			ratio(dropWorst[fam], fl), "x", true, 1.0)
	}
	if err := xdpManySources(ctx, o, s, dl); err != nil {
		return err
	}
	if err := xdpFloors(s, repeat, rounds); err != nil {
		return err
	}
	s.note("xdpban runs with the daemon's default drop-event sampling (drop_log_rate = %d, drop_log_global = %d, as shipped): a flood's drops go through it as they do on a host. The floor (one LRU hash hit, then XDP_DROP) ran in every drop round: %.1f ns, median of %d.", dl.rate, dl.global, fl, len(floorNs))
	s.note("BPF_PROG_TEST_RUN, %s repeats per measurement, median of %d interleaved rounds; 64-byte UDP frames.", group(fmt.Sprint(repeat)), rounds)
	s.note("xdp-filter: %s (xdp-tools' allow-by-default IP program, the one `xdp-filter load --policy allow --mode ip` attaches), maps sized like xdpban's, entries flagged as sources.", objPath)
	s.note("Both tools get the same addresses: IPv4 fillers from 240.0.0.0/4 (map keys only, never on a wire), IPv6 fillers from 2001:db8::/32. xdpban widens IPv6 to /64 (one key per /64); xdp-filter matches exact /128 addresses.")
	s.note("xdp-filter looks up the destination and then the source address (two hash lookups); xdpban looks up the source only, and its LPM trie lookup is skipped while no prefix ban exists.")
	return nil
}

// xdpFloors measures what any XDP program pays in BPF_PROG_TEST_RUN on
// this machine: an empty program (the harness itself) and one that does a
// single hit in an LRU hash shaped like ban_v4 and nothing else (a hash
// lookup is a call into the kernel, never inlined). A drop can cost no
// less than the second; the figures put the per-packet numbers in scale.
func xdpFloors(s *Section, repeat, rounds int) error {
	spec, err := xdpbanSpec()
	if err != nil {
		return err
	}
	vsize := spec.Maps["ban_v4"].ValueSize
	lru, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 4, ValueSize: vsize, MaxEntries: 1024})
	if err != nil {
		return fmt.Errorf("floor map: %w", err)
	}
	defer lru.Close()
	key := srcBannedV4.As4()
	if err := lru.Put(key, make([]byte, vsize)); err != nil {
		return fmt.Errorf("floor map: %w", err)
	}
	progs := []struct {
		name  string
		insns asm.Instructions
	}{
		{"empty program (return XDP_DROP)", asm.Instructions{
			asm.Mov.Imm(asm.R0, int32(xdpDrop)),
			asm.Return(),
		}},
		{"one LRU hash hit, then XDP_DROP", asm.Instructions{
			// The key (the frame's IPv4 source) is a constant here: only
			// the lookup is measured.
			asm.StoreImm(asm.RFP, -4, int64(int32(binary.NativeEndian.Uint32(key[:]))), asm.Word),
			asm.LoadMapPtr(asm.R1, lru.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.Mov.Imm(asm.R0, int32(xdpDrop)),
			asm.Return(),
		}},
	}
	data := frame(srcBannedV4)
	var floors []string
	for _, p := range progs {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "MIT", Instructions: p.insns})
		if err != nil {
			return fmt.Errorf("floor program %q: %+v", p.name, err)
		}
		put := &progUnderTest{tool: "floor", prog: prog}
		var ns []float64
		for r := 0; r < rounds; r++ {
			v, err := benchProg(put, data, repeat, xdpDrop)
			if err != nil {
				prog.Close()
				return err
			}
			ns = append(ns, v)
		}
		prog.Close()
		m := median(ns)
		s.add(Figure{Case: "floor: " + p.name, Tool: "bpf", Metric: "ns_per_packet", Value: m, Unit: "ns"})
		floors = append(floors, fmt.Sprintf("%s %.1f ns", p.name, m))
	}
	s.note("Floors on this machine, what any program pays here: %s. The first is BPF_PROG_TEST_RUN itself; the second adds one hash lookup (a call into the kernel, never inlined), which no drop by address avoids. xdpban's own work is its figure minus the second.", strings.Join(floors, ", "))
	return nil
}
