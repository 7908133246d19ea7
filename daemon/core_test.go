package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/daemon/banlog"
	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/ledger"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// memBackend stands in for the kernel maps: it holds what was added, so
// the tests can look at what the Core put there, and survives a "daemon
// restart" (a new Core on the same memBackend) the way pinned maps do.
type memBackend struct {
	mu      sync.Mutex
	m       map[netip.Prefix]bans.Ban
	failAdd error
	// budget, when set, is how many more bans Add takes before it fails
	// with failAdd.
	budget *int
}

// failAfter makes Add fail with err once n more bans were added.
func (b *memBackend) failAfter(n int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.budget, b.failAdd = &n, err
}

func newMem() *memBackend { return &memBackend{m: map[netip.Prefix]bans.Ban{}} }

func (b *memBackend) Kind() string { return "mem" }
func (b *memBackend) Add(_ context.Context, bs ...bans.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.budget != nil {
		if *b.budget < len(bs) {
			return b.failAdd
		}
		*b.budget -= len(bs)
	} else if b.failAdd != nil {
		return b.failAdd
	}
	for _, x := range bs {
		b.m[x.Prefix] = x
	}
	return nil
}
func (b *memBackend) Delete(_ context.Context, ps ...netip.Prefix) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range ps {
		if _, ok := b.m[p]; ok {
			delete(b.m, p)
			n++
		}
	}
	return n, nil
}
func (b *memBackend) Flush(context.Context) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.m)
	clear(b.m)
	return n, nil
}
func (b *memBackend) List(context.Context) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []bans.Ban
	for _, x := range b.m {
		out = append(out, x)
	}
	return out, nil
}
func (b *memBackend) Expire(_ context.Context, now time.Time) ([]bans.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []bans.Ban
	for p, x := range b.m {
		if x.Expired(now) {
			out = append(out, x)
			delete(b.m, p)
		}
	}
	return out, nil
}
func (b *memBackend) Status(context.Context) (bans.Status, error) {
	return bans.Status{Backend: "mem"}, nil
}
func (b *memBackend) Close() error  { return nil }
func (b *memBackend) Detach() error { b.Flush(context.Background()); return nil }
func (b *memBackend) has(p netip.Prefix) (bans.Ban, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.m[p]
	return x, ok
}

type rec struct {
	mu  sync.Mutex
	evs []actions.Event
}

func (r *rec) Notify(ev actions.Event) { r.mu.Lock(); r.evs = append(r.evs, ev); r.mu.Unlock() }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	dir   string
	be    *memBackend
	st    *store.Store
	core  *ledger.Core
	now   time.Time
	notes *rec
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{dir: t.TempDir(), be: newMem(), now: time.Unix(1_800_000_000, 0)}
	f.open(t)
	return f
}

// open starts a "daemon": a new store handle and Core on the same
// backend, then Restore.
func (f *fixture) open(t *testing.T) ledger.RestoreReport {
	t.Helper()
	if f.st != nil {
		f.st.Close()
	}
	st, err := store.Open(filepath.Join(f.dir, DBFile), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bl, err := banlog.Open(filepath.Join(f.dir, "ban.log"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bl.Close() })
	f.st = st
	f.notes = &rec{}
	f.core = ledger.NewCore(f.be, st, bl, quiet)
	f.core.Observers = []ledger.Observer{ledger.NotifyObserver(f.notes)}
	f.core.Now = func() time.Time { return f.now }
	r, err := f.core.Restore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestBanIsEnforcedStoredLogged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	b := bans.Ban{Prefix: pfx("192.0.2.7/32"), Jail: "sshd", Expires: f.now.Add(time.Hour)}
	if err := f.core.Ban(ctx, []bans.Ban{b}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.be.has(b.Prefix); !ok {
		t.Fatal("not in the backend")
	}
	if got, ok, _ := f.st.Ban(b.Prefix); !ok || got.Jail != "sshd" || !got.Expires.Equal(b.Expires) {
		t.Fatalf("stored %+v %v", got, ok)
	}
	if n, _ := f.st.BanCount("sshd", b.Prefix); n != 1 {
		t.Fatalf("history count %d", n)
	}
	log, _ := os.ReadFile(filepath.Join(f.dir, "ban.log"))
	if !strings.Contains(string(log), "NOTICE  [sshd] Ban 192.0.2.7") {
		t.Fatalf("ban log %q", log)
	}
	if f.core.TotalBanned("sshd") != 1 || len(f.core.Active("sshd")) != 1 {
		t.Fatal("counters")
	}
}

func TestBackendFailureStoresNothing(t *testing.T) {
	f := newFixture(t)
	f.be.failAdd = bans.ErrFull
	err := f.core.Ban(context.Background(), []bans.Ban{{Prefix: pfx("192.0.2.7/32"), Jail: "j"}})
	if !errors.Is(err, bans.ErrFull) {
		t.Fatalf("err %v, want ErrFull", err)
	}
	if bs, _ := f.st.Bans(); len(bs) != 0 {
		t.Fatalf("stored %v after a failed enforce", bs)
	}
}

func TestRestore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	keep := bans.Ban{Prefix: pfx("192.0.2.1/32"), Jail: "a", Expires: f.now.Add(time.Hour)}
	perm := bans.Ban{Prefix: pfx("198.51.100.0/24"), Jail: "manual"}
	short := bans.Ban{Prefix: pfx("2001:db8::/64"), Jail: "b", Expires: f.now.Add(time.Minute)}
	if err := f.core.Ban(ctx, []bans.Ban{keep, perm, short}); err != nil {
		t.Fatal(err)
	}
	// A reboot: the kernel forgets everything; a ban was also added
	// behind the store's back (a crash between backend and store).
	f.be.Flush(ctx)
	orphan := bans.Ban{Prefix: pfx("203.0.113.9/32"), Jail: "x", Expires: f.now.Add(2 * time.Hour)}
	f.be.Add(ctx, orphan)
	// Two minutes later the short ban has ended.
	f.now = f.now.Add(2 * time.Minute)
	r := f.open(t)
	if r.Restored != 2 || r.Imported != 1 || r.Dropped != 1 || r.Kept != 0 {
		t.Fatalf("report %+v, want 2 restored, 1 imported, 1 dropped", r)
	}
	for _, b := range []bans.Ban{keep, perm, orphan} {
		got, ok := f.be.has(b.Prefix)
		if !ok || !got.Expires.Equal(b.Expires) || got.Jail != b.Jail {
			t.Errorf("%s in backend: %+v %v, want %+v", b.Prefix, got, ok, b)
		}
		if _, ok, _ := f.st.Ban(b.Prefix); !ok {
			t.Errorf("%s not in the store after restore", b.Prefix)
		}
	}
	if _, ok := f.be.has(short.Prefix); ok {
		t.Error("expired ban restored")
	}
	if _, ok, _ := f.st.Ban(short.Prefix); ok {
		t.Error("expired ban kept in the store")
	}
	// A second start with everything in place changes nothing.
	if r := f.open(t); r.Kept != 3 || r.Restored+r.Imported+r.Dropped != 0 {
		t.Fatalf("second restore %+v, want 3 kept", r)
	}
}

func TestCorruptDatabaseImportsKernel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	b := bans.Ban{Prefix: pfx("192.0.2.1/32"), Jail: "a", Expires: f.now.Add(time.Hour)}
	f.core.Ban(ctx, []bans.Ban{b})
	f.st.Close()
	os.WriteFile(filepath.Join(f.dir, DBFile), []byte("garbage, not bbolt"), 0o600)
	f.st = nil
	r := f.open(t)
	if f.st.Recovered() == "" {
		t.Fatal("corrupt db not moved aside")
	}
	if r.Imported != 1 {
		t.Fatalf("report %+v, want the kernel's ban imported", r)
	}
	got, ok, _ := f.st.Ban(b.Prefix)
	if !ok || got.Jail != "a" || !got.Expires.Equal(b.Expires) {
		t.Fatalf("imported %+v %v", got, ok)
	}
}

func TestSweep(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.core.Ban(ctx, []bans.Ban{
		{Prefix: pfx("192.0.2.1/32"), Jail: "a", Expires: f.now.Add(time.Second)},
		{Prefix: pfx("192.0.2.2/32"), Jail: "a", Expires: f.now.Add(time.Hour)},
		{Prefix: pfx("192.0.2.3/32"), Jail: "a"},
	})
	// The backend lost one on its own (LRU eviction) before it expired.
	f.be.Delete(ctx, pfx("192.0.2.2/32"))
	f.now = f.now.Add(2 * time.Hour)
	n, err := f.core.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2", n, err)
	}
	bs, _ := f.st.Bans()
	if len(bs) != 1 || bs[0].Prefix != pfx("192.0.2.3/32") {
		t.Fatalf("store after sweep %v", bs)
	}
	log, _ := os.ReadFile(filepath.Join(f.dir, "ban.log"))
	if strings.Count(string(log), "Unban") != 2 {
		t.Fatalf("ban log:\n%s", log)
	}
	f.notes.mu.Lock()
	defer f.notes.mu.Unlock()
	unbans := 0
	for _, ev := range f.notes.evs {
		if ev.Kind == actions.Unban {
			unbans++
		}
	}
	if unbans != 2 {
		t.Fatalf("%d unban notifications, want 2", unbans)
	}
}

func TestUnbanByJail(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.core.Ban(ctx, []bans.Ban{
		{Prefix: pfx("192.0.2.1/32"), Jail: "a"},
		{Prefix: pfx("192.0.2.2/32"), Jail: "b"},
		{Prefix: pfx("192.0.2.3/32"), Jail: "b"},
	})
	if _, err := f.core.Unban(ctx, []netip.Prefix{pfx("192.0.2.1/32")}, "b"); !errors.Is(err, bans.ErrNotBanned) || !strings.Contains(err.Error(), "jail a") {
		t.Fatalf("unban from the wrong jail: %v", err)
	}
	if _, ok := f.be.has(pfx("192.0.2.1/32")); !ok {
		t.Fatal("wrong-jail unban removed the ban")
	}
	if n, err := f.core.UnbanAll(ctx, "b"); err != nil || n != 2 {
		t.Fatalf("UnbanAll(b) = %d, %v", n, err)
	}
	if bs, _ := f.st.Bans(); len(bs) != 1 || bs[0].Jail != "a" {
		t.Fatalf("store %v", bs)
	}
	if n, err := f.core.UnbanAll(ctx, ""); err != nil || n != 1 {
		t.Fatalf("UnbanAll = %d, %v", n, err)
	}
	if _, err := f.core.Unban(ctx, []netip.Prefix{pfx("192.0.2.9/32")}, ""); !errors.Is(err, bans.ErrNotBanned) {
		t.Fatalf("unban of nothing: %v", err)
	}
}

func TestParseBanTime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": time.Hour, "0": 0, "-1": 0, "permanent": 0, "90s": 90 * time.Second, "600": 10 * time.Minute, "1h30m": 90 * time.Minute, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour,
	} {
		if got, err := ParseBanTime(in); err != nil || got != want {
			t.Errorf("ParseBanTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"banana", "-5m", "0.5", "1h-2h", "0x10"} {
		if _, err := ParseBanTime(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseBanTime(%q) = %v, want an error naming it", bad, err)
		}
	}
}

func TestDecisionNeverShortensBan(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := &Daemon{log: quiet, core: f.core, opt: Options{Now: func() time.Time { return f.now }}}
	perm := bans.Ban{Prefix: pfx("192.0.2.1/32"), Jail: "manual"}
	long := bans.Ban{Prefix: pfx("192.0.2.2/32"), Jail: "manual", Expires: f.now.Add(24 * time.Hour)}
	f.core.Ban(ctx, []bans.Ban{perm, long})
	dec := func(a string, bt time.Duration) bans.Decision {
		return bans.Decision{Jail: "sshd", Addr: netip.MustParseAddr(a), BanTime: bt, At: f.now, Failures: 5}
	}
	d.apply(ctx, []bans.Decision{
		dec("192.0.2.1", 10*time.Minute), // permanent stays
		dec("192.0.2.2", 10*time.Minute), // 24h stays
		dec("192.0.2.3", 10*time.Minute), // new
		dec("192.0.2.3", 20*time.Minute), // same batch: last wins
	})
	if b, _ := f.be.has(perm.Prefix); b.Jail != "manual" || !b.Permanent() {
		t.Errorf("permanent ban became %+v", b)
	}
	if b, _ := f.be.has(long.Prefix); b.Jail != "manual" || !b.Expires.Equal(long.Expires) {
		t.Errorf("24h ban became %+v", b)
	}
	b, ok := f.be.has(pfx("192.0.2.3/32"))
	if !ok || b.Jail != "sshd" || !b.Expires.Equal(f.now.Add(20*time.Minute)) {
		t.Errorf("new ban %+v %v", b, ok)
	}
	// A longer decision does extend a ban.
	d.apply(ctx, []bans.Decision{dec("192.0.2.2", 48*time.Hour)})
	if b, _ := f.be.has(long.Prefix); b.Jail != "sshd" || !b.Expires.Equal(f.now.Add(48*time.Hour)) {
		t.Errorf("extended ban %+v", b)
	}
}

// TestDecisionNeverNarrowsBan: a port-scoped jail decision on a prefix
// banned for all traffic leaves it all traffic; a wider decision on a
// port ban widens it and keeps the longer end.
func TestDecisionNeverNarrowsBan(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := &Daemon{log: quiet, core: f.core, opt: Options{Now: func() time.Time { return f.now }}}
	tcp22 := bans.Scope{Proto: "tcp", Ports: []bans.PortRange{{From: 22, To: 22}}}
	all := bans.Ban{Prefix: pfx("192.0.2.1/32"), Jail: "manual", Expires: f.now.Add(time.Hour)}
	port := bans.Ban{Prefix: pfx("192.0.2.2/32"), Jail: "sshd", Expires: f.now.Add(24 * time.Hour), Scope: tcp22}
	f.core.Ban(ctx, []bans.Ban{all, port})
	d.apply(ctx, []bans.Decision{
		// Longer but narrower: the all-traffic ban stays all, for longer.
		{Jail: "sshd", Addr: netip.MustParseAddr("192.0.2.1"), BanTime: 2 * time.Hour, Scope: tcp22},
		// Shorter but wider: all traffic, the port ban's end kept.
		{Jail: "recidive", Addr: netip.MustParseAddr("192.0.2.2"), BanTime: time.Hour},
	})
	if b, _ := f.be.has(all.Prefix); !b.Scope.All() || !b.Expires.Equal(f.now.Add(2*time.Hour)) {
		t.Errorf("all-traffic ban after a longer tcp/22 decision: %s scope %s until %v; want all until +2h", b.Prefix, b.Scope, b.Expires)
	}
	if b, _ := f.be.has(port.Prefix); !b.Scope.All() || !b.Expires.Equal(port.Expires) {
		t.Errorf("tcp/22 ban after a shorter all decision: %s scope %s until %v; want all until +24h", b.Prefix, b.Scope, b.Expires)
	}
}

// TestCLIBanTakesJailScope: `xdpban ban ADDR --jail sshd` bans what
// sshd's bans drop; without --jail, or naming no configured jail, all.
func TestCLIBanTakesJailScope(t *testing.T) {
	tcp22 := bans.Scope{Proto: "tcp", Ports: []bans.PortRange{{From: 22, To: 22}}}
	cfg := &config.Config{Jails: []config.Jail{{Name: "sshd", BanScope: "port", Scope: tcp22}, {Name: "recidive", BanScope: "all"}}}
	scope := func(j string) bans.Scope { return JailScope(cfg, j) }
	bs, err := ParseItems([]control.BanItem{{Addr: "192.0.2.7", Jail: "sshd"}, {Addr: "192.0.2.8"}, {Addr: "192.0.2.9", Jail: "recidive"},
		{Addr: "192.0.2.10", Jail: "other"}}, bans.Widen{}, time.Now(), ItemRules{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"tcp/22", "all", "all", "all"} {
		if got := bs[i].Scope.String(); got != want {
			t.Errorf("%s in jail %s: scope %s, want %s", bs[i].Prefix, bs[i].Jail, got, want)
		}
	}
}

// TestTableFills: the per-table counts status reads instead of walking
// the kernel follow bans, re-bans of the same prefix, unbans, expiry and
// a restart, and agree with a walk of the mirror.
func TestTableFills(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tableOf := func(p netip.Prefix) string {
		switch {
		case p.Addr().Is4() && p.Bits() == 32:
			return "v4"
		case p.Addr().Is4():
			return "v4net"
		case p.Bits() == 64:
			return "v6"
		}
		return "v6net"
	}
	walked := func() map[string]int {
		out := map[string]int{}
		for _, b := range f.core.Active("") {
			out[tableOf(b.Prefix)]++
		}
		return out
	}
	check := func(step string, want map[string]int) {
		t.Helper()
		got := f.core.TableFills(tableOf)
		if !maps.Equal(got, want) || !maps.Equal(got, walked()) {
			t.Fatalf("%s: TableFills = %v, mirror walk %v, want %v", step, got, walked(), want)
		}
	}
	check("empty", map[string]int{})
	f.core.Ban(ctx, []bans.Ban{
		{Prefix: pfx("192.0.2.1/32"), Jail: "a", Expires: f.now.Add(time.Second)},
		{Prefix: pfx("192.0.2.2/32"), Jail: "a"},
		{Prefix: pfx("198.51.100.0/24"), Jail: "b"},
		{Prefix: pfx("2001:db8:1::/64"), Jail: "a"},
		{Prefix: pfx("2001:db8::/48"), Jail: "b", Expires: f.now.Add(time.Hour)},
	})
	check("banned", map[string]int{"v4": 2, "v4net": 1, "v6": 1, "v6net": 1})
	// A re-ban (another jail, later expiry) replaces; it adds nothing.
	f.core.Ban(ctx, []bans.Ban{{Prefix: pfx("192.0.2.2/32"), Jail: "b"}})
	check("re-banned", map[string]int{"v4": 2, "v4net": 1, "v6": 1, "v6net": 1})
	if _, err := f.core.Unban(ctx, []netip.Prefix{pfx("198.51.100.0/24"), pfx("203.0.113.9/32")}, ""); err != nil {
		t.Fatal(err)
	}
	check("unbanned", map[string]int{"v4": 2, "v6": 1, "v6net": 1})
	f.now = f.now.Add(2 * time.Hour)
	if _, err := f.core.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	check("swept", map[string]int{"v4": 1, "v6": 1})
	f.open(t)
	check("restarted", map[string]int{"v4": 1, "v6": 1})
	if _, err := f.core.UnbanAll(ctx, ""); err != nil {
		t.Fatal(err)
	}
	check("flushed", map[string]int{})
}

// TestImportInManyParts: an import larger than the parts' buffers (so
// they are reused) puts every prefix, with its template's jail and
// expiry, in the kernel, the store, the mirror and before the observers,
// each exactly once; the backend failing half-way keeps and records what
// it took.
func TestImportInManyParts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n, part = 50_000, 4096
	ps := make([]netip.Prefix, n)
	for i := range ps {
		ps[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x40, byte(i >> 16), byte(i >> 8), byte(i)}), 64)
	}
	tmpl := bans.Ban{Jail: "import", Expires: f.now.Add(time.Hour)}
	got, err := f.core.Import(ctx, tmpl, ps, part)
	if err != nil || got != n {
		t.Fatalf("import: %d, %v", got, err)
	}
	stored, err := f.st.Bans()
	if err != nil {
		t.Fatal(err)
	}
	told := map[netip.Prefix]int{}
	f.notes.mu.Lock()
	for _, ev := range f.notes.evs {
		told[ev.Prefix]++
	}
	f.notes.mu.Unlock()
	if len(f.be.m) != n || len(stored) != n || f.core.Counts()["import"] != n || len(told) != n {
		t.Fatalf("kernel %d, store %d, mirror %d, observers %d; want %d each", len(f.be.m), len(stored), f.core.Counts()["import"], len(told), n)
	}
	for _, p := range ps {
		b, ok := f.be.m[p]
		if !ok || b.Jail != "import" || !b.Expires.Equal(tmpl.Expires) {
			t.Fatalf("kernel has %s as %+v %v", p, b, ok)
		}
		if m, ok := f.core.Lookup(p); !ok || m.Jail != "import" {
			t.Fatalf("mirror has %s as %+v %v", p, m, ok)
		}
	}
	for p, k := range told {
		if k != 1 {
			t.Fatalf("observers told of %s %d times", p, k)
		}
	}

	// The backend refuses from the fifth part on: four parts are banned
	// and booked, the error says so.
	more := make([]netip.Prefix, n)
	for i := range more {
		more[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x50, byte(i >> 16), byte(i >> 8), byte(i)}), 64)
	}
	f.be.failAfter(4*part, errors.New("map full"))
	got, err = f.core.Import(ctx, tmpl, more, part)
	if err == nil || got != 4*part {
		t.Fatalf("import with a failing backend: %d banned, %v; want %d and an error", got, err, 4*part)
	}
	if c := f.core.Counts()["import"]; c != n+4*part {
		t.Fatalf("mirror holds %d after a partial import, want %d", c, n+4*part)
	}
}
