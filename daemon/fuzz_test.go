package daemon

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
)

// FuzzParseBanTime: --for never panics, never yields a negative or
// sub-second ban, and every refusal names the input.
func FuzzParseBanTime(f *testing.F) {
	for _, s := range []string{"", "0", "-1", "90s", "1h30m", "1d", "600", "banana", "1e9", "9999999999999y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseBanTime(s)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid ban duration") {
				t.Fatalf("ParseBanTime(%q): error %q does not say what is wrong", s, err)
			}
			return
		}
		if d < 0 || (d > 0 && d < time.Second) {
			t.Fatalf("ParseBanTime(%q) = %v", s, d)
		}
	})
}

// FuzzParseItems: what the control socket receives becomes canonical bans
// or an error, never a panic or an invalid prefix.
func FuzzParseItems(f *testing.F) {
	f.Add("192.0.2.7", "sshd", "1h")
	f.Add("2001:db8::1/128", "", "0")
	f.Add("::ffff:192.0.2.1", "a b", "x")
	f.Add("10.0.0.0/33", "manual", "")
	f.Add("2001:db8::2", "", "1h")
	f.Add("198.51.0.0/16", "", "1h")
	protected, err := bans.NewIgnoreList([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::3/128")}, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, addr, jail, forS string) {
		bs, err := ParseItems([]control.BanItem{{Addr: addr, Jail: jail, For: forS}}, bans.Widen{}, time.Unix(1_800_000_000, 0), ItemRules{Protected: protected})
		if err != nil {
			return
		}
		b := bs[0]
		if q, why, hit := protected.Overlap(b.Prefix); hit {
			t.Fatalf("ParseItems(%q) banned %s, covering %s (%s)", addr, b.Prefix, q, why)
		}
		if !b.Prefix.IsValid() || b.Prefix != b.Prefix.Masked() || b.Prefix.Addr().Is4In6() {
			t.Fatalf("ParseItems(%q) gave non-canonical %s", addr, b.Prefix)
		}
		if b.Jail == "" || strings.ContainsAny(b.Jail, "[] \n") {
			t.Fatalf("ParseItems jail %q accepted", b.Jail)
		}
	})
}

// FuzzParseBanFile: an import never panics; it yields canonical prefixes
// in strictly ascending key order, none covering a protected address, or
// refuses the file naming between 1 and MaxBadLines of its bad lines.
func FuzzParseBanFile(f *testing.F) {
	f.Add("192.0.2.7\n198.51.100.0/24 # x\n")
	f.Add("\ufeff2001:db8::1\r\n2001:db8::1/128\n2001:db8::/64\n")
	f.Add("300.1.2.3\n10.0.0.0/33\n\n#\n")
	f.Add("198.51.100.4\n198.51.0.0/16\n2001:db8::2\n")
	f.Add(strings.Repeat("x\n", 30))
	protected, err := bans.NewIgnoreList([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::3/128")}, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tmpl, ps, _, err := ParseBanFile(text, control.ImportRequest{Jail: "import", For: "1h"}, bans.Widen{}, time.Unix(1_800_000_000, 0), ItemRules{Protected: protected})
		var bad *control.BadLinesError
		if errors.As(err, &bad) {
			if len(bad.Lines) == 0 || len(bad.Lines) > control.MaxBadLines || bad.Total < len(bad.Lines) {
				t.Fatalf("bad lines %d of %d named", len(bad.Lines), bad.Total)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, control.ErrBadRequest) || ps != nil {
				t.Fatalf("refusal %v with %d prefixes", err, len(ps))
			}
			return
		}
		if tmpl.Jail != "import" || tmpl.Expires.IsZero() {
			t.Fatalf("template %+v", tmpl)
		}
		for i, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
				t.Fatalf("non-canonical %s", p)
			}
			if q, why, hit := protected.Overlap(p); hit {
				t.Fatalf("banned %s, covering %s (%s)", p, q, why)
			}
			if i > 0 && comparePrefix(ps[i-1], p) >= 0 {
				t.Fatalf("%s then %s: not in ascending key order", ps[i-1], p)
			}
			if i > 0 && bytes.Compare(keyOf(ps[i-1]), keyOf(p)) >= 0 {
				t.Fatalf("%s then %s: not in the store's order", ps[i-1], p)
			}
		}
	})
}

func keyOf(p netip.Prefix) []byte { k := store.KeyOf(p); return k[:] }
