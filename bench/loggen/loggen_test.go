package loggen_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/bench/loggen"
	"github.com/xdpban/xdpban/logwatch"
	"github.com/xdpban/xdpban/logwatch/filter"
)

func TestGenerateIsDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	loggen.Generate(&a, loggen.Options{Lines: 5000, Seed: 7})
	loggen.Generate(&b, loggen.Options{Lines: 5000, Seed: 7})
	loggen.Generate(&c, loggen.Options{Lines: 5000, Seed: 8})
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different output")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seeds, same output")
	}
}

// TestGeneratedFailuresAreWhatSSHDFilterCounts replays generated lines
// through the real sshd filter: its failures are exactly the generator's,
// from documentation addresses only.
func TestGeneratedFailuresAreWhatSSHDFilterCounts(t *testing.T) {
	var buf bytes.Buffer
	st, err := loggen.Generate(&buf, loggen.Options{Lines: 50_000, Attackers: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if r := float64(st.Failures) / float64(st.Lines); r < 0.28 || r > 0.32 {
		t.Fatalf("failure ratio %.3f, want about 0.30", r)
	}
	f, err := filter.Load(nil, "sshd", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := logwatch.Replay(&buf, f.NewScanner(), logwatch.ReplayOptions{Ref: time.Date(2026, 11, 25, 0, 0, 0, 0, time.Local)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != st.Lines || res.Matched != st.Failures {
		t.Fatalf("sshd filter matched %d of %d lines, generator wrote %d failures", res.Matched, res.Lines, st.Failures)
	}
	if len(res.Hosts) != st.Attackers {
		t.Fatalf("%d distinct hosts matched, generator used %d", len(res.Hosts), st.Attackers)
	}
	for _, h := range res.Hosts {
		if !strings.HasPrefix(h.Host, "192.0.2.") && !strings.HasPrefix(h.Host, "198.51.100.") &&
			!strings.HasPrefix(h.Host, "203.0.113.") && !strings.HasPrefix(h.Host, "2001:db8:") {
			t.Fatalf("non-documentation address %s", h.Host)
		}
	}
}

func TestAttackerAddressesAreDocumentationOnly(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100_000; i++ {
		a := loggen.Attacker(i)
		s := a.String()
		if seen[s] {
			t.Fatalf("attacker %d repeats %s", i, s)
		}
		seen[s] = true
		if a.Is4() {
			b := a.As4()
			if !(b[0] == 192 && b[1] == 0 && b[2] == 2 || b[0] == 198 && b[1] == 51 && b[2] == 100 || b[0] == 203 && b[1] == 0 && b[2] == 113) {
				t.Fatalf("attacker %d = %s outside the IPv4 documentation ranges", i, s)
			}
		} else if b := a.As16(); b[0] != 0x20 || b[1] != 0x01 || b[2] != 0x0d || b[3] != 0xb8 {
			t.Fatalf("attacker %d = %s outside 2001:db8::/32", i, s)
		}
	}
}
