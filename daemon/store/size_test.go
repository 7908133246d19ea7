package store

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xdpban/xdpban/internal/bans"
)

// BenchmarkDatabaseSize stores b.N-scaled imports the way `ban --from-file`
// does (batches of 10,000 CLI bans with a bantime) and reports the file's
// bytes per ban: the target is <= 100 at 1M (make bench reports it).
// XDPBAN_STORE_BANS sets the count (default 1,000,000).
func BenchmarkDatabaseSize(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("XDPBAN_STORE_BANS"); s != "" {
		if _, err := fmtSscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		path := filepath.Join(b.TempDir(), "xdpban.db")
		s, err := Open(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		exp := time.Now().Add(time.Hour)
		bsz := 10_000
		if s := os.Getenv("XDPBAN_STORE_BATCH"); s != "" {
			fmt.Sscan(s, &bsz)
		}
		batch := make([]bans.Ban, 0, bsz)
		rnd := uint32(2463534242)
		for i := 0; i < n; i++ {
			// xorshift: addresses in random order, as an attack's are.
			rnd ^= rnd << 13
			rnd ^= rnd >> 17
			rnd ^= rnd << 5
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], rnd)
			batch = append(batch, bans.Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Jail: "manual", Expires: exp})
			if len(batch) == cap(batch) || i == n-1 {
				if err := s.Commit(batch, nil); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		s.Close()
		st, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Size())/float64(n), "bytes/ban")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		db.View(func(tx *bolt.Tx) error {
			bs := tx.Bucket(bucketBans).Stats()
			b.ReportMetric(float64(bs.LeafAlloc+bs.BranchAlloc)/float64(n), "alloc-bytes/ban")
			b.ReportMetric(float64(bs.LeafInuse+bs.BranchInuse)/float64(n), "inuse-bytes/ban")
			return nil
		})
		db.Close()
	}
}

func fmtSscan(s string, n *int) (int, error) { return fmt.Sscan(s, n) }
