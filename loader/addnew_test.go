package loader

import (
	"context"
	"testing"
	"time"
)

// AddNew writes entries the packet path drops on, with the jail and
// expiry given, in both exact tables and (through the per-entry path)
// in the prefix tables.
func TestAddNew(t *testing.T) {
	x := loadDetached(t, Options{})
	bs := []struct {
		in, want string
	}{{"192.0.2.66", "192.0.2.66/32"}, {"2001:db8:0:1::5", "2001:db8:0:1::/64"}, {"198.51.100.0/24", "198.51.100.0/24"}}
	for _, b := range bs {
		if err := x.AddNew(context.Background(), ban(b.in, "import", time.Hour)); err != nil {
			t.Fatalf("AddNew %s: %v", b.in, err)
		}
	}
	for _, b := range bs {
		got, ok := findBan(t, x, pfx(b.want))
		if !ok || got.Jail != "import" || time.Until(got.Expires) < 59*time.Minute || time.Until(got.Expires) > time.Hour+time.Second {
			t.Fatalf("%s after AddNew: %+v, %v", b.want, got, ok)
		}
	}
	if v := run(t, x, udp4(addr("192.0.2.66"))); v != xdpDrop {
		t.Fatalf("v4 verdict %d, want drop", v)
	}
	if v := run(t, x, udp6(addr("2001:db8:0:1::77"))); v != xdpDrop {
		t.Fatalf("v6 verdict %d, want drop", v)
	}
	if v := run(t, x, udp4(addr("198.51.100.9"))); v != xdpDrop {
		t.Fatalf("prefix verdict %d, want drop", v)
	}
}
