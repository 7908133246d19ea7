package loader

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/xdpban/xdpban/internal/bans"
)

var (
	_ bans.Limiter = (*XDP)(nil)
	_ bans.Holder  = (*XDP)(nil)
)

// mapSizeKeys are the settings that size each ban table.
var mapSizeKeys = [tables]string{
	tV4: "map_size_v4", tV6: "map_size_v6", tV4Net: "map_size_v4_net", tV6Net: "map_size_v6_net",
}

// lruHeadroom is the room left free in an LRU map of size entries so the
// kernel never has to evict a ban. A common-LRU hash hands its free
// nodes out to per-CPU free lists, up to a target each (128, or on newer
// kernels max/(2·CPUs) when smaller); a CPU whose list is empty takes its
// target from the global list and, when that holds fewer, evicts to make
// up the rest, however many nodes other CPUs' lists keep unused. Keeping
// CPUs × target entries free means the global list always has a target's
// worth.
//
// Measured on 6.18 with 2 CPUs (TestFaultLRUEviction logs it): 1,024
// entries in a 1,024-entry map, written from both CPUs at once, all
// stay; the 1,025th evicts, and 2,001 written leave 977. Older kernels
// evicted earlier; the headroom costs 256 entries of a 1,024 map here
// and 0.02% of the default 1M.
func lruHeadroom(size int) int {
	cpus, err := ebpf.PossibleCPU()
	if err != nil || cpus < 1 {
		cpus = 1
	}
	target := min(128, max(1, size/(2*cpus)))
	return min(cpus*target, size/2)
}

func isLRU(t table) bool { return t == tV4 || t == tV6 }

// limit is how many bans table t accepts.
func (x *XDP) limit(t table) int {
	n := int(x.tbl[t].MaxEntries())
	if isLRU(t) {
		n -= lruHeadroom(n)
	}
	return n
}

// Limits implements bans.Limiter.
func (x *XDP) Limits() map[string]bans.TableLimit {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string]bans.TableLimit, tables)
	if x.closed {
		return out
	}
	for t := table(0); t < tables; t++ {
		out[t.String()] = bans.TableLimit{Limit: x.limit(t), Setting: mapSizeKeys[t]}
	}
	return out
}

// Holds implements bans.Holder.
func (x *XDP) Holds(p netip.Prefix) (bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return false, err
	}
	p, s, err := x.slotFor(p)
	if err != nil {
		return false, err
	}
	var v xdpbanBanEntry
	err = x.tbl[s.t].Lookup(s.key, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s in %s: %w", p, s.t, err)
	}
	return true, nil
}
