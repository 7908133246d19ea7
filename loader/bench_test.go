package loader

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// BenchmarkXDP measures the program's cost per packet with
// BPF_PROG_TEST_RUN (the kernel's own per-run average, reported as
// ns/pkt), for pass and drop, v4 and v6, with the exact tables holding 0,
// 10k or 1M other bans. The peer, measured in the same run, is the
// smallest possible XDP program (return XDP_DROP): the difference is
// what xdpban's parsing and lookups cost. A second peer does nothing but
// one hit in an LRU hash like ban_v4 (constant key, no parsing): the
// floor for any design that keeps bans in a BPF hash map, since the
// lookup is a call into the kernel that the verifier cannot inline.
//
// Filler keys never meet a wire (the program is attached nowhere and
// frames are synthetic). IPv6 filler is inside 2001:db8::/32; 1M distinct
// IPv4 keys cannot fit the documentation ranges, so IPv4 filler is drawn
// from 240.0.0.0/4 (reserved, never routed).
func BenchmarkXDP(b *testing.B) {
	b.Run("peer=return-drop", func(b *testing.B) {
		loadDetached(b, Options{}) // root check, same kernel state
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:    ebpf.XDP,
			License: "MIT",
			Instructions: asm.Instructions{
				asm.Mov.Imm(asm.R0, xdpDrop),
				asm.Return(),
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer prog.Close()
		benchProg(b, prog, udp4(addr("192.0.2.66")), xdpDrop)
	})
	b.Run("peer=lru-lookup", func(b *testing.B) {
		loadDetached(b, Options{})
		m, err := ebpf.NewMap(&ebpf.MapSpec{
			Type: ebpf.LRUHash, KeySize: 4, ValueSize: uint32(binary.Size(xdpbanBanEntry{})), MaxEntries: 1024,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		key := addr("192.0.2.66").As4()
		if err := m.Put(key, xdpbanBanEntry{}); err != nil {
			b.Fatal(err)
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:    ebpf.XDP,
			License: "MIT",
			Instructions: asm.Instructions{
				asm.StoreImm(asm.RFP, -4, int64(int32(nativeEndian.Uint32(key[:]))), asm.Word),
				asm.Mov.Reg(asm.R2, asm.RFP),
				asm.Add.Imm(asm.R2, -4),
				asm.LoadMapPtr(asm.R1, m.FD()),
				asm.FnMapLookupElem.Call(),
				asm.JEq.Imm(asm.R0, 0, "miss"),
				asm.Mov.Imm(asm.R0, xdpDrop),
				asm.Return(),
				asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("miss"),
				asm.Return(),
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer prog.Close()
		benchProg(b, prog, udp4(addr("192.0.2.66")), xdpDrop)
	})
	for _, n := range []int{0, 10_000, 1 << 20} {
		b.Run(fmt.Sprintf("entries=%s", human(n)), func(b *testing.B) {
			x := loadDetached(b, Options{MapSizes: MapSizes{V4: 1 << 20, V6: 1 << 20, V4Net: 1 << 16, V6Net: 1 << 16}})
			fill(b, x, n)
			mustAdd(b, x, ban("192.0.2.66", "bench", time.Hour), ban("2001:db8:ffff:1::1", "bench", time.Hour),
				ban("192.0.2.67", "bench", 0), scoped("192.0.2.68", "bench", "tcp/22"))
			for _, c := range []struct {
				name    string
				frame   []byte
				verdict uint32
			}{
				{"v4/drop", udp4(addr("192.0.2.66")), xdpDrop},
				{"v4/pass", udp4(addr("192.0.2.2")), xdpPass},
				{"v4/drop-permanent", udp4(addr("192.0.2.67")), xdpDrop},
				{"v6/drop", udp6(addr("2001:db8:ffff:1::1")), xdpDrop},
				{"v6/pass", udp6(addr("2001:db8:ffff:2::1")), xdpPass},
				// A source banned for tcp/22 only: the one path that
				// reads the transport header and a scope bitmap.
				{"v4/drop-scoped", tcp4(addr("192.0.2.68"), 22, tcpSYN), xdpDrop},
				{"v4/pass-scoped", tcp4(addr("192.0.2.68"), 8080, tcpSYN), xdpPass},
			} {
				b.Run(c.name, func(b *testing.B) { benchProg(b, x.prog, c.frame, c.verdict) })
			}
			// With one prefix banned, every miss in the exact table also
			// pays an LPM lookup.
			mustAdd(b, x, ban("198.51.100.0/24", "bench", time.Hour), ban("2001:db8:eeee::/48", "bench", time.Hour))
			b.Run("v4/pass-trie", func(b *testing.B) { benchProg(b, x.prog, udp4(addr("192.0.2.2")), xdpPass) })
			b.Run("v4/drop-trie", func(b *testing.B) { benchProg(b, x.prog, udp4(addr("198.51.100.3")), xdpDrop) })
			b.Run("v6/pass-trie", func(b *testing.B) { benchProg(b, x.prog, udp6(addr("2001:db8:ffff:2::1")), xdpPass) })
			b.Run("v6/drop-trie", func(b *testing.B) { benchProg(b, x.prog, udp6(addr("2001:db8:eeee:1::1")), xdpDrop) })
		})
	}
}

// BenchmarkRateLimit: the SYN path with rules set, against a plain pass
// of the same frame without rules (the peer, same run).
func BenchmarkRateLimit(b *testing.B) {
	x := loadDetached(b, Options{})
	syn := tcp4(addr("192.0.2.50"), 22, tcpSYN)
	b.Run("peer=no-rules/syn", func(b *testing.B) { benchProg(b, x.prog, syn, xdpPass) })
	if err := x.SetRateLimits([]RateLimitRule{
		// Never reached in a benchmark: about 1000 s of burst.
		{Port: 22, Jail: "bench", Rate: 1_000_000, Per: time.Second, Burst: 1 << 30},
		{Port: 443, Jail: "bench", Rate: 1, Per: time.Minute, Burst: 1},
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("syn/under-limit", func(b *testing.B) { benchProg(b, x.prog, syn, xdpPass) })
	b.Run("syn/over-limit", func(b *testing.B) {
		run(b, x, tcp4(addr("192.0.2.51"), 443, tcpSYN)) // spends the burst of 1
		benchProg(b, x.prog, tcp4(addr("192.0.2.51"), 443, tcpSYN), xdpDrop)
	})
	b.Run("syn/unlimited-port", func(b *testing.B) { benchProg(b, x.prog, tcp4(addr("192.0.2.50"), 80, tcpSYN), xdpPass) })
	b.Run("ack/limited-port", func(b *testing.B) { benchProg(b, x.prog, tcp4(addr("192.0.2.50"), 22, tcpACK), xdpPass) })
}

func benchProg(b *testing.B, prog *ebpf.Program, frame []byte, want uint32) {
	b.Helper()
	ret, d, err := prog.Benchmark(frame, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	if ret != want {
		b.Fatalf("verdict %d, want %d", ret, want)
	}
	b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
}

func human(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1000:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// fill puts n filler bans in each exact table with batch updates.
func fill(b *testing.B, x *XDP, n int) {
	b.Helper()
	const chunk = 1 << 16
	v := xdpbanBanEntry{JailId: 0}
	for done := 0; done < n; {
		c := min(chunk, n-done)
		k4 := make([][4]byte, c)
		k6 := make([][16]byte, c)
		vals := make([]xdpbanBanEntry, c)
		for i := range c {
			id := uint32(done + i)
			binary.BigEndian.PutUint32(k4[i][:], 0xf0000000|id) // 240.0.0.0/4
			k6[i] = [16]byte{0x20, 0x01, 0x0d, 0xb8}            // 2001:db8::/32
			binary.BigEndian.PutUint32(k6[i][4:], id)           // one /64 each
			vals[i] = v
		}
		if _, err := x.tbl[tV4].BatchUpdate(k4, vals, nil); err != nil {
			b.Fatalf("fill ban_v4: %v", err)
		}
		if _, err := x.tbl[tV6].BatchUpdate(k6, vals, nil); err != nil {
			b.Fatalf("fill ban_v6: %v", err)
		}
		done += c
	}
}
