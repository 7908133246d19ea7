package banafter

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

var (
	t0   = time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
	src  = netip.MustParseAddr("192.0.2.2")
	src2 = netip.MustParseAddr("2001:db8::2")
)

func jails() []config.Jail {
	return []config.Jail{
		{Name: "sshd", Enabled: true, BanTime: time.Hour,
			RateLimit: config.RateLimit{Rate: 10, Per: time.Second, BanAfter: 30 * time.Second}},
		{Name: "web", Enabled: true, RateLimit: config.RateLimit{Rate: 100, Per: time.Second}}, // no banafter
		{Name: "off", Enabled: false, RateLimit: config.RateLimit{Rate: 1, Per: time.Second, BanAfter: time.Second}},
	}
}

func mustNew(t *testing.T, js []config.Jail) *Tracker {
	t.Helper()
	tr, err := New(js)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestBanAfterNeverBansIgnored: a flood from an ignoreip address is
// throttled by the kernel, never banned; a neighbour's ban leaves it
// reachable.
func TestBanAfterNeverBansIgnored(t *testing.T) {
	js := jails()
	js[0].IgnoreIP = []netip.Prefix{netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("2001:db8::3/128")}
	tr := mustNew(t, js)
	if got := poll(tr, "sshd", src, 0, 120); len(got) != 0 {
		t.Fatalf("ignored %s banned: decisions at %v", src, got)
	}
	var ds []bans.Decision
	for s := 0; s <= 40 && len(ds) == 0; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		ds = tr.Observe(now, []Sample{{Jail: "sshd", Addr: src2, Last: now}})
	}
	if len(ds) != 1 {
		t.Fatalf("no ban for %s over its limit", src2)
	}
	if b := ds[0].Ban(bans.Widen{}, t0); b.Prefix.Contains(netip.MustParseAddr("2001:db8::3")) {
		t.Fatalf("ban of %s is %s: covers ignored 2001:db8::3", src2, b.Prefix)
	}
}

// poll feeds one observation a second of src being throttled, from a to b
// seconds after t0, and returns the decisions with the second they came.
func poll(tr *Tracker, jail string, addr netip.Addr, from, to int) map[int]int {
	got := map[int]int{}
	for s := from; s <= to; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		ds := tr.Observe(now, []Sample{{Jail: jail, Addr: addr, Last: now, Dropped: uint64(s * 100)}})
		if len(ds) > 0 {
			got[s] = len(ds)
		}
	}
	return got
}

func TestBanAfterContinuousOverLimit(t *testing.T) {
	tr := mustNew(t, jails())
	if tr.Jails() != 1 {
		t.Fatalf("%d jails tracked, want 1 (sshd)", tr.Jails())
	}
	got := poll(tr, "sshd", src, 0, 45)
	if len(got) != 1 || got[30] != 1 {
		t.Fatalf("decisions at %v, want one at second 30", got)
	}
	// The decision's content.
	tr = mustNew(t, jails())
	poll(tr, "sshd", src, 0, 29)
	now := t0.Add(30 * time.Second)
	ds := tr.Observe(now, []Sample{{Jail: "sshd", Addr: netip.MustParseAddr("::ffff:192.0.2.2"), Last: now, Dropped: 3000}})
	if len(ds) != 1 {
		t.Fatalf("%d decisions", len(ds))
	}
	d := ds[0]
	if d.Jail != "sshd" || d.Addr != src || d.BanTime != time.Hour || !d.At.Equal(now) ||
		len(d.Lines) != 1 || !strings.Contains(d.Lines[0], "rate limit 10/1s exceeded for 30s") || !strings.Contains(d.Lines[0], "3000 packets") {
		t.Fatalf("decision %+v", d)
	}
	if tr.Tracked() != 0 {
		t.Fatalf("banned source still tracked")
	}
}

func TestBanAfterGapRestartsClock(t *testing.T) {
	tr := mustNew(t, jails())
	if got := poll(tr, "sshd", src, 0, 20); len(got) != 0 {
		t.Fatalf("early decision %v", got)
	}
	// Quiet from 21 to 29 (> Grace): the next burst starts from zero.
	for s := 21; s < 30; s++ {
		tr.Observe(t0.Add(time.Duration(s)*time.Second), nil)
	}
	if tr.Tracked() != 0 {
		t.Fatalf("calm source still tracked")
	}
	got := poll(tr, "sshd", src, 30, 70)
	if len(got) != 1 || got[60] != 1 {
		t.Fatalf("decisions at %v, want one at 60 (30s after the second burst began)", got)
	}
	// A short gap within Grace does not reset.
	tr = mustNew(t, jails())
	poll(tr, "sshd", src, 0, 10)
	got = poll(tr, "sshd", src, 12, 40) // second 11 missed
	if len(got) != 1 || got[30] != 1 {
		t.Fatalf("decisions at %v, want one at 30 despite a 2s gap", got)
	}
}

func TestBanAfterOnlyConfiguredJails(t *testing.T) {
	tr := mustNew(t, jails())
	for _, j := range []string{"web", "off", "nope"} {
		if got := poll(tr, j, src, 0, 100); len(got) != 0 {
			t.Errorf("jail %s: decisions %v, want none", j, got)
		}
	}
	// Two sources are independent.
	got1 := map[int]int{}
	for s := 0; s <= 40; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		samples := []Sample{{Jail: "sshd", Addr: src, Last: now}}
		if s >= 10 {
			samples = append(samples, Sample{Jail: "sshd", Addr: src2, Last: now})
		}
		for _, d := range tr.Observe(now, samples) {
			got1[s]++
			if (s == 30 && d.Addr != src) || (s == 40 && d.Addr != src2) {
				t.Errorf("second %d banned %s", s, d.Addr)
			}
		}
	}
	if len(got1) != 2 || got1[30] != 1 || got1[40] != 1 {
		t.Fatalf("decisions %v, want src at 30 and src2 at 40", got1)
	}
}

func TestBanAfterBoundedState(t *testing.T) {
	tr := mustNew(t, jails())
	samples := make([]Sample, MaxTracked+1000)
	for i := range samples {
		samples[i] = Sample{Jail: "sshd", Addr: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), Last: t0}
		if i >= 1<<16 {
			samples[i].Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
	}
	tr.Observe(t0, samples)
	if tr.Tracked() != MaxTracked {
		t.Fatalf("tracking %d sources, cap is %d", tr.Tracked(), MaxTracked)
	}
	tr.Observe(t0.Add(time.Minute), nil)
	if tr.Tracked() != 0 {
		t.Fatalf("%d sources still tracked after they calmed down", tr.Tracked())
	}
}

func TestBanAfterKernelSince(t *testing.T) {
	tr := mustNew(t, jails())
	now := t0.Add(100 * time.Second)
	// First sight, but the kernel says it has been over since 40s ago.
	ds := tr.Observe(now, []Sample{{Jail: "sshd", Addr: src, Last: now, Since: now.Add(-40 * time.Second)}})
	if len(ds) != 1 || !strings.Contains(ds[0].Lines[0], "exceeded for 40s") {
		t.Fatalf("decisions %+v, want an immediate ban after 40s over the limit", ds)
	}
	// The kernel restarted its clock (a pause): not due yet.
	ds = tr.Observe(now, []Sample{{Jail: "sshd", Addr: src2, Last: now, Since: now.Add(-5 * time.Second)}})
	if len(ds) != 0 {
		t.Fatalf("banned after 5s: %+v", ds)
	}
}

func TestFromLimiter(t *testing.T) {
	now := t0.Add(time.Minute)
	got := FromLimiter([]bans.RateLimitedSource{
		{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Port: 22, Jail: "sshd", Dropped: 40, OverSince: t0, LastOver: now},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Port: 22, Jail: "sshd", Dropped: 3, LastOver: now}, // calm now
	})
	if len(got) != 1 || got[0] != (Sample{Jail: "sshd", Addr: src, Last: now, Since: t0, Dropped: 40}) {
		t.Fatalf("samples %+v", got)
	}
	if ds := mustNew(t, jails()).Observe(now, got); len(ds) != 1 || ds[0].Addr != src {
		t.Fatalf("a minute over a 30s banafter: decisions %+v", ds)
	}
}
