package nspairtest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestProbeTimesACut cuts the path from outside the probe (the host
// loses its address, so the datagrams are no longer local and are
// dropped) and checks the probe places the cut inside the window the cut
// was made in, with every datagram accounted for.
func TestProbeTimesACut(t *testing.T) {
	p := New(t)
	pr := p.Probe(t, AttackerV4, 9998, 100*time.Microsecond)
	ctx := context.Background()
	if err := pr.Start(ctx, 20); err != nil {
		t.Fatal(err)
	}
	// Nothing cut yet: the probe must not invent one.
	if _, err := pr.WaitCut(ctx, 20*time.Millisecond, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "still arriving") {
		t.Fatalf("WaitCut on a flowing stream: %v, want a time-out", err)
	}
	t0 := time.Now()
	if out, err := exec.Command("ip", "-n", p.Host.Name, "addr", "del", HostV4.String()+"/24", "dev", p.HostIf).CombinedOutput(); err != nil {
		t.Fatalf("ip addr del: %v: %s", err, out)
	}
	t1 := time.Now()
	c, err := pr.WaitCut(ctx, 20*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.FirstSent.Before(t0) || c.LastArrivedSent.After(t1) {
		t.Errorf("cut between datagrams sent at +%v and +%v, but the address went between +0 and +%v",
			c.LastArrivedSent.Sub(t0), c.FirstSent.Sub(t0), t1.Sub(t0))
	}
	if c.Lost != 0 || c.Arrived != c.First || c.Dropped() < 10 {
		t.Errorf("cut %+v: want nothing lost before the cut, every datagram before it arrived, at least 10 after it", c)
	}
	if c.Interval <= 0 || c.Interval > 5*time.Millisecond {
		t.Errorf("pacing %v for 100µs asked", c.Interval)
	}
}
