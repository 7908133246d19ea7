package fleet

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// kvKey is the NATS KV key charset; '.' separates tokens, none empty.
var kvKey = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

func TestKeyRoundTrip(t *testing.T) {
	for _, c := range []struct{ prefix, key, canon string }{
		{"192.0.2.1/32", "v4.192-0-2-1.32", ""},
		{"198.51.100.0/24", "v4.198-51-100-0.24", ""},
		{"0.0.0.0/0", "v4.0-0-0-0.0", ""},
		{"2001:db8::/64", "v6.2001-db8--.64", ""},
		{"2001:db8::1/128", "v6.2001-db8--1.128", ""},
		{"::/0", "v6.--.0", ""},
		{"::1/128", "v6.--1.128", ""},
		// An IPv4-mapped prefix is its IPv4 one: dots would split the key.
		{"::ffff:192.0.2.1/128", "v4.192-0-2-1.32", "192.0.2.1/32"},
		// Not masked: the key is the canonical prefix's.
		{"203.0.113.77/24", "v4.203-0-113-0.24", "203.0.113.0/24"},
	} {
		p := netip.MustParsePrefix(c.prefix)
		k := Key(p)
		if k != c.key {
			t.Errorf("Key(%s) = %q, want %q", p, k, c.key)
		}
		if !kvKey.MatchString(k) {
			t.Errorf("Key(%s) = %q is not a valid KV key", p, k)
		}
		back, err := PrefixOfKey(k)
		if err != nil {
			t.Errorf("PrefixOfKey(%q): %v", k, err)
			continue
		}
		want := p
		if c.canon != "" {
			want = netip.MustParsePrefix(c.canon)
		}
		if back != want {
			t.Errorf("PrefixOfKey(%q) = %s, want %s", k, back, want)
		}
	}
	for _, bad := range []string{"", "v4", "v4.192-0-2-1", "v5.1-2-3-4.32", "v4.192-0-2-1.33", "v4.192-0-2-1.032",
		"v4.192-0-2-1.24", "v6.2001-db8-0-0-0-0-0-0.64", "v4.--1.128", "v6.192-0-2-1.32", "v6.fe80--1%eth0.128",
		"v4.192-0-2-1.-1", "v6.--ffff-c000-201.128", "v4.192-0-2-1.32.x"} {
		if p, err := PrefixOfKey(bad); err == nil {
			t.Errorf("PrefixOfKey(%q) = %s, want an error", bad, p)
		}
	}
}

// FuzzKey: every prefix has one valid key that reads back as it, and
// every key that reads is that prefix's key.
func FuzzKey(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, 32, "v4.192-0-2-1.32")
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 64, "v6.2001-db8--.64")
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}, 120, "v6.--ffff-c000-201.128")
	f.Fuzz(func(t *testing.T, addr []byte, bits int, key string) {
		if a, ok := netip.AddrFromSlice(addr); ok && bits >= 0 && bits <= a.BitLen() {
			p := netip.PrefixFrom(a, bits)
			k := Key(p)
			if !kvKey.MatchString(k) {
				t.Fatalf("Key(%s) = %q: not a KV key", p, k)
			}
			back, err := PrefixOfKey(k)
			if err != nil {
				t.Fatalf("PrefixOfKey(Key(%s) = %q): %v", p, k, err)
			}
			want := p.Masked()
			if a.Is4In6() && bits >= 96 {
				want = netip.PrefixFrom(a.Unmap(), bits-96).Masked()
			}
			if back != want {
				t.Fatalf("PrefixOfKey(Key(%s)) = %s, want %s", p, back, want)
			}
		}
		if p, err := PrefixOfKey(key); err == nil {
			if Key(p) != key || !kvKey.MatchString(key) {
				t.Fatalf("PrefixOfKey(%q) = %s, whose key is %q", key, p, Key(p))
			}
		}
	})
}

func TestRecordChecksItsKey(t *testing.T) {
	b := bans.Ban{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Jail: "sshd", Expires: time.Unix(2e9, 0).UTC()}
	v, err := RecordOf(b, "a", "test").encode()
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRecord(Key(b.Prefix), v)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Ban(); got.Prefix != b.Prefix || got.Jail != b.Jail || !got.Expires.Equal(b.Expires) || got.Origin != "a" {
		t.Fatalf("round trip: %+v, want %+v from a", got, b)
	}
	// A record filed under another prefix's key is refused: a receiver
	// would otherwise ban what the key does not say.
	if _, err := DecodeRecord(Key(netip.MustParsePrefix("192.0.2.2/32")), v); err == nil || !strings.Contains(err.Error(), "not its key's prefix") {
		t.Fatalf("record under another key: %v, want refused", err)
	}
	var m map[string]any
	json.Unmarshal(v, &m)
	delete(m, "origin")
	v2, _ := json.Marshal(m)
	if _, err := DecodeRecord(Key(b.Prefix), v2); err == nil {
		t.Fatal("a record without origin is accepted")
	}
}

func TestCovers(t *testing.T) {
	now := time.Now()
	perm := Record{}
	long := Record{Expires: now.Add(time.Hour)}
	short := Record{Expires: now.Add(time.Minute)}
	for _, c := range []struct {
		r, o Record
		want bool
	}{
		{perm, long, true}, {long, perm, false}, {long, short, true}, {short, long, false}, {long, long, true}, {perm, perm, true},
	} {
		if got := c.r.Covers(c.o); got != c.want {
			t.Errorf("%v covers %v = %v, want %v", c.r.Expires, c.o.Expires, got, c.want)
		}
	}
}

func TestTTLOf(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		exp  time.Time
		want time.Duration
	}{
		{time.Time{}, 0},
		{now.Add(-time.Second), -1},
		{now, -1},
		{now.Add(1500 * time.Millisecond), 2 * time.Second},
		{now.Add(time.Nanosecond), time.Second},
		{now.Add(time.Hour), time.Hour},
	} {
		if got := ttlOf(c.exp, now); got != c.want {
			t.Errorf("ttlOf(now%+v) = %v, want %v", c.exp.Sub(now), got, c.want)
		}
	}
}
