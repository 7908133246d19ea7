package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

// The outbox keeps the newest change per key, across a reopen; pages
// walk it in key order without skipping or repeating; a delete queued
// meanwhile is not cleared by the publish of the ban it replaced.
func TestOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	s := open(t, path)
	var es []OutboxEntry
	for i := range 1000 {
		es = append(es, OutboxEntry{Key: fmt.Sprintf("v4.192-0-2-%d.32", i), Value: []byte(fmt.Sprint(i))})
	}
	if err := s.OutboxPut(es...); err != nil {
		t.Fatal(err)
	}
	// An empty value is a ban all the same, not a delete.
	if err := s.OutboxPut(OutboxEntry{Key: "v4.192-0-2-0.32", Value: []byte{}}, OutboxEntry{Key: "v4.192-0-2-1.32"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	if n := s.OutboxLen(); n != 1000 {
		t.Fatalf("outbox holds %d after a reopen, want 1000", n)
	}
	seen := map[string]bool{}
	pages := 0
	for after := ""; ; pages++ {
		page, err := s.OutboxPage(after, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if seen[e.Key] {
				t.Fatalf("%s read twice", e.Key)
			}
			if e.Key <= after {
				t.Fatalf("%s after %s: not in key order", e.Key, after)
			}
			seen[e.Key] = true
		}
		if len(page) < 64 {
			break
		}
		after = page[len(page)-1].Key
	}
	if len(seen) != 1000 || pages != 15 {
		t.Fatalf("pages read %d keys in %d pages, want 1000 in 15", len(seen), pages+1)
	}
	if !s.OutboxQueued("v4.192-0-2-0.32") || s.OutboxQueued("v4.192-0-2-1.32") || s.OutboxQueued("v4.nothing.32") {
		t.Fatal("OutboxQueued: want a ban queued on .0 (empty value), a delete on .1, nothing elsewhere")
	}
	all, err := s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	// Done with the older ban of .2 while a delete was queued over it.
	if err := s.OutboxPut(OutboxEntry{Key: "v4.192-0-2-2.32"}); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxDone(all...); err != nil {
		t.Fatal(err)
	}
	left, _ := s.Outbox()
	// An empty ban read back as nil was taken for a delete, and stayed.
	if len(left) != 1 || left[0].Key != "v4.192-0-2-2.32" || left[0].Value != nil {
		t.Fatalf("outbox after done: %+v, want only the delete queued meanwhile", left)
	}
}
