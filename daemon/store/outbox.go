package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// OutboxEntry is one change waiting to be published to the fleet
// (daemon/fleet): Value is the record to publish under Key, or nil for a
// delete. The store only keeps the bytes; the fleet package owns their
// meaning.
type OutboxEntry struct {
	Key   string
	Value []byte
}

// OutboxPut queues entries, replacing what is queued under the same keys
// (the newest change to a key is the one that counts).
func (s *Store) OutboxPut(es ...OutboxEntry) error {
	if len(es) == 0 {
		return nil
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, e := range es {
			// A zero-length value marks a delete; bbolt cannot tell nil
			// from empty, so a put always carries a byte more.
			v := append([]byte{0}, e.Value...)
			if e.Value == nil {
				v = []byte{}
			}
			if err := b.Put([]byte(e.Key), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue %d fleet publishes: %w", len(es), err)
	}
	return nil
}

// Outbox returns the queued entries in key order.
func (s *Store) Outbox() ([]OutboxEntry, error) {
	return s.OutboxPage("", -1)
}

// OutboxPage returns up to n queued entries (all when n < 0) with keys
// after after, in key order: a million queued (an import) are read a
// page at a time, not held at once.
func (s *Store) OutboxPage(after string, n int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		k, v := c.First()
		if after != "" {
			if k, v = c.Seek([]byte(after)); k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil && (n < 0 || len(out) < n); k, v = c.Next() {
			e := OutboxEntry{Key: string(k)}
			if len(v) > 0 {
				// Never nil: nil is a delete.
				e.Value = append([]byte{}, v[1:]...)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read fleet outbox: %w", err)
	}
	return out, nil
}

// OutboxLen is the number of queued entries.
func (s *Store) OutboxLen() int {
	n := 0
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	return n
}

// OutboxDone removes the entries published, each only if it is still the
// one queued: a change queued meanwhile stays for the next round.
func (s *Store) OutboxDone(es ...OutboxEntry) error {
	if len(es) == 0 {
		return nil
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, e := range es {
			cur := b.Get([]byte(e.Key))
			if cur == nil {
				continue
			}
			same := len(cur) == 0 && e.Value == nil
			if len(cur) > 0 && e.Value != nil {
				same = bytes.Equal(cur[1:], e.Value)
			}
			if same {
				if err := b.Delete([]byte(e.Key)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clear %d published fleet changes: %w", len(es), err)
	}
	return nil
}

// OutboxQueued reports whether a ban (not a delete) is queued under key.
func (s *Store) OutboxQueued(key string) bool {
	queued := false
	s.db.View(func(tx *bolt.Tx) error {
		queued = len(tx.Bucket(bucketOutbox).Get([]byte(key))) > 0
		return nil
	})
	return queued
}
