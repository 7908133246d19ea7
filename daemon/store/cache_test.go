package store

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// rssFileKiB is this process's file-backed resident set.
func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseCacheDropsFilePages: a full read of a 200k-ban database puts
// its pages in the resident set; ReleaseCache takes them out again, and
// the bans still read back.
func TestReleaseCacheDropsFilePages(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "bans.db"))
	const n = 200_000
	bs := make([]bans.Ban, n)
	exp := time.Now().Add(time.Hour)
	for i := range bs {
		bs[i] = bans.Ban{Prefix: netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::/64", i>>16, i&0xffff)), Jail: "import", Expires: exp}
	}
	if err := s.Commit(bs, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseCache(); err != nil {
		t.Fatal(err)
	}
	base := rssFileKiB(t)
	count := func() int {
		k := 0
		if err := s.EachBan(func(bans.Ban) error { k++; return nil }); err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := count(); k != n {
		t.Fatalf("read %d bans, want %d", k, n)
	}
	read := rssFileKiB(t)
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	dbKiB := int(fi.Size() / 1024)
	if read-base < dbKiB/2 {
		t.Fatalf("reading the %d KiB database added only %d KiB of file pages: the test shows nothing", dbKiB, read-base)
	}
	if err := s.ReleaseCache(); err != nil {
		t.Fatal(err)
	}
	after := rssFileKiB(t)
	t.Logf("database %d KiB; file-backed RSS %d KiB, %d after a full read, %d after ReleaseCache", dbKiB, base, read, after)
	if read-after < dbKiB/2 {
		t.Fatalf("ReleaseCache took %d KiB out of the resident set, want most of the %d KiB database", read-after, dbKiB)
	}
	if k := count(); k != n {
		t.Fatalf("after ReleaseCache read %d bans, want %d", k, n)
	}
}
