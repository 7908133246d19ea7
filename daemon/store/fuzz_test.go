package store

import (
	"bytes"
	"net/netip"
	"testing"
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
