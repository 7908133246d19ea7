package store

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// FuzzBanKey: any key read back from a (possibly damaged) database either
// is refused or names a valid prefix that encodes to the same bytes.
func FuzzBanKey(f *testing.F) {
	f.Add(banKey(netip.MustParsePrefix("192.0.2.7/32")))
	f.Add(banKey(netip.MustParsePrefix("2001:db8::/64")))
	f.Add([]byte{4, 1, 2, 3})
	f.Fuzz(func(t *testing.T, k []byte) {
		p, err := parseBanKey(k)
		if err != nil {
			return
		}
		if !p.IsValid() {
			t.Fatalf("parseBanKey(%x) = invalid prefix without error", k)
		}
		if len(k) == 18 && (k[0] == 6 || bytes.Equal(k[5:17], make([]byte, 12))) {
			if got := banKey(p); !bytes.Equal(got, k) {
				t.Fatalf("round trip %x -> %s -> %x", k, p, got)
			}
		}
	})
}

// FuzzDecodeBan: a damaged record is refused or decodes to a ban that
// encodes back to the same bytes; it never panics.
func FuzzDecodeBan(f *testing.F) {
	sc, _ := bans.ParseScope("tcp", "22,80:90")
	f.Add(encodeBan(nil, bans.Ban{Jail: "sshd", Expires: time.Unix(1700000000, 5), Scope: sc, Origin: "bastion-b"}))
	f.Add(encodeBan(nil, bans.Ban{Jail: "manual"}))
	f.Add([]byte(`{"jail":"sshd","expires":1700000000000000000}`))
	f.Add([]byte{banFormat1, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		bv, err := decodeBan(v)
		if err != nil || len(v) == 0 || v[0] != banFormat1 {
			return
		}
		b := bv.ban(netip.MustParsePrefix("192.0.2.1/32"))
		again, err := decodeBan(encodeBan(nil, b))
		if err != nil || again.Jail != bv.Jail || again.Expires != bv.Expires || again.Origin != bv.Origin || again.Scope.String() != bv.Scope.String() {
			t.Fatalf("%x: %+v re-encoded to %+v, %v", v, bv, again, err)
		}
	})
}
