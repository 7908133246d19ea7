package drops

import (
	"context"

	"github.com/xdpban/xdpban/internal/bans"
)

// FromBackend converts a backend's drop event (XDP's ring buffer).
func FromBackend(ev bans.DropEvent) Event {
	out := Event{Time: ev.Time, Iface: ev.Iface, Src: ev.Src.Unmap(), Dst: ev.Dst.Unmap(), Proto: ev.Proto,
		Len: uint32(max(ev.Length, 0)), Jail: ev.Jail, Suppressed: ev.Suppressed}
	if HasPorts(ev.Proto) {
		out.SPort, out.DPort = ev.SrcPort, ev.DstPort
	}
	if ev.Proto == ProtoTCP {
		out.Flags = ev.TCPFlags
	}
	return out
}

// Convert adapts a backend's event channel to a channel of Events for
// Pump; it is closed when in is or ctx ends.
func Convert(ctx context.Context, in <-chan bans.DropEvent) <-chan Event {
	out := make(chan Event, cap(in))
	go func() {
		defer close(out)
		for ev := range in {
			select {
			case out <- FromBackend(ev):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
