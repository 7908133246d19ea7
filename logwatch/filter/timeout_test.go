package filter

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/logwatch/pyre"
)

// TestBacktrackingBudgetIsPerLine: one line runs several backtracking
// expressions; together they get DefaultMatchTimeout, not each of them.
func TestBacktrackingBudgetIsPerLine(t *testing.T) {
	var fr []string
	for i := 0; i < 4; i++ {
		fr = append(fr, fmt.Sprintf(`^(?=\w)(?:\w+\s?)+: invalid user %d from <HOST>$`, i))
	}
	f, err := compileFilter(filterSpec{name: "multi", source: "test", failregex: fr})
	if err != nil {
		t.Fatal(err)
	}
	sc := f.NewScanner()
	line := strings.Repeat("a", 30) + "!: invalid user 0 invalid user 1 invalid user 2 invalid user 3 from 192.0.2.1"
	sc.Scan(line, time.Now()) // warm up the engine's clock
	start := time.Now()
	v, _ := sc.Scan(line, time.Now())
	took := time.Since(start)
	t.Logf("4 backtracking failregexes on one hostile line: %s (budget %s)", took, pyre.DefaultMatchTimeout)
	if v != Miss {
		t.Fatalf("verdict %v, want a miss", v)
	}
	if took > pyre.DefaultMatchTimeout+pyre.MatchSlack+10*time.Millisecond {
		t.Errorf("one line took %s, budget %s", took, pyre.DefaultMatchTimeout)
	}
	if got := sc.(*scanner).Timeouts(); got != 2 {
		t.Errorf("scanner counted %d timed-out lines, want 2 (once per line)", got)
	}
}
