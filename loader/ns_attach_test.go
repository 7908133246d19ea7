package loader

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

func statusIn(t *testing.T, p *nspairtest.Pair, x *XDP) map[string]string {
	t.Helper()
	modes := map[string]string{}
	if err := p.Host.Do(func() error {
		st, err := x.Status(context.Background())
		for _, i := range st.Interfaces {
			modes[i.Name] = i.Mode
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return modes
}

// TestAttachModesAndReconcile: a device without native XDP (loopback) gets
// generic mode, veth native; an interface dropped from the
// configuration is detached on the next Open; a link pin left by a
// crashed start is cleaned up instead of blocking the interface.
func TestAttachModesAndReconcile(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	// The namespace's own loopback has no native XDP (no dummy module on
	// every kernel; lo always exists).
	const generic = "lo"

	open := func(ifs ...string) *XDP {
		var x *XDP
		if err := p.Host.Do(func() error {
			var err error
			x, err = Open(context.Background(), Options{Interfaces: ifs, PinPath: pin, MapSizes: smallSizes, Logger: testLogger(t)})
			return err
		}); err != nil {
			t.Fatalf("open %v: %v", ifs, err)
		}
		return x
	}
	x := open(p.HostIf, generic)
	modes := statusIn(t, p, x)
	if modes[p.HostIf] != "native" || modes[generic] != "generic" || len(modes) != 2 {
		t.Fatalf("modes %v, want %s native and lo generic", modes, p.HostIf)
	}
	if out := p.Host.Run(t, "ip", "link", "show", generic); !strings.Contains(out, "xdpgeneric") {
		t.Fatalf("ip link shows no generic XDP on lo:\n%s", out)
	}
	x.Close()

	// Simulate a crash between attaching and publishing on the dummy:
	// move its link pin to the temporary name attach uses.
	if err := os.Rename(filepath.Join(pin, linkPin(generic)), filepath.Join(pin, "tmp-"+linkPin(generic)+"-deadbeef")); err != nil {
		t.Fatal(err)
	}
	x = open(p.HostIf, generic) // must not fail with EBUSY
	if m := statusIn(t, p, x); m[generic] != "generic" {
		t.Fatalf("after crash recovery modes %v", m)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(pin, "tmp-*")); len(leftovers) != 0 {
		t.Fatalf("stale pins left: %v", leftovers)
	}
	x.Close()

	x = open(p.HostIf)
	t.Cleanup(func() { _ = x.Detach() })
	if m := statusIn(t, p, x); len(m) != 1 || m[p.HostIf] != "native" {
		t.Fatalf("after dropping lo modes %v", m)
	}
	if out := p.Host.Run(t, "ip", "link", "show", generic); strings.Contains(out, "xdp") {
		t.Fatalf("lo still has XDP after it left the configuration:\n%s", out)
	}
	if _, err := link.LoadPinnedLink(filepath.Join(pin, linkPin(generic)), nil); err == nil {
		t.Fatal("lo link still pinned")
	}
}

// TestCrashedFirstStart: a first start that attached but died before
// publishing leaves a staging dir holding an attached link; the next
// start removes it instead of failing with EBUSY.
func TestCrashedFirstStart(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	if err := p.Host.Do(func() error {
		st, err := load(Options{PinPath: pin, MapSizes: smallSizes, IPv6Prefix: 64, Logger: testLogger(t)})
		if err != nil {
			return err
		}
		ifi, err := netInterface(p.HostIf)
		if err != nil {
			return err
		}
		if _, err := st.x.attach(st.dir, false, p.HostIf, ifi); err != nil {
			return err
		}
		st.x.closeFDs() // the process dies: only the pins remain
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeStaleStaging(pin, testLogger(t)) })
	if out := p.Host.Run(t, "ip", "link", "show", p.HostIf); !strings.Contains(out, "xdp") {
		t.Fatalf("crash simulation left no XDP attached:\n%s", out)
	}
	x := openIn(t, p, pin)
	t.Cleanup(func() { _ = x.Detach() })
	if left, _ := filepath.Glob(pin + stagingSuffix + "*"); len(left) != 0 {
		t.Fatalf("staging dirs left: %v", left)
	}
	if m := statusIn(t, p, x); m[p.HostIf] != "native" {
		t.Fatalf("modes after recovery %v", m)
	}
}

func netInterface(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
