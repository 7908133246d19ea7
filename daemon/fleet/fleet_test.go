package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// memSink is a host's ban table as the fleet sees it: local bans have
// the empty origin, remote ones their node's.
type memSink struct {
	node   string
	ignore []netip.Prefix

	mu     sync.Mutex
	bans   map[netip.Prefix]bans.Ban
	unbans int
}

func newSink(node string, ignore ...string) *memSink {
	s := &memSink{node: node, bans: map[netip.Prefix]bans.Ban{}}
	for _, i := range ignore {
		s.ignore = append(s.ignore, netip.MustParsePrefix(i))
	}
	return s
}

func (s *memSink) RemoteBans(_ context.Context, rs []Record) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	why := make([]string, len(rs))
	for i, r := range rs {
		refused := false
		for _, ig := range s.ignore {
			if ig.Overlaps(r.Prefix) {
				refused = true
			}
		}
		if refused {
			why[i] = "ignoreip"
			continue
		}
		if cur, ok := s.bans[r.Prefix]; ok && (RecordOf(cur, "", "").Covers(r)) {
			continue
		}
		s.bans[r.Prefix] = r.Ban()
	}
	return why
}

func (s *memSink) RemoteUnban(_ context.Context, ps []netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		delete(s.bans, p)
		s.unbans++
	}
}

func (s *memSink) Reconcile(_ context.Context, live map[netip.Prefix]Record, deleted []netip.Prefix) []bans.Ban {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range deleted {
		delete(s.bans, p)
	}
	var re []bans.Ban
	for p, b := range s.bans {
		r, ok := live[p]
		if b.Origin != "" {
			if !ok {
				delete(s.bans, p)
			}
			continue
		}
		if !ok || !r.Covers(RecordOf(b, s.node, "")) {
			re = append(re, b)
		}
	}
	return re
}

// local bans p here, as the daemon does before publishing.
func (s *memSink) local(b bans.Ban) {
	s.mu.Lock()
	s.bans[b.Prefix] = b
	s.mu.Unlock()
}

func (s *memSink) get(p netip.Prefix) (bans.Ban, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bans[p]
	return b, ok
}

func (s *memSink) set() map[netip.Prefix]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[netip.Prefix]bool{}
	for p, b := range s.bans {
		if b.Expires.IsZero() || time.Now().Before(b.Expires) {
			out[p] = true
		}
	}
	return out
}

// member is one host: its fleet, store (outbox) and sink.
type member struct {
	cfg    config.Fleet
	st     *store.Store
	sink   *memSink
	f      *Fleet
	cancel context.CancelFunc
	done   chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newMember opens a host's store and sink; start runs its fleet.
func newMember(t *testing.T, cfg config.Fleet, ignore ...string) *member {
	t.Helper()
	cfg.Enabled = true
	if cfg.StoreDir == "" {
		cfg.StoreDir = filepath.Join(t.TempDir(), "js")
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "xdpban.db"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := &member{cfg: cfg, st: st, sink: newSink(cfg.Node, ignore...)}
	m.start(t)
	t.Cleanup(m.stop)
	return m
}

func (m *member) start(t *testing.T) {
	t.Helper()
	f, err := New(m.cfg, m.st, m.sink, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.f, m.cancel, m.done = f, cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		f.Run(ctx)
	}()
}

func (m *member) stop() {
	if m.f == nil {
		return
	}
	m.cancel()
	<-m.done
	m.f.Close()
	m.f = nil
}

// ban is a local decision: enforced here first, then published.
func (m *member) ban(t *testing.T, b bans.Ban) {
	t.Helper()
	m.sink.local(b)
	if err := m.f.Publish([]bans.Ban{b}, "test"); err != nil {
		t.Fatal(err)
	}
}

func (m *member) unban(t *testing.T, p netip.Prefix) {
	t.Helper()
	m.sink.RemoteUnban(context.Background(), []netip.Prefix{p})
	if err := m.f.Unban([]netip.Prefix{p}); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func connected(t *testing.T, ms ...*member) {
	t.Helper()
	for _, m := range ms {
		eventually(t, 20*time.Second, m.cfg.Node+" in step with the bucket", func() bool {
			m.f.mu.Lock()
			snap := m.f.lastSnap
			m.f.mu.Unlock()
			return !snap.IsZero() && m.f.Status().Connected
		})
	}
}

// pair is a host running an embedded node and one that is its client.
func pair(t *testing.T, ignoreB ...string) (a, b *member) {
	t.Helper()
	a = newMember(t, config.Fleet{Node: "a", Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t))})
	b = newMember(t, config.Fleet{Node: "b", Servers: []string{a.f.Server().ClientURL()}}, ignoreB...)
	connected(t, a, b)
	return a, b
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func bucketEntry(t *testing.T, m *member, p netip.Prefix) (jetstream.KeyValueEntry, error) {
	t.Helper()
	m.f.mu.Lock()
	kv := m.f.kv
	m.f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return kv.Get(ctx, Key(p))
}

func TestPublishReceive(t *testing.T) {
	a, b := pair(t)
	v4 := bans.Ban{Prefix: pfx("192.0.2.1/32"), Jail: "sshd", Expires: time.Now().Add(time.Hour).Truncate(time.Second)}
	v6 := bans.Ban{Prefix: pfx("2001:db8:1::/64"), Jail: "manual"}
	a.ban(t, v4)
	a.ban(t, v6)
	eventually(t, 5*time.Second, "b holds a's bans", func() bool { return len(b.sink.set()) == 2 })
	got, _ := b.sink.get(v4.Prefix)
	if got.Origin != "a" || got.Jail != "sshd" || !got.Expires.Equal(v4.Expires) {
		t.Fatalf("b holds %+v, want a's sshd ban ending %v", got, v4.Expires)
	}
	if got, _ := b.sink.get(v6.Prefix); got.Origin != "a" || !got.Permanent() {
		t.Fatalf("b holds %+v, want a's permanent ban", got)
	}
	st := a.f.Status()
	if st.Published != 2 || st.Outbox != 0 {
		t.Fatalf("a: published %d, outbox %d; want 2, 0", st.Published, st.Outbox)
	}
	if st := b.f.Status(); st.Received != 2 {
		t.Fatalf("b received %d, want 2", st.Received)
	}
}

// A host refuses a remote ban that touches its ignore list, and counts
// why; the ban still reaches the others.
func TestIgnoreWins(t *testing.T) {
	a, b := pair(t, "198.51.100.7/32")
	a.ban(t, bans.Ban{Prefix: pfx("198.51.100.0/24"), Jail: "manual"})
	a.ban(t, bans.Ban{Prefix: pfx("203.0.113.9/32"), Jail: "manual"})
	eventually(t, 5*time.Second, "b applies the ban it does not ignore", func() bool { return b.sink.set()[pfx("203.0.113.9/32")] })
	eventually(t, 5*time.Second, "b counts the refused one", func() bool { return b.f.Status().Refused["ignoreip"] == 1 })
	if b.sink.set()[pfx("198.51.100.0/24")] {
		t.Fatal("b enforces a remote /24 covering its ignoreip 198.51.100.7")
	}
}

// An extended temporary ban keeps a TTL: the key ends when the longer
// ban does, never later (a kv.Put would have made it permanent).
func TestTTLExpiry(t *testing.T) {
	a, b := pair(t)
	p := pfx("192.0.2.10/32")
	start := time.Now()
	a.ban(t, bans.Ban{Prefix: p, Jail: "sshd", Expires: start.Add(2 * time.Second)})
	eventually(t, 5*time.Second, "b holds the ban", func() bool { _, ok := b.sink.get(p); return ok })
	// Extended from b this time: the CAS path.
	b.ban(t, bans.Ban{Prefix: p, Jail: "sshd", Expires: start.Add(4 * time.Second)})
	eventually(t, 5*time.Second, "the bucket holds the extension", func() bool {
		e, err := bucketEntry(t, a, p)
		if err != nil {
			return false
		}
		r, err := DecodeRecord(e.Key(), e.Value())
		return err == nil && r.Origin == "b"
	})
	eventually(t, 5*time.Second, "a holds the extension", func() bool {
		got, _ := a.sink.get(p)
		return got.Expires.Equal(start.Add(4 * time.Second))
	})
	// A shorter copy never shortens it.
	a.ban(t, bans.Ban{Prefix: p, Jail: "sshd", Expires: start.Add(3 * time.Second)})
	eventually(t, 5*time.Second, "a's outbox drained", func() bool { return a.f.Status().Outbox == 0 })
	if e, err := bucketEntry(t, a, p); err != nil {
		t.Fatalf("read the key: %v", err)
	} else if r, _ := DecodeRecord(e.Key(), e.Value()); !r.Expires.Equal(start.Add(4 * time.Second)) {
		t.Fatalf("bucket holds the ban until %v, want the longer %v", r.Expires, start.Add(4*time.Second))
	}
	eventually(t, 10*time.Second, "the key ends with the extended ban", func() bool {
		_, err := bucketEntry(t, a, p)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	if el := time.Since(start); el < 4*time.Second {
		t.Fatalf("the key ended after %v, before the extended ban (4s)", el)
	}
	if len(a.sink.set()) != 0 || len(b.sink.set()) != 0 {
		t.Fatalf("bans left after the expiry: a %v, b %v", a.sink.set(), b.sink.set())
	}
}

// An unban anywhere lifts the ban everywhere, its origin included.
func TestDeleteLifts(t *testing.T) {
	a, b := pair(t)
	p := pfx("203.0.113.5/32")
	a.ban(t, bans.Ban{Prefix: p, Jail: "manual", Expires: time.Now().Add(time.Hour)})
	eventually(t, 5*time.Second, "b holds the ban", func() bool { _, ok := b.sink.get(p); return ok })
	b.unban(t, p)
	eventually(t, 5*time.Second, "a lifts its own ban unbanned on b", func() bool { _, ok := a.sink.get(p); return !ok })
	if _, err := bucketEntry(t, a, p); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("key after the unban: %v, want not found", err)
	}
}

// A received ban is never published again: no loops.
func TestNoRepublish(t *testing.T) {
	a, b := pair(t)
	p := pfx("192.0.2.77/32")
	a.ban(t, bans.Ban{Prefix: p, Jail: "sshd", Expires: time.Now().Add(time.Hour)})
	eventually(t, 5*time.Second, "b holds the ban", func() bool { _, ok := b.sink.get(p); return ok })
	e1, err := bucketEntry(t, a, p)
	if err != nil {
		t.Fatal(err)
	}
	// A reconnect replays the snapshot; still nothing goes out from b.
	b.stop()
	b.start(t)
	connected(t, b)
	time.Sleep(200 * time.Millisecond)
	if st := b.f.Status(); st.Published != 0 || st.Outbox != 0 {
		t.Fatalf("b published %d (outbox %d) of bans it received", st.Published, st.Outbox)
	}
	e2, err := bucketEntry(t, a, p)
	if err != nil {
		t.Fatal(err)
	}
	if e2.Revision() != e1.Revision() {
		t.Fatalf("key revision %d -> %d: someone republished a's ban", e1.Revision(), e2.Revision())
	}
}

// A host away while others ban and unban ends with exactly the live set.
func TestCatchUp(t *testing.T) {
	a, b := pair(t)
	gone := pfx("192.0.2.1/32")
	short := pfx("192.0.2.2/32")
	a.ban(t, bans.Ban{Prefix: gone, Jail: "manual", Expires: time.Now().Add(time.Hour)})
	eventually(t, 5*time.Second, "b holds the ban", func() bool { _, ok := b.sink.get(gone); return ok })
	b.stop()
	// Meanwhile: an unban, a ban that ends before b is back, new bans,
	// and a local ban on b nobody heard of.
	a.unban(t, gone)
	a.ban(t, bans.Ban{Prefix: short, Jail: "sshd", Expires: time.Now().Add(time.Second)})
	want := map[netip.Prefix]bool{}
	var bs []bans.Ban
	for i := range 200 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32)
		bs = append(bs, bans.Ban{Prefix: p, Jail: "sshd", Expires: time.Now().Add(time.Hour)})
		want[p] = true
	}
	for _, x := range bs {
		a.sink.local(x)
	}
	if err := a.f.Publish(bs, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a published", func() bool { return a.f.Status().Outbox == 0 })
	bLocal := bans.Ban{Prefix: pfx("203.0.113.50/32"), Jail: "manual", Expires: time.Now().Add(time.Hour)}
	b.sink.local(bLocal) // decided while its fleet was down, never queued
	want[bLocal.Prefix] = true
	time.Sleep(1500 * time.Millisecond)
	b.start(t)
	connected(t, b)
	eventually(t, 5*time.Second, "b ends with the live set", func() bool { return equalSets(b.sink.set(), want) })
	eventually(t, 5*time.Second, "a learns b's local ban from b's reconcile", func() bool { _, ok := a.sink.get(bLocal.Prefix); return ok })
}

func equalSets(a, b map[netip.Prefix]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// Bans decided while NATS is down are enforced at once and published on
// reconnect.
func TestOutboxReplay(t *testing.T) {
	a := newMember(t, config.Fleet{Node: "a", Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t))})
	url := a.f.Server().ClientURL()
	b := newMember(t, config.Fleet{Node: "b", Servers: []string{url}})
	connected(t, a, b)
	// Take a's node down and bring it back on the same port and store.
	a.stop()
	eventually(t, 10*time.Second, "b sees the node gone", func() bool { return !b.f.Status().Connected })
	p := pfx("198.51.100.200/32")
	b.ban(t, bans.Ban{Prefix: p, Jail: "manual", Expires: time.Now().Add(time.Hour)})
	if st := b.f.Status(); st.Outbox != 1 {
		t.Fatalf("b's outbox holds %d, want the 1 ban made while down", st.Outbox)
	}
	a.start(t)
	connected(t, a, b)
	eventually(t, 10*time.Second, "a receives the ban b made while down", func() bool { _, ok := a.sink.get(p); return ok })
	eventually(t, 5*time.Second, "b's outbox empty after the replay", func() bool { return b.f.Status().Outbox == 0 })
}

// Three embedded nodes, replicas 3: with one node killed (the
// publisher's own), bans still reach every host.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster takes seconds to elect")
	}
	names := []string{"a", "b", "c"}
	client := make([]int, 3)
	cluster := make([]int, 3)
	for i := range names {
		client[i], cluster[i] = freePort(t), freePort(t)
	}
	var urls []string
	for i := range names {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	ms := make([]*member, 3)
	var wg sync.WaitGroup
	for i, n := range names {
		var routes []string
		for j := range names {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cluster[j]))
			}
		}
		cfg := config.Fleet{Node: n, Listen: fmt.Sprintf("127.0.0.1:%d", client[i]),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", cluster[i]), Routes: routes, Replicas: 3,
			Servers: urls}
		wg.Add(1)
		go func() {
			// Each node waits for its peers to be ready: start together.
			defer wg.Done()
			ms[i] = newMember(t, cfg)
		}()
	}
	wg.Wait()
	connected(t, ms...)
	p1 := pfx("192.0.2.31/32")
	ms[0].ban(t, bans.Ban{Prefix: p1, Jail: "sshd", Expires: time.Now().Add(time.Hour)})
	for _, m := range ms[1:] {
		eventually(t, 10*time.Second, m.cfg.Node+" holds a's ban", func() bool { _, ok := m.sink.get(p1); return ok })
	}
	// Kill a's node: a's client moves to another.
	ms[0].f.Server().Shutdown()
	ms[0].f.Server().WaitForShutdown()
	p2 := pfx("192.0.2.32/32")
	ms[0].ban(t, bans.Ban{Prefix: p2, Jail: "sshd", Expires: time.Now().Add(time.Hour)})
	for _, m := range ms[1:] {
		eventually(t, 20*time.Second, m.cfg.Node+" holds the ban a made after its node died", func() bool { _, ok := m.sink.get(p2); return ok })
	}
	p3 := pfx("2001:db8:3::/64")
	ms[2].ban(t, bans.Ban{Prefix: p3, Jail: "sshd", Expires: time.Now().Add(time.Hour)})
	for _, m := range ms[:2] {
		eventually(t, 20*time.Second, m.cfg.Node+" holds c's ban", func() bool { _, ok := m.sink.get(p3); return ok })
	}
	// One node's shutdown waits on the others; stopped together they
	// do not wait in turn.
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.stop()
		}()
	}
	wg.Wait()
}
