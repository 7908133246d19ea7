package daemon

import (
	"net/netip"
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/daemon/fleet"
	"github.com/xdpban/xdpban/internal/bans"
)

// Observer is told of every change to the ban book once it is enforced
// and stored, bans and unbans alike, on one path: Core calls it from a
// ban (jail, CLI, import, fleet), an unban and the expiry sweep. The
// notification actions and the fleet are observers; so is the outbox of
// a CLI working with no daemon. Calls come from the changing goroutine:
// an observer that does I/O queues it.
type Observer interface {
	// Banned has the bans of one batch, each with the event it came
	// with (a jail's failures and lines), and why: "jail", "manual",
	// "import".
	Banned(bs []bans.Ban, evs []actions.Event, reason string)
	// Unbanned has the bans lifted and why: "manual" (an operator's
	// unban), "remote" (another host's), "expired".
	Unbanned(bs []bans.Ban, why string, now time.Time)
}

// BanCause is what Core.BanFor hands its observers with a batch.
type BanCause struct {
	Reason string
	// Events are one per ban, in order; nil: made from the bans.
	Events []actions.Event
}

func (c *Core) banned(bs []bans.Ban, cause BanCause, now time.Time) {
	if len(c.Observers) == 0 {
		return
	}
	evs := cause.Events
	if len(evs) != len(bs) {
		evs = make([]actions.Event, len(bs))
		for i, b := range bs {
			evs[i] = actions.FromBan(actions.Ban, b, now)
		}
	}
	for _, o := range c.Observers {
		o.Banned(bs, evs, cause.Reason)
	}
}

func (c *Core) unbanned(bs []bans.Ban, why string, now time.Time) {
	if len(bs) == 0 {
		return
	}
	for _, o := range c.Observers {
		o.Unbanned(bs, why, now)
	}
}

// NotifyObserver sends every ban and unban to n as an action event.
func NotifyObserver(n Notifier) Observer { return notifyObserver{n} }

type notifyObserver struct{ n Notifier }

func (o notifyObserver) Banned(_ []bans.Ban, evs []actions.Event, _ string) {
	for _, ev := range evs {
		o.n.Notify(ev)
	}
}

func (o notifyObserver) Unbanned(bs []bans.Ban, _ string, now time.Time) {
	for _, b := range bs {
		o.n.Notify(actions.FromBan(actions.Unban, b, now))
	}
}

// fleetObserver shares what this host decides: its bans (publish keeps
// only those of local origin) and its operators' unbans. Another host's
// unban and an expiry are not sent back: the first came from the bucket,
// the second ends there by its own TTL.
type fleetObserver struct{ d *Daemon }

func (o fleetObserver) Banned(bs []bans.Ban, _ []actions.Event, reason string) {
	o.d.publish(bs, reason)
}

func (o fleetObserver) Unbanned(bs []bans.Ban, why string, _ time.Time) {
	if why != "manual" {
		return
	}
	ps := make([]netip.Prefix, len(bs))
	for i, b := range bs {
		ps[i] = b.Prefix
	}
	o.d.publishUnban(ps)
}

// FleetQueue is the fleet observer of a CLI working on the pins with no
// daemon running: what it bans and unbans goes in the store's outbox as
// node's (fleet.QueueBans/QueueUnbans), and the next start publishes it.
// Without it an unban made that way came back from the bucket. A queueing
// failure leaves the change in force here, only not shared; warn says so.
func FleetQueue(out fleet.Outbox, node string, warn func(error)) Observer {
	return fleetQueue{out, node, warn}
}

type fleetQueue struct {
	out  fleet.Outbox
	node string
	warn func(error)
}

func (q fleetQueue) Banned(bs []bans.Ban, _ []actions.Event, reason string) {
	if err := fleet.QueueBans(q.out, q.node, bs, reason); err != nil {
		q.warn(err)
	}
}

func (q fleetQueue) Unbanned(bs []bans.Ban, why string, _ time.Time) {
	if why != "manual" {
		return
	}
	ps := make([]netip.Prefix, len(bs))
	for i, b := range bs {
		ps[i] = b.Prefix
	}
	if err := fleet.QueueUnbans(q.out, ps); err != nil {
		q.warn(err)
	}
}
