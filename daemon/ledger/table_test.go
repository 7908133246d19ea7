package ledger

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// testKey is the mirror key of 2001:db8:(i)::/64.
func testKey(i int) mkey {
	var k mkey
	k[0] = 6
	binary.BigEndian.PutUint32(k[1:], 0x20010db8)
	binary.BigEndian.PutUint32(k[5:], uint32(i))
	k[17] = 64
	return k
}

// The packed table against a Go map under random puts, replacements and
// deletions, through several merges and compactions.
func TestTableMatchesMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tb, want := newTable(), map[mkey]mval{}
	key := testKey
	merges := 0
	for op := range 200_000 {
		k := key(r.IntN(30_000))
		switch r.IntN(10) {
		case 0, 1, 2:
			tb.del(k)
			delete(want, k)
		default:
			var v mval
			binary.LittleEndian.PutUint64(v[:], uint64(op))
			before := tb.slabLen()
			tb.put(k, v)
			want[k] = v
			if tb.slabLen() != before {
				merges++
			}
		}
		probe := key(r.IntN(30_000))
		gv, gok := tb.get(probe)
		wv, wok := want[probe]
		if gok != wok || gv != wv {
			t.Fatalf("op %d: get = %v, %v; want %v, %v", op, gv, gok, wv, wok)
		}
		if tb.len() != len(want) {
			t.Fatalf("op %d: len %d, want %d", op, tb.len(), len(want))
		}
	}
	if merges < 3 {
		t.Fatalf("only %d merges: the slab was not exercised", merges)
	}
	seen := 0
	tb.each(func(k mkey, v mval) bool {
		if want[k] != v {
			t.Fatalf("each gave %v = %v, want %v", k, v, want[k])
		}
		seen++
		return true
	})
	if seen != len(want) {
		t.Fatalf("each visited %d, want %d", seen, len(want))
	}
}

// TestTableInsertNewMatchesMap: bulk inserts of keys not in the table
// (unsorted, with duplicates, among the slab's keys, over dead records of
// the same keys and beside a pending delta)
// leave it as one put each would.
func TestTableInsertNewMatchesMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tb, want := newTable(), map[mkey]mval{}
	key := testKey
	next := 0
	for round := range 12 {
		// Some single puts and deletions: a delta and dead records.
		for range 3000 {
			k := key(r.IntN(next + 1))
			// Odd rounds only delete: no delta, so the insert meets
			// the dead records in the slab.
			if r.IntN(3) == 0 || round%2 == 1 {
				tb.del(k)
				delete(want, k)
				continue
			}
			var v mval
			binary.LittleEndian.PutUint64(v[:], uint64(r.Uint32()))
			tb.put(k, v)
			want[k] = v
		}
		// A batch of new keys, shuffled, some twice (the last wins).
		var recs []mrec
		n := 5000 + r.IntN(20_000)
		for i := range n {
			var v mval
			binary.LittleEndian.PutUint64(v[:], uint64(round<<32|i))
			recs = append(recs, mrec{key(next + 40_000 + i), v})
		}
		// Keys among the slab's, not live: absent ones and dead
		// records (deleted above), which the insert replaces.
		for range 300 {
			k := key(r.IntN(next + 1))
			if _, live := want[k]; live {
				continue
			}
			var v mval
			binary.LittleEndian.PutUint64(v[:], uint64(r.Uint32())|1)
			recs = append(recs, mrec{k, v})
		}
		for range 50 {
			d := recs[r.IntN(len(recs))]
			binary.LittleEndian.PutUint64(d.v[:], uint64(r.Uint32()))
			recs = append(recs, d)
		}
		next += 40_000 + n
		r.Shuffle(len(recs)-50, func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		for _, x := range recs {
			want[x.k] = x.v
		}
		tb.insertNew(append([]mrec(nil), recs...))
		if tb.len() != len(want) {
			t.Fatalf("round %d: table holds %d, want %d", round, tb.len(), len(want))
		}
		for k, v := range want {
			if got, ok := tb.get(k); !ok || got != v {
				t.Fatalf("round %d: key %x = %x %v, want %x", round, k, got, ok, v)
			}
		}
		seen := 0
		tb.each(func(k mkey, v mval) bool {
			if want[k] != v {
				t.Fatalf("round %d: each gave %x=%x, want %x", round, k, v, want[k])
			}
			seen++
			return true
		})
		if seen != len(want) {
			t.Fatalf("round %d: each saw %d of %d", round, seen, len(want))
		}
	}
	tb.free()
}
