package loader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/xdpban/xdpban/internal/bans"
)

// DropEvent is one sampled drop (bans.DropEvent).
type DropEvent = bans.DropEvent

// SetDropLog sets the kernel's drop-event sampling: at most perAddr
// events per second for each ban entry and global per second in all (0:
// no global cap). perAddr 0 turns events off. It takes effect at once,
// without reloading the program.
func (x *XDP) SetDropLog(perAddr, global int) error {
	if perAddr < 0 || perAddr > 1<<20 {
		return fmt.Errorf("drop_log_rate %d out of range: use 0 (off) to %d events per second per address", perAddr, 1<<20)
	}
	if global < 0 || global > 1<<24 {
		return fmt.Errorf("drop_log_global %d out of range: use 0 (no cap) to %d events per second", global, 1<<24)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return err
	}
	if err := x.updateMeta(func(m *xdpbanMeta) {
		m.DropLogRate = uint32(perAddr)
		m.DropLogGlobal = uint32(global)
	}); err != nil {
		return err
	}
	// Slots remember whether events were on and when each entry's quota
	// reopens.
	return x.bumpGen()
}

func (x *XDP) updateMeta(f func(*xdpbanMeta)) error {
	var m xdpbanMeta
	if err := x.meta.Lookup(uint32(0), &m); err != nil {
		return fmt.Errorf("read meta: %w", err)
	}
	f(&m)
	if err := x.meta.Put(uint32(0), &m); err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	return nil
}

// DropEvents streams drop events from the pinned ring buffer until ctx
// ends, then closes the channel. The ring has one consumer position:
// run one reader at a time (the daemon, or `xdpban events` without it).
func (x *XDP) DropEvents(ctx context.Context) (<-chan DropEvent, error) {
	x.mu.Lock()
	if err := x.checkOpen(); err != nil {
		x.mu.Unlock()
		return nil, err
	}
	// A clone keeps the ring readable if x is closed first.
	m, err := x.events.Clone()
	x.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("open drop_events: %w", err)
	}
	rd, err := ringbuf.NewReader(m)
	m.Close() // the reader holds its own mapping
	if err != nil {
		return nil, fmt.Errorf("read drop_events: %w", err)
	}
	out := make(chan DropEvent, 256)
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	go func() {
		defer close(out)
		defer stop()
		defer rd.Close()
		var rec ringbuf.Record
		for {
			if err := rd.ReadInto(&rec); err != nil {
				if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
				x.log.Warn("drop events: read failed, stopping", "error", err)
				return
			}
			ev, err := x.decodeEvent(rec.RawSample)
			if err != nil {
				x.log.Warn("drop events: skipping a malformed record", "error", err)
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// ifnames caches interface names for events; an index unseen for a
// minute is looked up again (interfaces come and go).
var ifnames = &ifnameCache{m: map[int]ifname{}}

type ifname struct {
	name string
	at   time.Time
}

type ifnameCache struct {
	mu sync.Mutex
	m  map[int]ifname
}

func (c *ifnameCache) name(idx int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.m[idx]; ok && time.Since(n.at) < time.Minute {
		return n.name
	}
	n := ifname{at: time.Now()}
	if ifi, err := net.InterfaceByIndex(idx); err == nil {
		n.name = ifi.Name
	}
	if len(c.m) > 4096 {
		clear(c.m)
	}
	c.m[idx] = n
	return n.name
}

func (x *XDP) decodeEvent(raw []byte) (DropEvent, error) {
	var e xdpbanDropEvent
	if len(raw) < 72 {
		return DropEvent{}, fmt.Errorf("record of %d bytes, want 72", len(raw))
	}
	e.TimeNs = nativeEndian.Uint64(raw[0:])
	e.Ifindex = nativeEndian.Uint32(raw[8:])
	e.JailId = nativeEndian.Uint32(raw[12:])
	copy(e.Src[:], raw[16:32])
	copy(e.Dst[:], raw[32:48])
	e.Sport = nativeEndian.Uint16(raw[48:])
	e.Dport = nativeEndian.Uint16(raw[50:])
	e.Length = nativeEndian.Uint32(raw[52:])
	e.Family, e.Proto, e.TcpFlags = raw[56], raw[57], raw[58]
	e.Suppressed = nativeEndian.Uint64(raw[64:])

	ev := DropEvent{
		Time: toWall(e.TimeNs), Ifindex: int(e.Ifindex), Proto: e.Proto,
		SrcPort: e.Sport, DstPort: e.Dport, Length: int(e.Length), TCPFlags: e.TcpFlags,
		Suppressed: e.Suppressed, Iface: ifnames.name(int(e.Ifindex)),
	}
	switch e.Family {
	case 4:
		ev.Src = netip.AddrFrom4([4]byte(e.Src[:4]))
		ev.Dst = netip.AddrFrom4([4]byte(e.Dst[:4]))
	case 6:
		ev.Src = netip.AddrFrom16(e.Src)
		ev.Dst = netip.AddrFrom16(e.Dst)
	default:
		return DropEvent{}, fmt.Errorf("record with address family %d", e.Family)
	}
	x.mu.Lock()
	ev.Jail = x.jailName(e.JailId)
	x.mu.Unlock()
	return ev, nil
}
