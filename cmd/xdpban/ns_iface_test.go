package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// statusIfaces is `xdpban status --json`'s interfaces.
func statusIfaces(t *testing.T, w *world) []string {
	t.Helper()
	code, out, errs := w.cli(t, "status", "--json")
	if code != 0 {
		t.Fatalf("status: %d %s", code, errs)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range st.Interfaces {
		got = append(got, i.Name+" "+i.Mode)
	}
	return got
}

// TestInterfaceNamedTwice: a repeated --iface is one interface, not a
// failed second attach.
func TestInterfaceNamedTwice(t *testing.T) {
	w := newWorld(t)
	w.start(t, "--iface", w.p.HostIf+","+w.p.HostIf)
	if got := statusIfaces(t, w); len(got) != 1 || got[0] != w.p.HostIf+" native" {
		t.Fatalf("interfaces %v, want [%s native]", got, w.p.HostIf)
	}
}

// TestDaemonReattachesRecreatedInterface: the protected interface is
// deleted and made again under the running daemon; it says so, and the
// banned source is dropped again on the new interface without a restart.
func TestDaemonReattachesRecreatedInterface(t *testing.T) {
	w := newWorld(t)
	d := w.start(t)
	a := nspairtest.AttackerV4
	if code, _, errs := w.cli(t, "ban", a.String()); code != 0 {
		t.Fatalf("ban: %s", errs)
	}
	w.p.DeleteVeth(t)
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(d.out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("daemon never logged %q:\n%s", what, d.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("protected interface gone")
	if got := statusIfaces(t, w); len(got) != 1 || got[0] != w.p.HostIf+" gone" {
		t.Fatalf("interfaces while deleted: %v, want [%s gone]", got, w.p.HostIf)
	}
	w.p.AddVeth(t)
	waitFor("protected interface back")
	r := w.p.Listen(t, testPort+100)
	s := w.p.Sender(t, a, testPort+100)
	if got := nspairtest.Deliver(t, s, r, 20, 300*time.Millisecond); got != 0 {
		t.Fatalf("%d of 20 datagrams from the banned %s arrived on the re-created interface", got, a)
	}
	if got := statusIfaces(t, w); len(got) != 1 || got[0] != w.p.HostIf+" native" {
		t.Fatalf("interfaces after reattach: %v, want [%s native]", got, w.p.HostIf)
	}
	// The control: an unbanned source passes on the new interface.
	if code, _, errs := w.cli(t, "unban", a.String()); code != 0 {
		t.Fatalf("unban: %s", errs)
	}
	if got := nspairtest.Deliver(t, s, r, 20, 300*time.Millisecond); got != 20 {
		t.Fatalf("%d of 20 arrived after unban, want all", got)
	}
}

// TestRunPinPathNotOnBPFFS: a pin_path outside bpffs is a setting to fix
// (exit 2, one line), and nothing is attached.
func TestRunPinPathNotOnBPFFS(t *testing.T) {
	w := newWorld(t)
	bad := t.TempDir() + "/pins"
	code, out := w.cliIn(t, "run", "--iface", w.p.HostIf, "--backend", "xdp", "--banlog", "none", "--pin-path", bad)
	if code != exitUsage || !strings.Contains(out, "is not on a bpf filesystem") || strings.Count(out, "xdpban: ") != 1 {
		t.Fatalf("run --pin-path %s: exit %d:\n%s", bad, code, out)
	}
	if o, _ := w.p.Host.Output("ip", "-d", "link", "show", w.p.HostIf); strings.Contains(o, "prog/xdp") {
		t.Fatalf("an XDP program was attached despite the refusal:\n%s", o)
	}
}

// TestDirectDetachPrintsOneLine: without a daemon, detach says what it
// did in one line; the loader's own log line stays out of it.
func TestDirectDetachPrintsOneLine(t *testing.T) {
	w := newWorld(t)
	d := w.start(t)
	d.stop(t)
	code, out := w.cliIn(t, "detach")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "detached "+w.pin) {
		t.Fatalf("direct detach: exit %d, output %q, want one line", code, out)
	}
}
