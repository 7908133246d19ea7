package loader

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

var smallSizes = MapSizes{V4: 1024, V6: 1024, V4Net: 256, V6Net: 256}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// loadDetached loads program and maps into a fresh test pin dir without
// attaching anywhere: for BPF_PROG_TEST_RUN tests.
func loadDetached(t testing.TB, o Options) *XDP {
	t.Helper()
	nspairtest.Require(t)
	if o.PinPath == "" {
		o.PinPath = nspairtest.PinDir(t)
	}
	if o.MapSizes == (MapSizes{}) {
		o.MapSizes = smallSizes
	}
	o.Logger = testLogger(t)
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	st, err := load(o)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if st.fresh {
		if err := os.Rename(st.dir, o.PinPath); err != nil {
			st.abort()
			t.Fatalf("publish: %v", err)
		}
	}
	x := st.x
	t.Cleanup(func() { _ = x.Detach() })
	return x
}

func run(t testing.TB, x *XDP, frame []byte) uint32 {
	t.Helper()
	ret, err := x.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("prog run: %v", err)
	}
	return ret
}

func counters(t testing.TB, x *XDP) map[string]uint64 {
	t.Helper()
	c, err := x.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAdd(t testing.TB, x *XDP, bs ...bans.Ban) {
	t.Helper()
	if err := x.Add(context.Background(), bs...); err != nil {
		t.Fatalf("add %v: %v", bs, err)
	}
}

func pfx(s string) netip.Prefix {
	w := bans.Widen{}
	p, err := w.Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func ban(s, jail string, d time.Duration) bans.Ban {
	b := bans.Ban{Prefix: pfx(s), Jail: jail}
	if d != 0 {
		b.Expires = time.Now().Add(d)
	}
	return b
}

// findBan returns the listed entry for p.
func findBan(t testing.TB, x *XDP, p netip.Prefix) (bans.Ban, bool) {
	t.Helper()
	bs, err := x.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Prefix == p {
			return b, true
		}
	}
	return bans.Ban{}, false
}

func TestProbe(t *testing.T) {
	nspairtest.Require(t)
	if err := Probe(); err != nil {
		t.Fatalf("probe on a kernel that runs the program: %v", err)
	}
}
