package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xdpban/xdpban/internal/bans"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBansSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	s := open(t, path)
	exp := time.Unix(2000000000, 123).UTC()
	in := []bans.Ban{
		{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Jail: "sshd", Expires: exp},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Jail: "manual"},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Jail: "manual", Expires: exp},
		// Same 4 address bytes as the /24 above read as IPv6: must not collide.
		{Prefix: netip.MustParsePrefix("c633:6400::/24"), Jail: "v6"},
	}
	if err := s.PutBans(in...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	got, err := s.Bans()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d bans, want %d: %v", len(got), len(in), got)
	}
	byP := map[netip.Prefix]bans.Ban{}
	for _, b := range got {
		byP[b.Prefix] = b
	}
	for _, w := range in {
		g, ok := byP[w.Prefix]
		if !ok || g.Jail != w.Jail || !g.Expires.Equal(w.Expires) {
			t.Errorf("ban %s: got %+v, want %+v", w.Prefix, g, w)
		}
	}
	n, err := s.DeleteBans(in[0].Prefix, netip.MustParsePrefix("203.0.113.1/32"))
	if err != nil || n != 1 {
		t.Fatalf("DeleteBans = %d, %v; want 1", n, err)
	}
	if _, ok, _ := s.Ban(in[0].Prefix); ok {
		t.Fatal("deleted ban still stored")
	}
	if n, err := s.DeleteAllBans(); err != nil || n != 3 {
		t.Fatalf("DeleteAllBans = %d, %v; want 3", n, err)
	}
	if got, _ := s.Bans(); len(got) != 0 {
		t.Fatalf("bans left after DeleteAllBans: %v", got)
	}
}

func TestCorruptDatabaseMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xdpban.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bolt file\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	defer s.Close()
	moved := s.Recovered()
	if !strings.HasPrefix(moved, path+".corrupt-") {
		t.Fatalf("Recovered() = %q, want %s.corrupt-<ts>", moved, path)
	}
	if b, err := os.ReadFile(moved); err != nil || !strings.HasPrefix(string(b), "not a bolt file") {
		t.Fatalf("moved file not kept intact: %v", err)
	}
	if err := s.PutBans(bans.Ban{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Jail: "j"}); err != nil {
		t.Fatalf("new database not usable: %v", err)
	}
}

func TestTruncatedDatabaseMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xdpban.db")
	s := open(t, path)
	s.PutBans(bans.Ban{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Jail: "j"})
	s.Close()
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if s.Recovered() == "" {
		t.Fatal("truncated database was not detected")
	}
}

func TestLockedDatabaseIsNotMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xdpban.db")
	s := open(t, path)
	defer s.Close()
	_, err := Open(path, nil)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("a locked database was moved aside: %v", m)
	}
}

func TestHistoryAndPurge(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "x.db"))
	defer s.Close()
	now := time.Now()
	a := netip.MustParsePrefix("192.0.2.7/32")
	b := netip.MustParsePrefix("192.0.2.8/32")
	for i, p := range []netip.Prefix{a, a, a, b} {
		e := Event{Prefix: p, Jail: "sshd", At: now.Add(-time.Duration(3-i) * 24 * time.Hour), BanTime: time.Hour}
		if err := s.RecordBan(e); err != nil {
			t.Fatal(err)
		}
	}
	s.RecordBan(Event{Prefix: a, Jail: "other", At: now, BanTime: time.Minute})
	if h, _ := s.History(a, "sshd", now.Add(-100*24*time.Hour)); len(h) != 3 {
		t.Fatalf("history of a in sshd: %d events, want 3", len(h))
	}
	if h, _ := s.History(a, "", now.Add(-36*time.Hour)); len(h) != 2 {
		t.Fatalf("history of a in the last 36h: %d events, want 2 (one sshd, one other)", len(h))
	}
	// b is still banned: its history must survive the purge.
	s.PutBans(bans.Ban{Prefix: b, Jail: "sshd"})
	n, err := s.Purge(now.Add(-12 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("purged %d events, want 3 (a's three old sshd bans)", n)
	}
	if h, _ := s.History(a, "", time.Time{}); len(h) != 1 || h[0].Jail != "other" {
		t.Fatalf("a's history after purge: %v", h)
	}
	if h, _ := s.History(b, "", time.Time{}); len(h) != 1 {
		t.Fatalf("active ban's history purged: %v", h)
	}
}

func TestPositions(t *testing.T) {
	type pos struct {
		Offset int64
		Cursor string
	}
	path := filepath.Join(t.TempDir(), "x.db")
	s := open(t, path)
	if err := s.SavePosition("sshd|file:/var/log/auth.log", pos{Offset: 4096}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePosition("sshd|journal", pos{Cursor: "s=abc;i=1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePosition("", pos{}); err == nil {
		t.Fatal("empty source accepted")
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	var p pos
	ok, err := s.LoadPosition("sshd|file:/var/log/auth.log", &p)
	if err != nil || !ok || p.Offset != 4096 {
		t.Fatalf("LoadPosition = %+v, %v, %v", p, ok, err)
	}
	if ok, _ := s.LoadPosition("/nope", &p); ok {
		t.Fatal("unknown source has a position")
	}
	ok, err = s.LoadPosition("sshd|journal", &p)
	if err != nil || !ok || p.Cursor != "s=abc;i=1" {
		t.Fatalf("journal position = %+v, %v, %v", p, ok, err)
	}
	if keys, _ := s.PositionKeys(); len(keys) != 2 {
		t.Fatalf("PositionKeys = %v", keys)
	}
}

func TestBanCount(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "x.db"))
	defer s.Close()
	p := netip.MustParsePrefix("2001:db8::/64")
	for i := range 3 {
		s.RecordBan(Event{Prefix: p, Jail: "sshd", At: time.Now().Add(time.Duration(i) * time.Second), BanTime: time.Hour})
	}
	s.RecordBan(Event{Prefix: p, Jail: "nginx", At: time.Now(), BanTime: time.Hour})
	if n, err := s.BanCount("sshd", p); err != nil || n != 3 {
		t.Fatalf("BanCount = %d, %v; want 3", n, err)
	}
	if n, _ := s.BanCount("sshd", netip.MustParsePrefix("2001:db8:1::/64")); n != 0 {
		t.Fatalf("BanCount of another prefix = %d", n)
	}
}

// Bans keep their scope and origin across a reopen, and a database
// written by the first format (JSON records) is still read.
func TestBanRecordFormats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xdpban.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ssh, _ := bans.ParseScope("tcp", "ssh")
	exp := time.Unix(1900000000, 123456789)
	want := []bans.Ban{
		{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Jail: "sshd", Expires: exp, Scope: ssh, Origin: "bastion-b"},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Jail: "manual"},
	}
	if err := s.Commit(want, nil); err != nil {
		t.Fatal(err)
	}
	// A record as the JSON format wrote it.
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBans).Put(banKey(netip.MustParsePrefix("198.51.100.0/24")), []byte(`{"jail":"recidive","expires":1900000000000000000}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Bans()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d bans: %+v", len(got), got)
	}
	byPrefix := map[string]bans.Ban{}
	for _, b := range got {
		byPrefix[b.Prefix.String()] = b
	}
	for _, w := range want {
		g := byPrefix[w.Prefix.String()]
		if g.Jail != w.Jail || !g.Expires.Equal(w.Expires) || g.Scope.String() != w.Scope.String() || g.Origin != w.Origin {
			t.Errorf("%s: got %+v, want %+v", w.Prefix, g, w)
		}
	}
	if old := byPrefix["198.51.100.0/24"]; old.Jail != "recidive" || !old.Expires.Equal(time.Unix(1900000000, 0)) || !old.Scope.All() {
		t.Errorf("JSON record read as %+v", old)
	}
	// Within one batch the last of duplicates wins.
	if err := s.Commit([]bans.Ban{{Prefix: want[0].Prefix, Jail: "a"}, {Prefix: want[0].Prefix, Jail: "b"}}, nil); err != nil {
		t.Fatal(err)
	}
	if b, ok, _ := s.Ban(want[0].Prefix); !ok || b.Jail != "b" {
		t.Errorf("duplicate in a batch: stored %+v", b)
	}
}
