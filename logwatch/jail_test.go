package logwatch

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/source"
)

func TestIncrementBanTimeFollowsFail2banFormula(t *testing.T) {
	h := time.Hour
	on := config.Increment{Enabled: true, Factor: 1}
	cases := []struct {
		name string
		base time.Duration
		inc  config.Increment
		prev int
		want time.Duration
	}{
		{"disabled", h, config.Increment{}, 5, h},
		{"first ban", h, on, 0, h},
		{"second ban doubles", h, on, 1, 2 * h},
		{"fifth ban x16", h, on, 4, 16 * h},
		{"factor 3 third ban", h, config.Increment{Enabled: true, Factor: 3}, 2, 12 * h},
		{"factor below 1 never shortens", h, config.Increment{Enabled: true, Factor: 0.1}, 0, h},
		{"exponent capped at 2^20", time.Second, on, 40, (1 << 20) * time.Second},
		{"maxtime caps", h, config.Increment{Enabled: true, Factor: 1, MaxTime: 5 * h}, 10, 5 * h},
		{"permanent untouched", -1, on, 3, -1},
		{"rndtime after the cap", h, config.Increment{Enabled: true, Factor: 1, MaxTime: h, RndTime: 10 * time.Minute}, 3, h + 5*time.Minute},
	}
	for _, c := range cases {
		got := IncrementBanTime(c.base, c.inc, c.prev, func() float64 { return 0.5 })
		if got != c.want {
			t.Errorf("%s: IncrementBanTime(%s, %+v, %d) = %s, want %s", c.name, c.base, c.inc, c.prev, got, c.want)
		}
	}
}

type engineHarness struct {
	e   *Engine
	out chan bans.Decision
	dir string
	log string
	pos *source.MemPositions
	now time.Time
}

func newEngineHarness(t *testing.T, pos *source.MemPositions) *engineHarness {
	t.Helper()
	h := &engineHarness{out: make(chan bans.Decision, 100), dir: t.TempDir(), pos: pos}
	if h.pos == nil {
		h.pos = source.NewMemPositions()
	}
	h.log = filepath.Join(h.dir, "auth.log")
	h.e = NewEngine(EngineOptions{Out: h.out, Positions: h.pos, Rescan: 50 * time.Millisecond})
	t.Cleanup(h.e.StopAll)
	return h
}

func testJail(log string) config.Jail {
	return config.Jail{
		Name: "sshd", Enabled: true, Filter: "fake", LogPaths: []string{log},
		MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour,
	}
}

func (h *engineHarness) start(t *testing.T, j config.Jail, key string) {
	t.Helper()
	err := h.e.Start(context.Background(), JailSpec{Jail: j, NewScanner: newFake, FilterKey: key})
	if err != nil {
		t.Fatal(err)
	}
}

func (h *engineHarness) fail(t *testing.T, addr string, n int) {
	t.Helper()
	s := ""
	for i := 0; i < n; i++ {
		s += failLine(time.Now(), addr, i) + "\n"
	}
	appendFile(t, h.log, s)
}

func (h *engineHarness) expect(t *testing.T, addr string) bans.Decision {
	t.Helper()
	select {
	case d := <-h.out:
		if d.Addr != netip.MustParseAddr(addr) {
			t.Fatalf("decision for %s, want %s", d.Addr, addr)
		}
		d.Done(nil) // as the daemon does once the ban is committed
		return d
	case <-time.After(3 * time.Second):
		t.Fatalf("no decision for %s", addr)
	}
	return bans.Decision{}
}

func (h *engineHarness) expectNone(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case got := <-h.out:
		t.Fatalf("unexpected decision %+v", got)
	case <-time.After(d):
	}
}

func TestEngineBansAfterMaxRetry(t *testing.T) {
	h := newEngineHarness(t, nil)
	appendFile(t, h.log, "")
	j := testJail(h.log)
	j.Actions = []config.Action{{Kind: "webhook", Options: map[string]string{"url": "http://192.0.2.9/"}}}
	h.start(t, j, "k")
	h.fail(t, "192.0.2.50", 2)
	appendFile(t, h.log, "2026-11-24T12:00:00Z something else\n")
	h.expectNone(t, 200*time.Millisecond)
	h.fail(t, "192.0.2.50", 1)
	d := h.expect(t, "192.0.2.50")
	if d.Jail != "sshd" || d.Failures != 3 || d.BanTime != time.Hour || len(d.Lines) != 3 {
		t.Fatalf("decision = %+v", d)
	}
	st, err := h.e.Stats("sshd")
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalFailed != 3 || st.Decisions != 1 || st.CurrentlyFailed != 0 || len(st.Sources) != 1 || st.Sources[0].LinesRead != 4 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestEngineKeepsLinesOnlyForActions: a jail without actions keeps no
// matched lines (they are for notifications only).
func TestEngineKeepsLinesOnlyForActions(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.start(t, testJail(h.log), "k")
	h.fail(t, "192.0.2.51", 3)
	if d := h.expect(t, "192.0.2.51"); len(d.Lines) != 0 || d.Failures != 3 {
		t.Fatalf("decision of a jail without actions: %d lines, %d failures; want none kept, 3 counted", len(d.Lines), d.Failures)
	}
}

func TestEngineIgnoresIgnoreIPAndLoopback(t *testing.T) {
	h := newEngineHarness(t, nil)
	j := testJail(h.log)
	j.IgnoreIP = []netip.Prefix{pfx("198.51.100.0/24")}
	h.start(t, j, "k")
	h.fail(t, "198.51.100.3", 5)
	h.fail(t, "127.0.0.1", 5)
	h.fail(t, "::1", 5)
	h.fail(t, "203.0.113.4", 3)
	h.expect(t, "203.0.113.4")
	h.expectNone(t, 200*time.Millisecond)
	st, _ := h.e.Stats("sshd")
	if st.Ignored != 15 {
		t.Fatalf("ignored = %d, want 15", st.Ignored)
	}
}

func TestEngineCountsIPv6PerBannedPrefix(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.start(t, testJail(h.log), "k")
	// One attacker rotating inside its /64: three addresses, one ban.
	for _, a := range []string{"2001:db8:5::1", "2001:db8:5::2", "2001:db8:5::3"} {
		h.fail(t, a, 1)
	}
	if d := h.expect(t, "2001:db8:5::3"); d.Prefix != pfx("2001:db8:5::/64") {
		t.Fatalf("decision prefix %v, want the counted /64 2001:db8:5::/64", d.Prefix)
	}
}

// TestEngineNarrowsAroundIgnoredNeighbours: one attacker in the /64 of
// an ignoreip address is banned, the neighbour is not cut off.
func TestEngineNarrowsAroundIgnoredNeighbours(t *testing.T) {
	h := newEngineHarness(t, nil)
	j := testJail(h.log)
	j.MaxRetry = 1
	j.IgnoreIP = []netip.Prefix{pfx("2001:db8::3/128")}
	h.start(t, j, "k")
	h.fail(t, "2001:db8::2", 1)
	d := h.expect(t, "2001:db8::2")
	if d.Prefix != pfx("2001:db8::2/128") || !d.Exact {
		t.Fatalf("decision %v (exact %v): want 2001:db8::2/128, exact, so that ignored 2001:db8::3 stays reachable", d.Prefix, d.Exact)
	}
	if b := d.Ban(bans.Widen{}, time.Now()); b.Prefix.Contains(netip.MustParseAddr("2001:db8::3")) {
		t.Fatalf("the intake bans %s, which covers ignored 2001:db8::3", b.Prefix)
	}
	// Further out in the /64, the ban is as wide as it can be without ::3.
	h.fail(t, "2001:db8::ff:1", 1)
	if d := h.expect(t, "2001:db8::ff:1"); d.Prefix != pfx("2001:db8::80:0/105") {
		t.Fatalf("decision %v, want 2001:db8::80:0/105 (the widest without ::3)", d.Prefix)
	}
	st, _ := h.e.Stats("sshd")
	if st.Narrowed != 2 {
		t.Fatalf("narrowed = %d, want 2", st.Narrowed)
	}
}

func TestEngineDecisionPrefixFollowsWidenPolicy(t *testing.T) {
	h := newEngineHarness(t, nil)
	err := h.e.Start(context.Background(), JailSpec{Jail: testJail(h.log), NewScanner: newFake, FilterKey: "k", Widen: bans.Widen{IPv6: 128}})
	if err != nil {
		t.Fatal(err)
	}
	// With ipv6_prefix = 128 the /64 neighbours are separate sources.
	h.fail(t, "2001:db8:6::1", 2)
	h.fail(t, "2001:db8:6::2", 3)
	if d := h.expect(t, "2001:db8:6::2"); d.Prefix != pfx("2001:db8:6::2/128") || d.Failures != 3 {
		t.Fatalf("decision %+v, want prefix 2001:db8:6::2/128 after 3 failures", d)
	}
	h.fail(t, "192.0.2.80", 3)
	if d := h.expect(t, "192.0.2.80"); d.Prefix != pfx("192.0.2.80/32") {
		t.Fatalf("decision prefix %v, want 192.0.2.80/32", d.Prefix)
	}
}

func TestEngineIncrementsFromHistory(t *testing.T) {
	out := make(chan bans.Decision, 10)
	hist := NewMemHistory()
	dir := t.TempDir()
	log := filepath.Join(dir, "auth.log")
	e := NewEngine(EngineOptions{Out: out, History: hist, Rescan: 50 * time.Millisecond})
	t.Cleanup(e.StopAll)
	j := testJail(log)
	j.Increment = config.Increment{Enabled: true, Factor: 1}
	if err := e.Start(context.Background(), JailSpec{Jail: j, NewScanner: newFake}); err != nil {
		t.Fatal(err)
	}
	hist.Record("sshd", pfx("192.0.2.60/32"))
	hist.Record("sshd", pfx("192.0.2.60/32"))
	s := ""
	for i := 0; i < 3; i++ {
		s += failLine(time.Now(), "192.0.2.60", i) + "\n"
	}
	appendFile(t, log, s)
	select {
	case d := <-out:
		if d.BanTime != 4*time.Hour {
			t.Fatalf("third ban lasts %s, want 4h (1h × 2^2)", d.BanTime)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no decision")
	}
}

func TestEngineReloadKeepsWindowWhenFilterUnchanged(t *testing.T) {
	h := newEngineHarness(t, nil)
	h.start(t, testJail(h.log), "filter-v1")
	h.fail(t, "192.0.2.70", 2)
	h.fail(t, "192.0.2.71", 2)
	waitFailed(t, h.e, 4)
	h.start(t, testJail(h.log), "filter-v1") // reload, same filter
	h.fail(t, "192.0.2.70", 1)
	h.expect(t, "192.0.2.70")
	h.start(t, testJail(h.log), "filter-v2") // filter changed: counters reset
	h.fail(t, "192.0.2.71", 1)
	h.expectNone(t, 300*time.Millisecond)
	if st, _ := h.e.Stats("sshd"); st.CurrentlyFailed != 1 {
		t.Fatalf("after a filter change %d addresses tracked, want 1", st.CurrentlyFailed)
	}
}

func waitFailed(t *testing.T, e *Engine, n uint64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, _ := e.Stats("sshd")
		if st.TotalFailed >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("total failed %d, want %d", st.TotalFailed, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEngineRestartCountsDowntimeFailuresOnce: failures logged while the
// daemon was down count (their own timestamps are inside findtime), lines
// handled before the restart are not counted again, and lines older than
// findtime never ban.
func TestEngineRestartCountsDowntimeFailuresOnce(t *testing.T) {
	pos := source.NewMemPositions()
	h := newEngineHarness(t, pos)
	appendFile(t, h.log, failLine(time.Now().Add(-time.Hour), "192.0.2.80", 0)+"\n"+
		failLine(time.Now().Add(-time.Hour), "192.0.2.80", 1)+"\n"+
		failLine(time.Now().Add(-time.Hour), "192.0.2.80", 2)+"\n")
	h.start(t, testJail(h.log), "k")
	h.fail(t, "192.0.2.81", 2)
	waitFailed(t, h.e, 2)
	h.expectNone(t, 100*time.Millisecond) // an hour-old burst never bans
	if err := h.e.Stop("sshd"); err != nil {
		t.Fatal(err)
	}
	// While down: one more failure of .81 (its third) is logged.
	appendFile(t, h.log, failLine(time.Now().Add(-time.Minute), "192.0.2.81", 9)+"\n")
	// A new engine (the restarted daemon) with the saved positions.
	h2 := newEngineHarness(t, pos)
	h2.log = h.log
	h2.start(t, testJail(h.log), "k")
	waitFailed(t, h2.e, 1)
	h2.expectNone(t, 300*time.Millisecond)
	st, _ := h2.e.Stats("sshd")
	if st.TotalFailed != 1 || st.CurrentlyFailed != 1 {
		t.Fatalf("after restart: %+v, want exactly the one downtime failure counted", st)
	}
	h2.fail(t, "192.0.2.81", 2)
	h2.expect(t, "192.0.2.81")
}

func TestEngineRejectsBadJails(t *testing.T) {
	e := NewEngine(EngineOptions{Out: make(chan bans.Decision)})
	for _, c := range []struct {
		j    config.Jail
		want string
	}{
		{config.Jail{Name: "a", MaxRetry: 0, FindTime: time.Minute, LogPaths: []string{"/x"}}, "jail a: maxretry 0: must be at least 1"},
		{config.Jail{Name: "b", MaxRetry: 1, FindTime: time.Minute}, "jail b: no logpath and no journalmatch: set one of them"},
		{config.Jail{Name: "c", MaxRetry: 1, FindTime: time.Minute, Backend: "gamin", LogPaths: []string{"/x"}}, `jail c: unknown backend "gamin": use auto, file or journal`},
		{config.Jail{Name: "d", MaxRetry: 1, FindTime: time.Minute, Backend: "journal"}, "jail d: backend journal needs journalmatch (e.g. _SYSTEMD_UNIT=sshd.service)"},
	} {
		err := e.Start(context.Background(), JailSpec{Jail: c.j, NewScanner: newFake})
		if err == nil || err.Error() != c.want {
			t.Errorf("Start(%s) error = %v, want %q", c.j.Name, err, c.want)
		}
	}
	if _, err := e.Stats("nope"); err == nil {
		t.Error("Stats of an unknown jail succeeded")
	}
}
