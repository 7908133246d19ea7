package ledger

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
)

// The backlog keeps the last operation per prefix: a queued ban lifted
// since must not be written back, nor an older expiry over a newer one.
func TestBacklogKeepsLastOperationPerPrefix(t *testing.T) {
	var q backlog
	now := time.Unix(1_800_000_000, 0)
	full := errors.New("no space left on device")
	a, b := pfx("192.0.2.1/32"), pfx("192.0.2.2/32")
	q.put([]bans.Ban{{Prefix: a, Jail: "j"}, {Prefix: b, Jail: "j"}}, []store.Event{{Prefix: a}}, full, now)
	q.del([]netip.Prefix{a}, full, now.Add(time.Second))
	if _, ok := q.puts[store.KeyOf(a)]; ok || q.len() != 2 {
		t.Fatalf("after ban then unban of a: puts %v dels %v", q.puts, q.dels)
	}
	q.put([]bans.Ban{{Prefix: a, Jail: "k"}}, nil, full, now.Add(2*time.Second))
	if _, ok := q.dels[store.KeyOf(a)]; ok || q.puts[store.KeyOf(a)].Jail != "k" {
		t.Fatalf("after re-ban of a: puts %v dels %v", q.puts, q.dels)
	}
	// A later write the store took supersedes what waits for b.
	q.written([]netip.Prefix{b})
	if q.len() != 1 || !q.since.Equal(now) || q.err != full {
		t.Fatalf("after b written: %d pending since %v (%v)", q.len(), q.since, q.err)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
