package daemon

import (
	"net/netip"
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/daemon/fleet"
	"github.com/xdpban/xdpban/daemon/ledger"
	"github.com/xdpban/xdpban/internal/bans"
)

// fleetObserver shares what this host decides: its bans (publish keeps
// only those of local origin) and its operators' unbans. Another host's
// unban and an expiry are not sent back: the first came from the bucket,
// the second ends there by its own TTL.
type fleetObserver struct{ d *Daemon }

func (o fleetObserver) Banned(bs []bans.Ban, _ []actions.Event, reason string, _ time.Time) {
	o.d.publish(bs, reason)
}

func (o fleetObserver) Unbanned(bs []bans.Ban, why string, _ time.Time) {
	o.d.publishUnban(operatorUnbans(bs, why))
}

// operatorUnbans are the prefixes of bs when an operator lifted them, the
// only unbans the fleet is told of; nil otherwise.
func operatorUnbans(bs []bans.Ban, why string) []netip.Prefix {
	if why != "manual" {
		return nil
	}
	ps := make([]netip.Prefix, len(bs))
	for i, b := range bs {
		ps[i] = b.Prefix
	}
	return ps
}

// FleetQueue is the fleet observer of a CLI working on the pins with no
// daemon running: what it bans and unbans goes in the store's outbox as
// node's (fleet.QueueBans/QueueUnbans), and the next start publishes it.
// Without it an unban made that way came back from the bucket. A queueing
// failure leaves the change in force here, only not shared; warn says so.
func FleetQueue(out fleet.Outbox, node string, warn func(error)) ledger.Observer {
	return fleetQueue{out, node, warn}
}

type fleetQueue struct {
	out  fleet.Outbox
	node string
	warn func(error)
}

func (q fleetQueue) Banned(bs []bans.Ban, _ []actions.Event, reason string, _ time.Time) {
	if err := fleet.QueueBans(q.out, q.node, bs, reason); err != nil {
		q.warn(err)
	}
}

func (q fleetQueue) Unbanned(bs []bans.Ban, why string, _ time.Time) {
	ps := operatorUnbans(bs, why)
	if len(ps) == 0 {
		return
	}
	if err := fleet.QueueUnbans(q.out, ps); err != nil {
		q.warn(err)
	}
}
