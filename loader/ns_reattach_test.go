package loader

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// TestReattachRecreatedInterface: an interface deleted and made again
// under the daemon gets the program back, with the bans it had.
func TestReattachRecreatedInterface(t *testing.T) {
	p := nspairtest.New(t)
	pin := nspairtest.PinDir(t)
	x := openIn(t, p, pin)
	t.Cleanup(func() { _ = x.Detach() })
	a := nspairtest.AttackerV4
	mustAdd(t, x, bans.Ban{Prefix: netip.PrefixFrom(a, 32), Jail: "sshd"})

	reattach := func() (gone, back []string) {
		t.Helper()
		if err := p.Host.Do(func() error {
			var err error
			gone, back, err = x.Reattach()
			return err
		}); err != nil {
			t.Fatalf("reattach: %v", err)
		}
		return gone, back
	}
	status := func() bans.Status {
		t.Helper()
		var st bans.Status
		if err := p.Host.Do(func() error {
			var err error
			st, err = x.Status(context.Background())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return st
	}

	if gone, back := reattach(); len(gone)+len(back) != 0 {
		t.Fatalf("healthy interface: gone %v back %v", gone, back)
	}
	p.DeleteVeth(t)
	if gone, back := reattach(); !slices.Equal(gone, []string{p.HostIf}) || len(back) != 0 {
		t.Fatalf("deleted interface: gone %v back %v, want gone [%s]", gone, back, p.HostIf)
	}
	if st := status(); len(st.Interfaces) != 1 || st.Interfaces[0].Mode != "gone" {
		t.Fatalf("status of a deleted interface: %+v, want mode gone", st.Interfaces)
	}

	p.AddVeth(t)
	r := p.Listen(t, 7011)
	s := p.Sender(t, a, 7011)
	// The kernel does not put the program on the new interface by itself:
	// this is the gap Reattach closes.
	if got := nspairtest.Deliver(t, s, r, 10, 300*time.Millisecond); got != 10 {
		t.Fatalf("%d of 10 arrived on the re-created interface before reattach, want all (no program yet)", got)
	}
	if gone, back := reattach(); len(gone) != 0 || !slices.Equal(back, []string{p.HostIf}) {
		t.Fatalf("re-created interface: gone %v back %v, want back [%s]", gone, back, p.HostIf)
	}
	before, _ := findBan(t, x, netip.PrefixFrom(a, 32))
	if got := nspairtest.Deliver(t, s, r, 25, 300*time.Millisecond); got != 0 {
		t.Fatalf("%d of 25 datagrams from the banned source arrived after reattach", got)
	}
	after, ok := findBan(t, x, netip.PrefixFrom(a, 32))
	if !ok || after.Packets-before.Packets != 25 {
		t.Fatalf("ban entry counted %d packets after reattach, want 25", after.Packets-before.Packets)
	}
	if st := status(); len(st.Interfaces) != 1 || st.Interfaces[0].Mode != "native" {
		t.Fatalf("status after reattach: %+v, want native", st.Interfaces)
	}
	if gone, back := reattach(); len(gone)+len(back) != 0 {
		t.Fatalf("second reattach: gone %v back %v, want nothing to do", gone, back)
	}
}
