package enforce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

var ctx = context.Background()

func rootClean(t *testing.T) {
	t.Helper()
	for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list", "-n"}, {"nft", "list", "tables"}} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "xdpban") {
			t.Errorf("root namespace %s: %v\n%s", c[0], err, out)
		}
	}
}

// noNFT rules nftables out for tests in the root namespace, where the
// real probe would make (and delete) a scratch table.
func noNFT(context.Context, config.Daemon) error {
	return fmt.Errorf("nftables stubbed out: %w", bans.ErrUnsupported)
}

func noXDP(t *testing.T) func(context.Context, config.Daemon) (bans.Backend, error) {
	return func(context.Context, config.Daemon) (bans.Backend, error) {
		t.Error("OpenXDP called although XDP was ruled out")
		return nil, errors.New("unreachable")
	}
}

// drops checks with real datagrams that the backend b enforces a ban on
// the attacker.
func drops(t *testing.T, p *nspairtest.Pair, b bans.Backend, port uint16) {
	t.Helper()
	r := p.Listen(t, port)
	a := nspairtest.AttackerV4
	if got := nspairtest.Deliver(t, p.Sender(t, a, port), r, 10, time.Second); got != 10 {
		t.Fatalf("before the ban %d of 10 arrived", got)
	}
	if err := b.Add(ctx, bans.Ban{Prefix: netip.PrefixFrom(a, 32), Jail: "enforce"}); err != nil {
		t.Fatal(err)
	}
	if got := nspairtest.Deliver(t, p.Sender(t, a, port), r, 10, 300*time.Millisecond); got != 0 {
		t.Fatalf("banned: %d of 10 arrived", got)
	}
}

func TestAutoFallsBackWhenProbeFails(t *testing.T) {
	p := nspairtest.New(t)
	t.Cleanup(func() { rootClean(t) })
	probeErr := fmt.Errorf("xdp programs: %w: operation not permitted", bans.ErrUnsupported)
	b, reason, err := Open(ctx, config.Daemon{Backend: "auto", Interfaces: []string{p.HostIf}}, Options{
		ProbeXDP: func(context.Context, config.Daemon) error { return probeErr },
		OpenXDP:  noXDP(t),
		OpenIPTables: func(context.Context, config.Daemon, string) (bans.Backend, error) {
			return nil, errors.New("iptables must not be chosen where nftables works")
		},
		Netns: p.Host.Path(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Detach() })
	// The real probe ran in the pair's namespace: a kernel with nf_tables
	// gets nftables, next in the order.
	if b.Kind() != "nftables" {
		t.Fatalf("kind = %s, want nftables", b.Kind())
	}
	if !strings.Contains(reason, "xdp unavailable") || !strings.Contains(reason, "operation not permitted") || !strings.Contains(reason, "using nftables") {
		t.Errorf("reason %q does not say why", reason)
	}
	st, err := b.Status(ctx)
	if err != nil || st.Reason != reason || st.Backend != "nftables" {
		t.Errorf("status = %+v, %v; want backend nftables, reason %q", st, err, reason)
	}
	drops(t, p, b, 7040)
	// The probe's scratch table is gone: only xdpban's own is there.
	if out := p.Host.Run(t, "nft", "list", "tables"); strings.TrimSpace(out) != "table inet xdpban" {
		t.Errorf("tables in %s after the probe and open:\n%s", p.Host.Name, out)
	}
}

// TestAutoFallsBackToIPTables: without nf_tables (an iptables-legacy
// kernel) auto takes iptables, and the reason names both refusals.
func TestAutoFallsBackToIPTables(t *testing.T) {
	p := nspairtest.New(t)
	t.Cleanup(func() { rootClean(t) })
	b, reason, err := Open(ctx, config.Daemon{Interfaces: []string{p.HostIf}}, Options{
		ProbeXDP: func(context.Context, config.Daemon) error { return fmt.Errorf("no xdp: %w", bans.ErrUnsupported) },
		OpenXDP:  noXDP(t),
		ProbeNFT: func(context.Context, config.Daemon) error {
			return fmt.Errorf("nftables probe: %w: protocol not supported", bans.ErrUnsupported)
		},
		OpenNFTables: func(context.Context, config.Daemon, string) (bans.Backend, error) {
			t.Error("OpenNFTables called although its probe failed")
			return nil, errors.New("unreachable")
		},
		Netns: p.Host.Path(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Detach() })
	if b.Kind() != "iptables" {
		t.Fatalf("kind = %s, want iptables", b.Kind())
	}
	if !strings.Contains(reason, "no xdp") || !strings.Contains(reason, "nftables unavailable (nftables probe") || !strings.Contains(reason, "using iptables") {
		t.Errorf("reason %q does not say why", reason)
	}
	drops(t, p, b, 7042)
}

func TestAutoPicksXDP(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	t.Cleanup(func() { rootClean(t) })
	var b bans.Backend
	var reason string
	err := p.Host.Do(func() error {
		var err error
		b, reason, err = Open(ctx, config.Daemon{Interfaces: []string{p.HostIf}, PinPath: pin}, Options{
			OpenIPTables: func(context.Context, config.Daemon, string) (bans.Backend, error) {
				return nil, errors.New("iptables must not be chosen when xdp works")
			},
		})
		return err
	})
	if err != nil {
		t.Fatalf("auto in a namespace with a veth: %v", err)
	}
	t.Cleanup(func() { b.Detach() })
	st, err := b.Status(ctx)
	if b.Kind() != "xdp" || reason != "auto: xdp supported" || err != nil || st.Reason != reason || st.Backend != "xdp" {
		t.Fatalf("kind %s, reason %q, status %+v, %v", b.Kind(), reason, st, err)
	}
	if _, ok := Unwrap(b).(interface{ PinPath() string }); !ok {
		t.Errorf("Unwrap did not give the loader backend: %T", Unwrap(b))
	}
	drops(t, p, b, 7041)
}

func TestExplicitAndBadBackends(t *testing.T) {
	calledProbe := false
	probe := func(context.Context, config.Daemon) error { calledProbe = true; return nil }
	var gotReason string
	ipt := func(_ context.Context, _ config.Daemon, reason string) (bans.Backend, error) {
		gotReason = reason
		return nil, errors.New("stub iptables")
	}
	if _, _, err := Open(ctx, config.Daemon{Backend: "iptables"}, Options{ProbeXDP: probe, OpenXDP: noXDP(t), OpenIPTables: ipt}); err == nil || gotReason != "backend = iptables" {
		t.Errorf("backend = iptables: err %v, reason %q", err, gotReason)
	}
	if calledProbe {
		t.Error("explicit iptables probed xdp")
	}

	// backend = xdp never falls back, whatever the failure.
	gotReason = ""
	_, _, err := Open(ctx, config.Daemon{Backend: "xdp"}, Options{
		OpenXDP: func(context.Context, config.Daemon) (bans.Backend, error) {
			return nil, fmt.Errorf("load: %w", bans.ErrUnsupported)
		},
		OpenIPTables: ipt,
	})
	if !errors.Is(err, bans.ErrUnsupported) || gotReason != "" {
		t.Errorf("backend = xdp failing: err %v, iptables reason %q; want the xdp error, no fallback", err, gotReason)
	}

	// A configuration mistake under auto is reported, not papered over.
	_, _, err = Open(ctx, config.Daemon{}, Options{
		ProbeXDP: func(context.Context, config.Daemon) error { return nil },
		ProbeNFT: noNFT,
		OpenXDP: func(context.Context, config.Daemon) (bans.Backend, error) {
			return nil, errors.New("pin path /tmp/x is not on a bpf filesystem")
		},
		OpenIPTables: ipt,
	})
	if err == nil || !strings.Contains(err.Error(), "bpf filesystem") || gotReason != "" {
		t.Errorf("auto with a bad pin path: err %v, fell back with %q", err, gotReason)
	}

	// A host limit found only at attach time falls back (past nftables,
	// stubbed out: this test runs in the root namespace).
	_, _, err = Open(ctx, config.Daemon{}, Options{
		ProbeXDP: func(context.Context, config.Daemon) error { return nil },
		ProbeNFT: noNFT,
		OpenXDP: func(context.Context, config.Daemon) (bans.Backend, error) {
			return nil, fmt.Errorf("attach to eth0: %w", os.ErrPermission)
		},
		OpenIPTables: ipt,
	})
	if err == nil || !strings.Contains(gotReason, "attach to eth0") {
		t.Errorf("auto with attach refused: reason %q, want a fallback naming the attach", gotReason)
	}

	gotReason = ""
	nft := func(_ context.Context, _ config.Daemon, reason string) (bans.Backend, error) {
		gotReason = reason
		return nil, fmt.Errorf("stub nftables: %w", bans.ErrUnsupported)
	}
	_, _, err = Open(ctx, config.Daemon{Backend: "nftables"}, Options{ProbeXDP: probe, OpenXDP: noXDP(t), OpenNFTables: nft, OpenIPTables: ipt})
	if err == nil || !strings.Contains(err.Error(), "stub nftables") || gotReason != "backend = nftables" {
		t.Errorf("backend = nftables: err %v, reason %q; want its error, no fallback", err, gotReason)
	}

	// A configuration mistake of nftables under auto is reported too.
	_, _, err = Open(ctx, config.Daemon{}, Options{
		ProbeXDP: func(context.Context, config.Daemon) error { return bans.ErrUnsupported },
		ProbeNFT: func(context.Context, config.Daemon) error { return nil },
		OpenNFTables: func(context.Context, config.Daemon, string) (bans.Backend, error) {
			return nil, errors.New(`bad nftables option: blocktype "x"`)
		},
		OpenIPTables: ipt,
	})
	if err == nil || !strings.Contains(err.Error(), "blocktype") || strings.Contains(gotReason, "using iptables") {
		t.Errorf("auto with a bad nftables option: err %v, reason %q", err, gotReason)
	}

	_, _, err = Open(ctx, config.Daemon{Backend: "pf"}, Options{})
	if !errors.Is(err, ErrBadBackend) || !strings.Contains(err.Error(), `"pf"`) || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad backend: %v", err)
	}
}

// TestProbeWithoutCapBPF runs the default probe in a child process whose
// probing thread has CAP_BPF, CAP_SYS_ADMIN and CAP_PERFMON removed (a
// container without BPF rights): auto must choose iptables and say so.
// A child, because the probe results of a capable process are cached.
func TestProbeWithoutCapBPF(t *testing.T) {
	if os.Getenv("XDPBAN_ENFORCE_CHILD") == "1" {
		childNoCaps(t)
		return
	}
	nspairtest.Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeWithoutCapBPF$", "-test.v")
	cmd.Env = append(os.Environ(), "XDPBAN_ENFORCE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "REASON: auto: xdp unavailable") {
		t.Fatalf("child did not fall back:\n%s", out)
	}
	t.Logf("child: %s", grepLine(string(out), "REASON:"))
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func childNoCaps(t *testing.T) {
	// Capabilities are per thread: the probe's bpf() calls run on this
	// locked one. The thread is never unlocked, so it dies with the test.
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []uint{unix.CAP_BPF, unix.CAP_SYS_ADMIN, unix.CAP_PERFMON} {
		data[c/32].Effective &^= 1 << (c % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	var reason string
	_, _, err := Open(ctx, config.Daemon{Interfaces: []string{"lo"}}, Options{
		OpenXDP: noXDP(t),
		// The child runs in the root namespace: no netfilter probe here.
		ProbeNFT: noNFT,
		OpenIPTables: func(_ context.Context, _ config.Daemon, r string) (bans.Backend, error) {
			reason = r
			return nil, errors.New("child stops before touching netfilter")
		},
	})
	if err == nil {
		t.Fatal("open succeeded in the child")
	}
	fmt.Printf("REASON: %s\n", reason)
}
