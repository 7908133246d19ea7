package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/daemon/control"
)

// An unban --all naming a jail that neither runs nor holds bans is a
// typo, not "nothing to lift": it fails naming the jail and the known
// ones, and lifts nothing. (An address unban with a wrong jail fails
// naming the jail that holds the ban.)
func TestUnbanUnknownJail(t *testing.T) {
	d := runWith(t, newMem())
	ctx := context.Background()
	if _, err := d.Ban(ctx, []control.BanItem{{Addr: "198.51.100.9", Jail: "sshd"}, {Addr: "198.51.100.10", Jail: "custom"}}); err != nil {
		t.Fatal(err)
	}
	n, err := d.Unban(ctx, control.UnbanRequest{All: true, Jail: "nosuch"})
	if !errors.Is(err, control.ErrUnknownJail) || !strings.Contains(err.Error(), `"nosuch"`) ||
		!strings.Contains(err.Error(), "the jails are custom, manual, sshd, synflood") {
		t.Errorf("unban --all --jail nosuch = %d, %v; want ErrUnknownJail naming nosuch and the jails custom, manual, sshd, synflood", n, err)
	}
	if _, err := d.Unban(ctx, control.UnbanRequest{Addrs: []string{"198.51.100.9"}, Jail: "nosuch"}); !strings.Contains(err.Error(), "jail sshd") {
		t.Errorf("unban 198.51.100.9 --jail nosuch: %v, want it to name jail sshd", err)
	}
	if got := len(d.core.Active("")); got != 2 {
		t.Fatalf("%d bans left, want both", got)
	}
	// A known jail without bans lifts none, without error.
	if n, err := d.Unban(ctx, control.UnbanRequest{All: true, Jail: "synflood"}); err != nil || n != 0 {
		t.Errorf("unban --all --jail synflood = %d, %v; want 0, nil", n, err)
	}
	// A jail that only holds bans (a manual --jail name) is known.
	if n, err := d.Unban(ctx, control.UnbanRequest{All: true, Jail: "custom"}); err != nil || n != 1 {
		t.Errorf("unban --all --jail custom = %d, %v; want 1, nil", n, err)
	}
}
