// Package store is xdpban's durable state: the active bans (so a restarted
// daemon, or one started after a reboot, puts every unexpired ban back),
// the per-address ban history bantime.increment needs, and the log
// positions (file offsets, journal cursors) that stop a restart from counting a
// failure twice.
//
// It is one bbolt file. Every write is a committed, fsync'd transaction
// before the call returns, which is what lets the CLI report success only
// once a ban survives a crash.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
)

// ErrLocked: another process (a running daemon) holds the database.
var ErrLocked = errors.New("database in use by another process")

var (
	bucketBans      = []byte("bans")
	bucketHistory   = []byte("history")
	bucketPositions = []byte("positions")
	bucketMeta      = []byte("meta")
	bucketOutbox    = []byte("outbox") // outbox.go
)

// lockTimeout bounds the wait for bbolt's flock: a CLI running while the
// daemon holds the file must fail fast and go through the socket instead.
const lockTimeout = 500 * time.Millisecond

// Store is the open database. Safe for concurrent use.
type Store struct {
	lock      *os.File // the state directory's flock
	db        *bolt.DB
	path      string
	recovered string
}

// Open opens (creating it and its directory) the database at path. A file
// that is not a readable bbolt database is moved aside to
// path.corrupt-<unix time> with an error log line and a fresh one is
// created; Recovered then names the moved file so the caller can import
// what the kernel still enforces.
func Open(path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	lock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	db, err := openChecked(path)
	var moved string
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	if err != nil {
		if errors.Is(err, ErrLocked) || errors.Is(err, os.ErrPermission) {
			return nil, err
		}
		moved = fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, moved); rerr != nil {
			return nil, fmt.Errorf("open %s: %w; moving it aside failed too: %v", path, err, rerr)
		}
		log.Error("ban database unreadable, moved aside; starting a new one from what the kernel still enforces",
			"path", path, "moved_to", moved, "err", err)
		db, err = openChecked(path)
		if err != nil {
			return nil, err
		}
	}
	// A lone writer (one CLI ban) waits this long for others to share its
	// fsync; bbolt's 10ms default would be most of a ban's latency.
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{lock: lock, db: db, path: path, recovered: moved}
	return s, nil
}

func openChecked(path string) (db *bolt.DB, err error) {
	// A damaged page can make bbolt panic instead of returning an error;
	// either way the file is unusable and must be moved aside.
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, fmt.Errorf("open %s: database corrupt: %v", path, r)
		}
	}()
	// The mapping is address space, not memory: reserved large, a
	// growing file (a million-ban import) is not remapped at every
	// step, and each remap copied every node the transaction had
	// touched onto the heap (a quarter of an import's CPU, and most of
	// its peak memory).
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, InitialMmapSize: mmapReserve})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w: stop the daemon or use its control socket", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBans, bucketHistory, bucketPositions, bucketMeta, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		for cerr := range tx.Check() {
			return cerr
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: database corrupt: %w", path, err)
	}
	return db, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Recovered is the path the corrupt database was moved to by Open, or "".
func (s *Store) Recovered() string { return s.recovered }

// Close closes the database.
func (s *Store) Close() error {
	err := s.db.Close()
	s.lock.Close()
	return err
}

// lockDir takes an exclusive flock on the state directory, so a second
// daemon (or a CLI in direct mode) sharing it is refused at once, with
// the directory named, before it reads or writes anything there. bbolt
// locks the database file too, but only after waiting lockTimeout.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s: %w: another xdpban daemon (or a command without one) uses it; stop it, use its control socket, or give this one its own state_dir", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	return f, nil
}

// Key is a ban's prefix as network-order bytes: a family byte (4 or 6, so
// 192.0.2.0/24 and c000:200::/24 never collide), the 16-byte address
// (IPv4 as the 4 bytes left-aligned), then the length. It is the
// database's key and, being a flat array, the daemon's in-memory key too.
type Key [18]byte

// KeyOf is p's Key.
func KeyOf(p netip.Prefix) Key {
	var k Key
	a := p.Addr()
	if a.Is4() {
		k[0] = 4
		b := a.As4()
		copy(k[1:], b[:])
	} else {
		k[0] = 6
		b := a.As16()
		copy(k[1:], b[:])
	}
	k[17] = byte(p.Bits())
	return k
}

// Prefix is the prefix k was made from (k must come from KeyOf).
func (k Key) Prefix() netip.Prefix {
	p, _ := parseBanKey(k[:])
	return p
}

func banKey(p netip.Prefix) []byte {
	k := KeyOf(p)
	return k[:]
}

func parseBanKey(k []byte) (netip.Prefix, error) {
	if len(k) < 18 {
		return netip.Prefix{}, fmt.Errorf("bad key length %d", len(k))
	}
	var a netip.Addr
	switch k[0] {
	case 4:
		a = netip.AddrFrom4([4]byte(k[1:5]))
	case 6:
		a = netip.AddrFrom16([16]byte(k[1:17]))
	default:
		return netip.Prefix{}, fmt.Errorf("bad key family %d", k[0])
	}
	p := netip.PrefixFrom(a, int(k[17]))
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("bad key prefix length %d", k[17])
	}
	return p, nil
}

type banValue struct {
	Jail    string `json:"jail"`
	Expires int64  `json:"expires,omitempty"` // unix ns; 0 permanent
	// Scope and Origin are only in the binary form (format 1).
	Scope  bans.Scope `json:"-"`
	Origin string     `json:"-"`
}

// banFormat1 starts a ban record in the compact binary form: the byte,
// uvarint expiry (unix ns, 0 permanent), then jail, scope (its text,
// "" for all traffic) and origin, each a uvarint length and its bytes:
// 17 bytes for a typical ban where the first format's JSON took 47.
// Records written as JSON (they start with '{') are still read.
const banFormat1 = 0x01

func encodeBan(dst []byte, b bans.Ban) []byte {
	dst = append(dst, banFormat1)
	var exp uint64
	if !b.Expires.IsZero() {
		exp = uint64(b.Expires.UnixNano())
	}
	dst = binary.AppendUvarint(dst, exp)
	scope := ""
	if !b.Scope.All() {
		scope = b.Scope.String()
	}
	for _, f := range []string{b.Jail, scope, b.Origin} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

var errBadRecord = errors.New("unreadable ban record")

func decodeBan(v []byte) (banValue, error) { return decodeBanWith(v, nil) }

// interner shares the few distinct jail, origin and scope values among a
// million records read at once, instead of a string (and a parsed scope)
// for each.
type interner struct {
	strs   map[string]string
	scopes map[string]bans.Scope
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, scopes: map[string]bans.Scope{}}
}

func (in *interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in.strs[string(b)]; ok {
		return s
	}
	if len(in.strs) > 4096 { // not a few distinct values after all
		return string(b)
	}
	s := string(b)
	in.strs[s] = s
	return s
}

func (in *interner) scope(text string) (bans.Scope, error) {
	if in != nil {
		if sc, ok := in.scopes[text]; ok {
			return sc, nil
		}
	}
	sc, err := bans.ParseScopeString(text)
	if err == nil && in != nil && len(in.scopes) < 4096 {
		in.scopes[text] = sc
	}
	return sc, err
}

func decodeBanWith(v []byte, in *interner) (banValue, error) {
	var bv banValue
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &bv)
		return bv, err
	}
	if len(v) == 0 || v[0] != banFormat1 {
		return bv, errBadRecord
	}
	v = v[1:]
	exp, n := binary.Uvarint(v)
	if n <= 0 || exp > math.MaxInt64 {
		return bv, errBadRecord
	}
	bv.Expires, v = int64(exp), v[n:]
	var fields [3]string
	for i := range fields {
		l, n := binary.Uvarint(v)
		if n <= 0 || l > uint64(len(v)-n) {
			return bv, errBadRecord
		}
		fields[i], v = in.str(v[n:n+int(l)]), v[n+int(l):]
	}
	bv.Jail, bv.Origin = fields[0], fields[2]
	if fields[1] != "" {
		sc, err := in.scope(fields[1])
		if err != nil {
			return bv, fmt.Errorf("%w: %w", errBadRecord, err)
		}
		bv.Scope = sc
	}
	return bv, nil
}

func (bv banValue) ban(p netip.Prefix) bans.Ban {
	b := bans.Ban{Prefix: p, Jail: bv.Jail, Scope: bv.Scope, Origin: bv.Origin}
	if bv.Expires != 0 {
		b.Expires = time.Unix(0, bv.Expires)
	}
	return b
}

// Page fill for the bans bucket. A bulk batch (an import, a restore) is
// written sorted into pages packed to bulkFill: 77 bytes a ban at 1M
// where bbolt's default 0.5 leaves half of every page empty (126). Small
// batches land at random places, where packed pages would split at every
// insert, and keep the default.
// mmapReserve is the address space bbolt maps the database in at open.
const mmapReserve = 1 << 30

const (
	bulkBatch = 1 << 16
	bulkFill  = 0.9
)

// banRec is a ban's key and its index in a batch, for sorting.
type banRec struct {
	k Key
	i int
}

// PutBans records bans (replacing any ban on the same prefix) in one
// durable transaction.
func (s *Store) PutBans(bs ...bans.Ban) error {
	return s.Commit(bs, nil)
}

// Commit records bans and their history events in one durable
// transaction: a ban and the history bantime.increment reads are never
// apart, and a batch of N bans costs one fsync, not N+1.
func (s *Store) Commit(bs []bans.Ban, history []Event) error {
	if len(bs) == 0 && len(history) == 0 {
		return nil
	}
	if len(bs) >= bulkBatch {
		// An import's part: its own transaction at once (Batch would
		// wait MaxBatchDelay for company that never comes).
		return s.commitBulk(bs, history)
	}
	// Batch coalesces concurrent writers (50 CLI clients, the jail
	// engine) into one fsync'd commit; each caller still returns only
	// after its writes are durable. The function may run twice, so it is
	// idempotent.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBans)
		// In key order: bbolt inserts into a node's sorted slice, so
		// random order makes a large batch quadratic, and neighbours
		// written together touch fewer pages.
		if err := putSorted(b, sortedRecs(bs), bs); err != nil {
			return err
		}
		return putHistory(tx, history)
	})
	if err != nil {
		return fmt.Errorf("store %d bans: %w", len(bs), err)
	}
	return nil
}

// sortedRecs are bs's keys in key order (stable: of duplicates, the
// last given stays last).
func sortedRecs(bs []bans.Ban) []banRec {
	recs := make([]banRec, len(bs))
	for i, ban := range bs {
		recs[i] = banRec{k: KeyOf(ban.Prefix), i: i}
	}
	byKey := func(a, b banRec) int { return bytes.Compare(a.k[:], b.k[:]) }
	if !slices.IsSortedFunc(recs, byKey) { // an import comes sorted
		slices.SortStableFunc(recs, byKey)
	}
	return recs
}

// putSorted writes the bans recs index, in their order, into b.
func putSorted(b *bolt.Bucket, recs []banRec, bs []bans.Ban) error {
	// bbolt keeps every key and value until the commit: they are cut
	// from one buffer, not allocated two a ban. (Should it grow, the
	// slices already given keep the old one.)
	est := 0
	if len(recs) > 0 {
		ban := bs[recs[0].i]
		est = len(recs) * (len(Key{}) + 24 + len(ban.Jail) + len(ban.Origin))
	}
	buf := make([]byte, 0, est)
	for j, r := range recs {
		if j+1 < len(recs) && recs[j+1].k == r.k {
			continue // the last of duplicates wins, as in the backend
		}
		at := len(buf)
		buf = append(buf, r.k[:]...)
		k := buf[at:len(buf):len(buf)]
		at = len(buf)
		buf = encodeBan(buf, bs[r.i])
		if err := b.Put(k, buf[at:len(buf):len(buf)]); err != nil {
			return err
		}
	}
	return nil
}

func putHistory(tx *bolt.Tx, history []Event) error {
	h := tx.Bucket(bucketHistory)
	for _, e := range history {
		buf, _ := json.Marshal(e)
		if err := h.Put(historyKey(e.Prefix, e.At), buf); err != nil {
			return err
		}
	}
	return nil
}

// commitBulk writes a large batch (an import) sorted, in transactions of
// bulkBatch bans: one transaction of a million held every node and
// value of the tree in memory until its commit (over a gigabyte). A
// crash between two leaves the first ones stored and the rest in the
// kernel only, where the next start imports them from.
func (s *Store) commitBulk(bs []bans.Ban, history []Event) error {
	recs := sortedRecs(bs)
	for len(recs) > 0 {
		n := min(bulkBatch, len(recs))
		// Never split duplicates: the last of them wins.
		for n < len(recs) && recs[n].k == recs[n-1].k {
			n++
		}
		part := recs[:n]
		recs = recs[n:]
		last := len(recs) == 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketBans)
			b.FillPercent = bulkFill
			if err := putSorted(b, part, bs); err != nil {
				return err
			}
			if !last {
				return nil
			}
			return putHistory(tx, history)
		})
		if err != nil {
			return fmt.Errorf("store %d bans: %w", len(bs), err)
		}
	}
	return nil
}

// DeleteBans removes the bans on the exact prefixes given and returns how
// many there were.
func (s *Store) DeleteBans(ps ...netip.Prefix) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	n := 0
	err := s.db.Batch(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketBans)
		for _, p := range ps {
			k := banKey(p)
			if b.Get(k) == nil {
				continue
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %d bans: %w", len(ps), err)
	}
	return n, nil
}

// DeleteAllBans removes every active ban record (history is kept).
func (s *Store) DeleteAllBans() (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketBans).Stats().KeyN
		if err := tx.DeleteBucket(bucketBans); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketBans)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete all bans: %w", err)
	}
	return n, nil
}

// Bans returns every stored ban, expired ones included, in key order.
// Records that cannot be decoded are skipped and logged by the caller's
// reconcile (they are returned in the error count).
func (s *Store) Bans() ([]bans.Ban, error) {
	var out []bans.Ban
	err := s.EachBan(func(b bans.Ban) error {
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachBan calls fn with every stored ban, in key order, without a list of
// them in memory (a restart reads a million), and stops at fn's first
// error. Unreadable records are skipped, as Bans skips them. fn must not
// use the store.
func (s *Store) EachBan(fn func(bans.Ban) error) error {
	in := newInterner()
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBans).ForEach(func(k, v []byte) error {
			p, err := parseBanKey(k)
			if err != nil {
				return nil
			}
			bv, err := decodeBanWith(v, in)
			if err != nil {
				return nil
			}
			return fn(bv.ban(p))
		})
	})
	if err != nil {
		return fmt.Errorf("read bans: %w", err)
	}
	return nil
}

// ReleaseCache takes the database file's pages out of the process's
// resident set after a bulk read or write (a start with a million bans
// touches every page of a 75 MB file; they stayed in VmRSS). The pages
// stay in the kernel's page cache: the next read faults them back in
// without touching the disk. The mapping is read-only and shared, so
// nothing is lost; a read transaction keeps bbolt from remapping under
// the call.
func (s *Store) ReleaseCache() error {
	return s.db.View(func(tx *bolt.Tx) error {
		n := tx.Size()
		if n <= 0 {
			return nil
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, s.db.Info().Data, uintptr(n), unix.MADV_DONTNEED)
		if errno != 0 {
			return fmt.Errorf("release the database's pages: %w", errno)
		}
		return nil
	})
}

// Ban returns the stored ban on exactly p.
func (s *Store) Ban(p netip.Prefix) (bans.Ban, bool, error) {
	var (
		b  bans.Ban
		ok bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBans).Get(banKey(p))
		if v == nil {
			return nil
		}
		bv, err := decodeBan(v)
		if err != nil {
			return fmt.Errorf("decode ban %s: %w", p, err)
		}
		b, ok = bv.ban(p), true
		return nil
	})
	return b, ok, err
}

// Event is one past ban of an address, for bantime.increment.
type Event struct {
	Prefix  netip.Prefix  `json:"-"`
	Jail    string        `json:"jail"`
	At      time.Time     `json:"-"`
	BanTime time.Duration `json:"bantime"` // < 0 permanent
}

// historyKey sorts events of one prefix together, oldest first.
func historyKey(p netip.Prefix, at time.Time) []byte {
	k := banKey(p)
	ns := int64(0)
	if at.After(time.Unix(0, 0)) {
		ns = at.UnixNano()
	}
	return binary.BigEndian.AppendUint64(k, uint64(ns))
}

// RecordBan appends a ban to the prefix's history.
func (s *Store) RecordBan(e Event) error {
	buf, _ := json.Marshal(e)
	err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHistory).Put(historyKey(e.Prefix, e.At), buf)
	})
	if err != nil {
		return fmt.Errorf("record ban history of %s: %w", e.Prefix, err)
	}
	return nil
}

// History returns the past bans of p since the given time (all jails when
// jail is empty), oldest first.
func (s *Store) History(p netip.Prefix, jail string, since time.Time) ([]Event, error) {
	var out []Event
	start := historyKey(p, since)
	pre := banKey(p)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Seek(start); k != nil && len(k) == 26 && string(k[:18]) == string(pre); k, v = c.Next() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				continue
			}
			if jail != "" && e.Jail != jail {
				continue
			}
			e.Prefix = p
			e.At = time.Unix(0, int64(binary.BigEndian.Uint64(k[18:])))
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ban history of %s: %w", p, err)
	}
	return out, nil
}

// Purge removes history recorded before the cutoff (dbpurgeage), except
// for prefixes that are still banned: their history is what makes the
// next ban longer.
func (s *Store) Purge(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		active := tx.Bucket(bucketBans)
		h := tx.Bucket(bucketHistory)
		cut := uint64(before.UnixNano())
		var doomed [][]byte
		err := h.ForEach(func(k, _ []byte) error {
			if len(k) == 26 && binary.BigEndian.Uint64(k[18:]) < cut && active.Get(k[:18]) == nil {
				doomed = append(doomed, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range doomed {
			if err := h.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge ban history: %w", err)
	}
	return n, nil
}

// LoadPosition reads the saved position of a log source into v (the
// follower's own position type, stored as JSON so the store does not
// depend on the follower).
func (s *Store) LoadPosition(key string, v any) (bool, error) {
	return s.get(bucketPositions, key, v)
}

// SavePosition saves a log source's position durably.
func (s *Store) SavePosition(key string, v any) error {
	return s.put(bucketPositions, key, v)
}

// PositionKeys lists the sources that have a saved position.
func (s *Store) PositionKeys() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPositions).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// BanCount is how many bans of p in jail the history holds (it is purged
// after dbpurgeage): logwatch.History, for bantime.increment.
func (s *Store) BanCount(jail string, p netip.Prefix) (int, error) {
	h, err := s.History(p, jail, time.Time{})
	return len(h), err
}

func (s *Store) get(bucket []byte, key string, v any) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucket).Get([]byte(key))
		if raw == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(raw, v)
	})
	if err != nil {
		return false, fmt.Errorf("read %s %q: %w", bucket, key, err)
	}
	return ok, nil
}

func (s *Store) put(bucket []byte, key string, v any) error {
	if key == "" {
		return fmt.Errorf("save %s: empty source name", bucket)
	}
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("save %s %q: %w", bucket, key, err)
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), buf)
	})
	if err != nil {
		return fmt.Errorf("save %s %q: %w", bucket, key, err)
	}
	return nil
}

// SortBans orders bans by family, address then length, the order `list`
// prints.
func SortBans(bs []bans.Ban) {
	sort.Slice(bs, func(i, j int) bool {
		a, b := bs[i].Prefix, bs[j].Prefix
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
}
