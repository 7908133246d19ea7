package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
)

// BenchmarkParseBanFile: a million-line import (2001:db8:X:Y::/64 a
// line, sorted, as bench/ and a blocklist send it), parsed and checked.
func BenchmarkParseBanFile(b *testing.B) {
	var sb strings.Builder
	for i := range 1_000_000 {
		fmt.Fprintf(&sb, "2001:db8:%x:%x::/64\n", 0x1000+i>>16, i&0xffff)
	}
	text := sb.String()
	protected, err := bans.NewIgnoreList(nil, false)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		_, ps, _, err := ParseBanFile(text, control.ImportRequest{Jail: "import", For: "1h"}, bans.Widen{}, time.Now(), ItemRules{Protected: protected})
		if err != nil || len(ps) != 1_000_000 {
			b.Fatalf("%d prefixes, %v", len(ps), err)
		}
	}
}
