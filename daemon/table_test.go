package daemon

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// The packed table against a Go map under random puts, replacements and
// deletions, through several merges and compactions.
func TestTableMatchesMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tb, want := newTable(), map[mkey]mval{}
	key := func(i int) mkey {
		var k mkey
		k[0] = 6
		binary.BigEndian.PutUint32(k[1:], 0x20010db8)
		binary.BigEndian.PutUint32(k[5:], uint32(i))
		k[17] = 64
		return k
	}
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
