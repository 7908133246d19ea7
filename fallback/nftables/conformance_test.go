package nftables

import (
	"context"
	"testing"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/bans/bantest"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// openIn opens the backend inside the pair's host namespace.
func openIn(t *testing.T, p *nspairtest.Pair, o Options) *Backend {
	t.Helper()
	o.Netns = p.Host.Path()
	b, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open nftables backend in %s: %v", p.Host.Name, err)
	}
	return b
}

func TestConformance(t *testing.T) {
	bantest.Run(t, func(t *testing.T, p *nspairtest.Pair) func() bans.Backend {
		return func() bans.Backend { return openIn(t, p, Options{}) }
	})
}
