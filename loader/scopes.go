package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/xdpban/xdpban/internal/bans"
)

// Port scopes live in the xdpban_scopes array: slot id holds the TCP and
// UDP port bitmaps of one scope, and a ban entry's scope_id names its
// slot (0: all traffic, no slot). Bans of one jail share a slot. A slot
// is in use while some ban entry names it; slots are reference-counted
// by walking the ban tables when a new scope finds none free, which also
// reclaims what LRU eviction or another process (the CLI with the daemon
// stopped) left behind. An all-zero slot is free: no scope has no port.

// scopeID returns the slot holding sc (0 for all traffic), writing it
// into a free slot the first time. Callers hold x.mu.
func (x *XDP) scopeID(sc bans.Scope) (uint16, error) {
	if sc.All() {
		return 0, nil
	}
	if err := x.loadScopes(false); err != nil {
		return 0, err
	}
	text := sc.String()
	if id, ok := x.scopeIDs[text]; ok {
		return id, nil
	}
	v := scopeBits(sc)
	key := v.key()
	if id, ok := x.scopeIDs[key]; ok {
		x.scopeIDs[text] = id
		return id, nil
	}
	id, err := x.freeScope(false)
	if err == nil && id == 0 {
		id, err = x.freeScope(true)
	}
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, fmt.Errorf("scope %s: all %d port scopes are in use by bans: lift bans of other scopes, or ban all traffic (banscope = all): %w",
			sc, x.scopes.MaxEntries()-1, bans.ErrFull)
	}
	if err := x.scopes.Put(uint32(id), v); err != nil {
		return 0, fmt.Errorf("write scope %s to xdpban_scopes: %w", sc, err)
	}
	x.scopeIDs[key], x.scopeIDs[text] = id, id
	x.scopeOf[id] = scopeFromBits(*v)
	return id, nil
}

// freeScope returns a free slot, 0 when none is. With gc it first frees
// the slots no ban entry names.
func (x *XDP) freeScope(gc bool) (uint16, error) {
	if gc {
		used := map[uint16]bool{}
		for t := table(0); t < tables; t++ {
			if err := x.walk(t, func(e entry) error { used[e.v.ScopeId] = true; return nil }); err != nil {
				return 0, err
			}
		}
		var zero xdpbanPortScope
		for id := range x.scopeOf {
			if used[id] {
				continue
			}
			if err := x.scopes.Put(uint32(id), &zero); err != nil {
				return 0, fmt.Errorf("free scope slot %d: %w", id, err)
			}
		}
		if err := x.loadScopes(true); err != nil {
			return 0, err
		}
	}
	for id := uint16(1); uint32(id) < x.scopes.MaxEntries(); id++ {
		if _, used := x.scopeOf[id]; !used {
			return id, nil
		}
	}
	return 0, nil
}

// scopeName is the scope slot id holds (all traffic for 0). An id with
// no scope written (should not happen) is reported as all traffic, which
// is what the kernel then enforces.
func (x *XDP) scopeName(id uint16) bans.Scope {
	if id == 0 || x.scopes == nil {
		return bans.Scope{}
	}
	if err := x.loadScopes(false); err != nil {
		return bans.Scope{}
	}
	if sc, ok := x.scopeOf[id]; ok {
		return sc
	}
	if err := x.loadScopes(true); err != nil {
		return bans.Scope{}
	}
	return x.scopeOf[id]
}

func (x *XDP) loadScopes(force bool) error {
	if x.scopeIDs != nil && !force {
		return nil
	}
	ids := map[string]uint16{}
	of := map[uint16]bans.Scope{}
	var v xdpbanPortScope
	for id := uint32(1); id < x.scopes.MaxEntries(); id++ {
		if err := x.scopes.Lookup(id, &v); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				break
			}
			return fmt.Errorf("read xdpban_scopes: %w", err)
		}
		if v.empty() {
			continue
		}
		of[uint16(id)] = scopeFromBits(v)
		if _, dup := ids[v.key()]; !dup {
			ids[v.key()] = uint16(id)
		}
	}
	x.scopeIDs, x.scopeOf = ids, of
	return nil
}

// scopeBits sets the bitmaps of sc: Proto tcp or udp fills one, all
// both; no ports is every port.
func scopeBits(sc bans.Scope) *xdpbanPortScope {
	var v xdpbanPortScope
	rs := sc.Ports
	if len(rs) == 0 {
		rs = []bans.PortRange{{From: 0, To: 65535}}
	}
	for _, r := range rs {
		for p := int(r.From); p <= int(r.To); p++ {
			if sc.Proto != "udp" {
				v.Tcp[p>>6] |= 1 << (p & 63)
			}
			if sc.Proto != "tcp" {
				v.Udp[p>>6] |= 1 << (p & 63)
			}
		}
	}
	return &v
}

// scopeFromBits reads a slot back into the scope that wrote it.
func scopeFromBits(v xdpbanPortScope) bans.Scope {
	tcp, udp := portRanges(&v.Tcp), portRanges(&v.Udp)
	var sc bans.Scope
	switch {
	case len(udp) == 0:
		sc = bans.Scope{Proto: "tcp", Ports: tcp}
	case len(tcp) == 0:
		sc = bans.Scope{Proto: "udp", Ports: udp}
	default:
		sc = bans.Scope{Proto: "all", Ports: tcp}
	}
	if len(sc.Ports) == 1 && sc.Ports[0] == (bans.PortRange{From: 0, To: 65535}) {
		sc.Ports = nil
	}
	return sc
}

func portRanges(bits *[1024]uint64) []bans.PortRange {
	var out []bans.PortRange
	in := false
	for p := 0; p <= 65535; p++ {
		set := bits[p>>6]&(1<<(p&63)) != 0
		switch {
		case set && !in:
			out = append(out, bans.PortRange{From: uint16(p), To: uint16(p)})
			in = true
		case set:
			out[len(out)-1].To = uint16(p)
		default:
			in = false
		}
	}
	return out
}

func (v *xdpbanPortScope) empty() bool {
	for i := range v.Tcp {
		if v.Tcp[i] != 0 || v.Udp[i] != 0 {
			return false
		}
	}
	return true
}

// key identifies a slot's contents, so equal scopes share a slot
// whatever order their ports were written in.
func (v *xdpbanPortScope) key() string { return scopeFromBits(*v).String() }
