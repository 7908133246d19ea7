package pyre

import (
	"encoding/binary"
	"regexp/syntax"
	"slices"
	"sync"
)

// byteDFA answers one question: does a capture-free, assertion-free
// expression match the whole of an ASCII text? Go's regexp answers it
// with a backtracker whose set-up and branching cost hundreds of
// nanoseconds on the 20 bytes of a syslog prefix; a DFA walks them with
// one table look-up per byte. The DFA is built completely, at compile
// time, so a Filter shared by several goroutines stays read-only; an
// expression needing more than maxDFAStates states gets none.
type byteDFA struct {
	next   []int32 // next[state*128+byte]; state 0 is dead
	accept []bool
	start  int32
}

const maxDFAStates = 2000

// dfaCache shares DFAs: the failregexes of a filter begin with the same
// prefix, and filters are loaded again on every reload.
var dfaCache sync.Map // expr -> *byteDFA (nil: none)

// newByteDFA returns the DFA of expr (RE2 syntax), or nil.
func newByteDFA(expr string) *byteDFA {
	if d, ok := dfaCache.Load(expr); ok {
		return d.(*byteDFA)
	}
	d := buildByteDFA(expr)
	dfaCache.Store(expr, d)
	return d
}

func buildByteDFA(expr string) *byteDFA {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil
	}
	for _, in := range prog.Inst {
		if in.Op == syntax.InstEmptyWidth {
			return nil // an assertion: not this DFA's business
		}
	}
	// takes[pc] has bit b set when instruction pc consumes byte b.
	takes := make([][2]uint64, len(prog.Inst))
	for pc := range prog.Inst {
		for b := 0; b < 128; b++ {
			if consumes(&prog.Inst[pc], rune(b)) {
				takes[pc][b>>6] |= 1 << (b & 63)
			}
		}
	}
	// Bytes that every instruction treats alike share a class: the
	// subset construction runs once per class, not per byte.
	var class [128]int
	var reps []int // a byte of each class
	cols := map[string]int{}
	for b := 0; b < 128; b++ {
		col := make([]byte, 0, len(prog.Inst))
		for pc := range takes {
			col = append(col, byte(takes[pc][b>>6]>>(b&63)&1))
		}
		id, ok := cols[string(col)]
		if !ok {
			id = len(reps)
			cols[string(col)] = id
			reps = append(reps, b)
		}
		class[b] = id
	}
	// closure follows the instructions that consume nothing and keeps
	// the ones that consume a byte or match.
	seen := make([]uint32, len(prog.Inst)) // generation marks
	gen := uint32(0)
	closure := func(pcs []uint32) []uint32 {
		gen++
		var out []uint32
		var walk func(pc uint32)
		walk = func(pc uint32) {
			if seen[pc] == gen {
				return
			}
			seen[pc] = gen
			in := &prog.Inst[pc]
			switch in.Op {
			case syntax.InstAlt, syntax.InstAltMatch:
				walk(in.Out)
				walk(in.Arg)
			case syntax.InstCapture, syntax.InstNop:
				walk(in.Out)
			case syntax.InstFail:
			default:
				out = append(out, pc)
			}
		}
		for _, pc := range pcs {
			walk(pc)
		}
		slices.Sort(out)
		return out
	}
	key := func(pcs []uint32) string {
		b := make([]byte, 4*len(pcs))
		for i, pc := range pcs {
			binary.LittleEndian.PutUint32(b[4*i:], pc)
		}
		return string(b)
	}
	d := &byteDFA{next: make([]int32, 128), accept: []bool{false}}
	ids := map[string]int32{"": 0}
	var sets [][]uint32
	sets = append(sets, nil)
	add := func(pcs []uint32) int32 {
		k := key(pcs)
		if id, ok := ids[k]; ok {
			return id
		}
		id := int32(len(sets))
		ids[k] = id
		sets = append(sets, pcs)
		acc := false
		for _, pc := range pcs {
			acc = acc || prog.Inst[pc].Op == syntax.InstMatch
		}
		d.accept = append(d.accept, acc)
		d.next = append(d.next, make([]int32, 128)...)
		return id
	}
	d.start = add(closure([]uint32{uint32(prog.Start)}))
	for id := 1; id < len(sets); id++ {
		if len(sets) > maxDFAStates {
			return nil
		}
		byClass := make([]int32, len(reps))
		for c, b := range reps {
			var to []uint32
			for _, pc := range sets[id] {
				if takes[pc][b>>6]&(1<<(b&63)) != 0 {
					to = append(to, prog.Inst[pc].Out)
				}
			}
			byClass[c] = add(closure(to))
		}
		for b := 0; b < 128; b++ {
			d.next[id*128+b] = byClass[class[b]]
		}
	}
	return d
}

// consumes reports whether a byte-consuming instruction takes r.
func consumes(in *syntax.Inst, r rune) bool {
	switch in.Op {
	case syntax.InstRune:
		return in.MatchRune(r)
	case syntax.InstRune1:
		return r == in.Rune[0]
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	}
	return false
}

// full reports whether the expression matches all of s; decided is false
// when s has a byte above 0x7f (the caller asks the regexp).
func (d *byteDFA) full(s string) (match, decided bool) {
	st := d.start
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return false, false
		}
		if st = d.next[int(st)*128+int(c)]; st == 0 {
			return false, true // no thread left: nothing after can match
		}
	}
	return d.accept[st], true
}
