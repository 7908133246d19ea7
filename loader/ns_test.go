package loader

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/bans/bantest"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// openIn opens the backend inside the host namespace of p (interface
// lookups and the XDP attach happen there).
func openIn(t testing.TB, p *nspairtest.Pair, pin string) *XDP {
	t.Helper()
	var x *XDP
	err := p.Host.Do(func() error {
		var err error
		x, err = Open(context.Background(), Options{
			Interfaces: []string{p.HostIf}, PinPath: pin, MapSizes: smallSizes, Logger: testLogger(t),
		})
		return err
	})
	if err != nil {
		t.Fatalf("open on %s: %v", p.HostIf, err)
	}
	return x
}

func TestConformance(t *testing.T) {
	bantest.Run(t, func(t *testing.T, p *nspairtest.Pair) func() bans.Backend {
		pin := nspairtest.PinDir(t)
		return func() bans.Backend { return openIn(t, p, pin) }
	})
}

// TestRestartNoGap re-opens (a daemon restart: new program swapped into
// the pinned link) while a banned source keeps sending: not one datagram
// may get through, and the entry must count every one.
func TestRestartNoGap(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	r := p.Listen(t, 7008)
	x := openIn(t, p, pin)
	t.Cleanup(func() { _ = x.Detach() })

	a := nspairtest.AttackerV4
	mustAdd(t, x, bans.Ban{Prefix: netip.PrefixFrom(a, 32), Jail: "sshd"})
	oldProg := progID(t, x)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	s := p.Sender(t, a, 7008)
	done := make(chan *XDP)
	go func() { done <- openIn(t, p, pin) }()
	sent := 0
	var x2 *XDP
	for i := 0; x2 == nil && i < 200; i++ {
		s.Send(t, 200, 32)
		sent += 200
		select {
		case x2 = <-done:
		default:
		}
	}
	if x2 == nil {
		x2 = <-done
	}
	s.Send(t, 200, 32)
	sent += 200
	t.Cleanup(func() { _ = x2.Detach() })

	if newProg := progID(t, x2); newProg == oldProg {
		t.Errorf("program id %d unchanged: the pinned link was not updated", newProg)
	}
	if got := r.WaitFor(a, 1, 300*time.Millisecond); got != 0 {
		t.Fatalf("%d of %d datagrams from the banned source arrived across the restart", got, sent)
	}
	b, ok := findBan(t, x2, netip.PrefixFrom(a, 32))
	if !ok || int(b.Packets) != sent {
		t.Fatalf("entry after restart = %+v (listed %v), want %d packets", b, ok, sent)
	}
	var st bans.Status
	if err := p.Host.Do(func() error {
		var err error
		st, err = x2.Status(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(st.Interfaces) != 1 || st.Interfaces[0].Name != p.HostIf || st.Interfaces[0].Mode != "native" {
		t.Errorf("status interfaces = %+v, want [%s native]", st.Interfaces, p.HostIf)
	}
	if st.Counters["dropped"] != uint64(sent) {
		t.Errorf("dropped counter = %d, want %d", st.Counters["dropped"], sent)
	}
	for _, tb := range st.Tables {
		want := 0
		if tb.Name == "rl_buckets" {
			continue
		}
		if tb.Name == "ban_v4" {
			want = 1
		}
		if tb.Entries != want || tb.Capacity == 0 {
			t.Errorf("table %s: %d/%d entries, want %d", tb.Name, tb.Entries, tb.Capacity, want)
		}
	}
	t.Logf("%d datagrams dropped across the restart, program %d → %d", sent, oldProg, progID(t, x2))
}

func progID(t testing.TB, x *XDP) uint32 {
	t.Helper()
	for _, l := range x.links {
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		return uint32(info.Program)
	}
	t.Fatal("no link")
	return 0
}

// TestOpenPinnedCLI is the CLI without a daemon: it bans through the pins
// while the daemon's handle is closed, and the kernel enforces it.
func TestOpenPinnedCLI(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	r := p.Listen(t, 7009)
	x := openIn(t, p, pin)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	cli, err := OpenPinned(pin)
	if err != nil {
		t.Fatalf("open pinned: %v", err)
	}
	t.Cleanup(func() { _ = cli.Detach() })
	a := nspairtest.AttackerV6
	mustAdd(t, cli, bans.Ban{Prefix: bans.Widen{}.Addr(a), Jail: "nginx-http-auth", Expires: time.Now().Add(time.Hour)})
	s := p.Sender(t, a, 7009)
	if got := nspairtest.Deliver(t, s, r, 25, 300*time.Millisecond); got != 0 {
		t.Fatalf("%d of 25 arrived after a CLI ban, want 0", got)
	}
	b, ok := findBan(t, cli, netip.MustParsePrefix("2001:db8::/64"))
	if !ok || b.Jail != "nginx-http-auth" || b.Packets != 25 {
		t.Fatalf("CLI list = %+v %v, want jail nginx-http-auth with 25 packets", b, ok)
	}
	st, err := cli.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Interfaces) != 1 || st.Interfaces[0].Name != p.HostIf {
		t.Errorf("status interfaces %+v, want %s", st.Interfaces, p.HostIf)
	}
	// Detach through the CLI handle removes enforcement.
	if err := cli.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := nspairtest.Deliver(t, s, r, 20, 300*time.Millisecond); got != 20 {
		t.Fatalf("%d of 20 arrived after detach, want 20", got)
	}
	if _, err := OpenPinned(pin); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("open pinned after detach: %v, want ErrNotLoaded", err)
	}
}

func TestPinErrors(t *testing.T) {
	nspairtest.Require(t)
	if _, err := OpenPinned(nspairtest.PinDir(t)); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("open pinned on nothing: %v, want ErrNotLoaded", err)
	}

	pin := nspairtest.PinDir(t)
	x := loadDetached(t, Options{PinPath: pin})
	mustAdd(t, x, ban("192.0.2.50", "sshd", time.Hour))

	same := Options{PinPath: pin, MapSizes: smallSizes, IPv6Prefix: 64, Logger: testLogger(t)}.mustDefaults(t)
	// x holds the pins as a running daemon does: a second load is refused.
	if _, err := load(same); !errors.Is(err, ErrPinInUse) || !strings.Contains(err.Error(), pin) {
		t.Fatalf("load while pins are held: %v, want ErrPinInUse naming %s", err, pin)
	}
	// Released as the daemon stopping would; x's maps stay usable below.
	x.lock.Close()
	x.lock = nil
	st, err := load(same)
	if err != nil {
		t.Fatalf("reload with same options: %v", err)
	}
	st.x.closeFDs()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"map size changed", Options{MapSizes: smallSizes, IPv6Prefix: 64}, "xdpban detach"},
		{"ipv6 prefix changed", Options{MapSizes: smallSizes, IPv6Prefix: 56}, "ipv6_prefix = 56"},
	} {
		o := tc.o
		o.PinPath = pin
		if tc.name == "map size changed" {
			o.MapSizes.V4 = 2048
		}
		_, err := load(o.mustDefaults(t))
		if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrIncompatible mentioning %q", tc.name, err, tc.want)
		}
	}
	// The failed loads left the pins and the ban alone.
	if b, ok := findBan(t, x, pfx("192.0.2.50")); !ok || b.Jail != "sshd" {
		t.Errorf("ban lost after refused loads: %+v %v", b, ok)
	}

	if _, err := load(Options{PinPath: t.TempDir() + "/xdpban"}.mustDefaults(t)); err == nil || !strings.Contains(err.Error(), "bpf filesystem") {
		t.Errorf("pin path off bpffs: %v, want an error naming the bpf filesystem", err)
	}
	if err := x.Add(context.Background(), ban("192.0.2.51", strings.Repeat("j", 32), time.Hour)); err == nil || !strings.Contains(err.Error(), "at most 31 bytes") {
		t.Errorf("long jail name: %v, want a length error", err)
	}
	// Inside a test namespace, so no real interface can ever be touched.
	p := nspairtest.New(t)
	_ = p.Host.Do(func() error {
		if _, err := Open(context.Background(), Options{PinPath: pin, Interfaces: []string{"xb-nonexistent0"}}); err == nil || !strings.Contains(err.Error(), `"xb-nonexistent0"`) {
			t.Errorf("unknown interface: %v, want an error naming it", err)
		}
		return nil
	})
	if _, err := Open(context.Background(), Options{PinPath: pin}); err == nil || !strings.Contains(err.Error(), "interfaces") {
		t.Errorf("no interfaces: %v", err)
	}
}

func (o Options) mustDefaults(t testing.TB) Options {
	t.Helper()
	o.Logger = testLogger(t)
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestBpftoolNames: operators inspect bans with bpftool; the maps must
// carry BTF so fields print by name.
func TestBpftoolNames(t *testing.T) {
	if _, err := exec.LookPath("bpftool"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("bpftool not installed: `make deps` installs it")
		}
		t.Skip("bpftool not installed (apt-get install bpftool)")
	}
	pin := nspairtest.PinDir(t)
	x := loadDetached(t, Options{PinPath: pin})
	scoped := ban("192.0.2.51", "sshd", time.Hour)
	scoped.Scope = bans.Scope{Proto: "tcp", Ports: []bans.PortRange{{From: 22, To: 22}}}
	mustAdd(t, x, ban("192.0.2.50", "sshd", time.Hour), ban("198.51.100.0/24", "sshd", time.Hour), scoped)
	for _, tc := range []struct {
		m      string
		fields []string
	}{
		{"ban_v4", []string{"expires_ns", "packets", "bytes", "jail_id", "scope_id", "last_event_ns", "events_suppressed"}},
		{"ban_v4_net", []string{"prefixlen", "addr", "expires_ns"}},
		{"jail_names", []string{"name", "sshd"}},
		{"xdpban_meta", []string{"v4_net_entries", "ipv6_prefix"}},
		{"xdpban_stats", []string{"passed", "dropped", "dropped_bytes", "expired_pass", "not_ip", "malformed", "rate_limited"}},
		{"xdpban_scopes", []string{"tcp", "udp"}},
		{"jail_drops", []string{"packets", "bytes"}},
	} {
		out, err := exec.Command("bpftool", "map", "dump", "pinned", pin+"/"+tc.m).CombinedOutput()
		if err != nil {
			t.Fatalf("bpftool map dump %s: %v\n%s", tc.m, err, out)
		}
		for _, f := range tc.fields {
			if !strings.Contains(string(out), `"`+f+`"`) {
				t.Errorf("bpftool dump of %s lacks %q:\n%s", tc.m, f, out)
			}
		}
	}
}

// TestLegacyPinNames: pins of an xdpban from before the xdpban_ map
// names (meta, numbered stats) are taken over: bans and meta kept under
// the new name, the old counters pin removed.
func TestLegacyPinNames(t *testing.T) {
	pin := nspairtest.PinDir(t)
	x := loadDetached(t, Options{PinPath: pin})
	mustAdd(t, x, ban("192.0.2.61", "sshd", time.Hour), ban("198.51.100.0/24", "sshd", time.Hour))
	x.Close()
	if err := os.Rename(pin+"/"+xdpbanMapXdpbanMeta, pin+"/"+legacyMeta); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Pin(pin + "/" + legacyStats); err != nil {
		t.Fatal(err)
	}
	st, err := load(Options{PinPath: pin, MapSizes: smallSizes}.mustDefaults(t))
	if err != nil {
		t.Fatalf("reuse of legacy pins: %v", err)
	}
	y := st.x
	defer y.Close()
	if st.fresh {
		t.Fatal("legacy pins were not reused")
	}
	for name, want := range map[string]bool{legacyMeta: false, legacyStats: false, xdpbanMapXdpbanMeta: true, xdpbanMapXdpbanStats: true} {
		if _, err := os.Stat(pin + "/" + name); (err == nil) != want {
			t.Errorf("pin %s present = %v, want %v", name, err == nil, want)
		}
	}
	if got := run(t, y, udp4(addr("198.51.100.9"))); got != xdpDrop {
		t.Errorf("prefix ban after the rename: verdict %d, want drop (the trie count lives in meta)", got)
	}
	if got := run(t, y, udp4(addr("192.0.2.61"))); got != xdpDrop {
		t.Errorf("address ban after the rename: verdict %d, want drop", got)
	}
}

// TestReuseAddsMissingMaps: pins from an older xdpban lack maps a newer
// one adds; reusing them keeps the bans and creates and pins the rest.
func TestReuseAddsMissingMaps(t *testing.T) {
	pin := nspairtest.PinDir(t)
	x := loadDetached(t, Options{PinPath: pin})
	mustAdd(t, x, ban("192.0.2.60", "sshd", time.Hour))
	x.Close()
	for _, m := range []string{xdpbanMapRlBuckets, xdpbanMapDropEvents} {
		if err := os.Remove(pin + "/" + m); err != nil {
			t.Fatal(err)
		}
	}
	st, err := load(Options{PinPath: pin, MapSizes: smallSizes}.mustDefaults(t))
	if err != nil {
		t.Fatalf("reuse with missing maps: %v", err)
	}
	y := st.x
	defer y.Close()
	if st.fresh {
		t.Fatal("pins with bans were not reused")
	}
	for _, m := range []string{xdpbanMapRlBuckets, xdpbanMapDropEvents} {
		if _, err := os.Stat(pin + "/" + m); err != nil {
			t.Errorf("%s not pinned again: %v", m, err)
		}
	}
	if b, ok := findBan(t, y, pfx("192.0.2.60")); !ok || b.Jail != "sshd" {
		t.Fatalf("ban lost: %+v %v", b, ok)
	}
	if got := run(t, y, udp4(addr("192.0.2.60"))); got != xdpDrop {
		t.Fatalf("reused ban not enforced by the new program")
	}
}
