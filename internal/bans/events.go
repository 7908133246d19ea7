package bans

import (
	"context"
	"net/netip"
	"time"
)

// DropEvent is one sampled drop a backend reports (XDP's ring buffer).
type DropEvent struct {
	Time     time.Time
	Ifindex  int
	Src, Dst netip.Addr
	Proto    uint8  // IP protocol (6 TCP, 17 UDP, ...)
	SrcPort  uint16 // 0 unless TCP/UDP with a readable header
	DstPort  uint16
	Length   int   // frame bytes
	TCPFlags uint8 // TCP only
	Jail     string
	// Iface is the name of Ifindex in the reader's network namespace
	// ("" if it has none there).
	Iface string
	// Suppressed is how many drops of the same ban entry the kernel's
	// sampling did not report since the entry's previous event: the
	// event stands for 1+Suppressed drops.
	Suppressed uint64
}

// DropSource is a Backend that reports sampled drops (loader.XDP). The
// channel has a single reader and closes when ctx ends.
type DropSource interface {
	DropEvents(ctx context.Context) (<-chan DropEvent, error)
}

// RateLimitedSource is a source a backend's SYN rate limiter throttles.
type RateLimitedSource struct {
	Prefix  netip.Prefix // /32, or the IPv6 ban width
	Port    uint16
	Jail    string
	Dropped uint64
	// OverSince is when the source began exceeding without a second's
	// pause; zero when it is not exceeding now. LastOver is its latest
	// dropped SYN. Userspace bans a source once LastOver-OverSince
	// reaches the jail's ratelimit.banafter.
	OverSince time.Time
	LastOver  time.Time
}

// OverFor is how long the source has been exceeding its limit without
// pause, as of its latest dropped SYN.
func (s RateLimitedSource) OverFor() time.Duration {
	if s.OverSince.IsZero() {
		return 0
	}
	return s.LastOver.Sub(s.OverSince)
}

// RateLimiter is a Backend with a per-source SYN rate limiter
// (loader.XDP; the netfilter backends have none).
type RateLimiter interface {
	RateLimited(ctx context.Context) ([]RateLimitedSource, error)
}
