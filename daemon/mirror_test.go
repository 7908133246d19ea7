package daemon

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
)

func TestMirrorKeyRoundTrip(t *testing.T) {
	seen := map[store.Key]netip.Prefix{}
	for _, s := range []string{"192.0.2.7/32", "192.0.2.0/24", "c000:200::/24", "2001:db8::/64",
		"2001:db8::1/128", "198.51.100.0/25", "2001:db8::/32", "::/16"} {
		p := pfx(s)
		k := store.KeyOf(p)
		if got := k.Prefix(); got != p {
			t.Errorf("%s came back as %s", p, got)
		}
		if o, dup := seen[k]; dup {
			t.Errorf("%s and %s share a key", o, p)
		}
		seen[k] = p
	}
}

// countingBackend counts the calls a sweep makes into the kernel.
type countingBackend struct {
	*memBackend
	expire, del atomic.Int32
}

func (b *countingBackend) Expire(ctx context.Context, now time.Time) ([]bans.Ban, error) {
	b.expire.Add(1)
	return b.memBackend.Expire(ctx, now)
}

func (b *countingBackend) Delete(ctx context.Context, ps ...netip.Prefix) (int, error) {
	b.del.Add(1)
	return b.memBackend.Delete(ctx, ps...)
}

// A sweep before the earliest expiry touches neither the backend nor the
// mirror's million entries; at the expiry it lifts exactly what ended.
func TestSweepWaitsForEarliestExpiry(t *testing.T) {
	f := newFixture(t)
	cb := &countingBackend{memBackend: f.be}
	f.core.Backend = cb
	ctx := context.Background()
	short := bans.Ban{Prefix: pfx("192.0.2.1/32"), Jail: "sshd", Expires: f.now.Add(time.Hour)}
	long := bans.Ban{Prefix: pfx("2001:db8::/64"), Jail: "manual", Expires: f.now.Add(2 * time.Hour)}
	perm := bans.Ban{Prefix: pfx("198.51.100.0/24"), Jail: "manual"}
	if err := f.core.Ban(ctx, []bans.Ban{short, long, perm}); err != nil {
		t.Fatal(err)
	}
	// The first sweep is a full one (backend asked for expired entries).
	if n, err := f.core.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("first sweep = %d, %v", n, err)
	}
	e0, d0 := cb.expire.Load(), cb.del.Load()
	if e0 != 1 {
		t.Fatalf("first sweep called Expire %d times, want 1", e0)
	}
	start := f.now
	for range 3 {
		f.now = f.now.Add(time.Minute)
		if n, err := f.core.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("sweep before any expiry = %d, %v", n, err)
		}
	}
	if cb.expire.Load() != e0 || cb.del.Load() != d0 {
		t.Fatalf("sweeps before the earliest expiry called the backend (expire %d→%d, delete %d→%d)",
			e0, cb.expire.Load(), d0, cb.del.Load())
	}
	f.now = start.Add(61 * time.Minute)
	if n, err := f.core.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the first expiry = %d, %v; want 1", n, err)
	}
	if _, ok := f.be.has(short.Prefix); ok {
		t.Fatal("ended ban still in the backend")
	}
	if _, ok, _ := f.st.Ban(short.Prefix); ok {
		t.Fatal("ended ban still in the store")
	}
	if _, ok := f.core.Lookup(short.Prefix); ok {
		t.Fatal("ended ban still in the mirror")
	}
	for _, b := range []bans.Ban{long, perm} {
		if _, ok := f.be.has(b.Prefix); !ok {
			t.Fatalf("%s lifted before its time", b.Prefix)
		}
	}
	d1 := cb.del.Load()
	f.now = f.now.Add(time.Minute)
	if n, err := f.core.Sweep(ctx); err != nil || n != 0 || cb.del.Load() != d1 {
		t.Fatalf("sweep after lifting = %d, %v, %d deletes", n, err, cb.del.Load()-d1)
	}
	// The next expiry is the long ban's.
	f.now = f.now.Add(time.Hour)
	if n, err := f.core.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the second expiry = %d, %v; want 1", n, err)
	}
	if got := f.core.Counts(); len(got) != 1 || got["manual"] != 1 {
		t.Fatalf("counts after the sweeps %v, want manual: 1 (the permanent ban)", got)
	}
}

// The packed mirror gives back jail and expiry as banned, across a
// restart, and counts per jail without listing.
func TestMirrorAcrossRestore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bs := []bans.Ban{
		{Prefix: pfx("192.0.2.1/32"), Jail: "sshd", Expires: f.now.Add(time.Hour + 123*time.Nanosecond)},
		{Prefix: pfx("192.0.2.2/32"), Jail: "sshd"},
		{Prefix: pfx("2001:db8:1::/64"), Jail: "recidive", Expires: f.now.Add(24 * time.Hour)},
	}
	if err := f.core.Ban(ctx, bs); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		if got := f.core.Counts(); len(got) != 2 || got["sshd"] != 2 || got["recidive"] != 1 {
			t.Fatalf("round %d: counts %v", round, got)
		}
		for _, b := range bs {
			got, ok := f.core.Lookup(b.Prefix)
			if !ok || got.Jail != b.Jail || !got.Expires.Equal(b.Expires) {
				t.Fatalf("round %d: lookup %s = %+v, %v; want %+v", round, b.Prefix, got, ok, b)
			}
		}
		if a := f.core.Active("sshd"); len(a) != 2 || a[0].Prefix != bs[0].Prefix {
			t.Fatalf("round %d: active sshd %v", round, a)
		}
		f.open(t)
	}
}

// newAdder records which add path the Core took.
type newAdder struct {
	*memBackend
	fresh, plain int
}

func (b *newAdder) AddNew(ctx context.Context, bs ...bans.Ban) error {
	b.fresh++
	return b.memBackend.Add(ctx, bs...)
}

func (b *newAdder) Add(ctx context.Context, bs ...bans.Ban) error {
	b.plain++
	return b.memBackend.Add(ctx, bs...)
}

// Bans none of which is in force take the backend's fast path; a batch
// with one already banned takes the path that keeps counters.
func TestBanUsesAddNewOnlyForNewPrefixes(t *testing.T) {
	f := newFixture(t)
	nb := &newAdder{memBackend: f.be}
	f.core.Backend = nb
	ctx := context.Background()
	a := bans.Ban{Prefix: pfx("192.0.2.1/32"), Jail: "sshd", Expires: f.now.Add(time.Hour)}
	b := bans.Ban{Prefix: pfx("2001:db8:1::/64"), Jail: "sshd", Expires: f.now.Add(time.Hour)}
	if err := f.core.Ban(ctx, []bans.Ban{a, b}); err != nil {
		t.Fatal(err)
	}
	if nb.fresh != 1 || nb.plain != 0 {
		t.Fatalf("new bans: AddNew %d, Add %d; want 1, 0", nb.fresh, nb.plain)
	}
	c := bans.Ban{Prefix: pfx("192.0.2.3/32"), Jail: "sshd", Expires: f.now.Add(time.Hour)}
	a.Expires = f.now.Add(2 * time.Hour)
	if err := f.core.Ban(ctx, []bans.Ban{c, a}); err != nil {
		t.Fatal(err)
	}
	if nb.fresh != 1 || nb.plain != 1 {
		t.Fatalf("a re-ban: AddNew %d, Add %d; want 1, 1", nb.fresh, nb.plain)
	}
	if got, _ := f.be.has(a.Prefix); !got.Expires.Equal(a.Expires) {
		t.Fatalf("re-ban not applied: %+v", got)
	}
}
