package main

import (
	"strings"
	"testing"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
)

// FuzzReadBanFile: --from-file input never panics; it yields only valid
// addresses, or an error and nothing.
func FuzzReadBanFile(f *testing.F) {
	f.Add("192.0.2.1\n198.51.100.0/24\n")
	f.Add("# comment\n\n2001:db8::1 # x\n")
	f.Add("300.1.2.3\n10.0.0.0/33\n")
	f.Add(strings.Repeat("a", 5000))
	f.Fuzz(func(t *testing.T, in string) {
		items, err := banFileItems([]byte(in), control.ImportRequest{Jail: "manual", For: "1h"})
		if err != nil {
			if len(items) != 0 {
				t.Fatal("items returned with an error")
			}
			return
		}
		for _, it := range items {
			if _, err := (bans.Widen{}).Parse(it.Addr); err != nil {
				t.Fatalf("accepted bad line %q: %v", it.Addr, err)
			}
		}
	})
}
