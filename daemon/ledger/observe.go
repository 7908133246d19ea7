package ledger

import (
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/internal/bans"
)

// Observer is told of every change to the ban book once it is enforced
// and stored, bans and unbans alike, on one path: Core calls it from a
// ban (jail, CLI, import, fleet), an unban and the expiry sweep. The
// notification actions and the fleet are observers; so is the outbox of
// a CLI working with no daemon. Calls come from the changing goroutine:
// an observer that does I/O queues it, and what it keeps of a call's
// slices it copies (an import reuses them).
type Observer interface {
	// Banned has the bans of one batch, each with the event it came
	// with (a jail's failures and lines) or, when evs is nil, none (an
	// observer needing events makes them: a million imported bans need
	// none unless their jail has actions), and why: "jail", "manual",
	// "import".
	Banned(bs []bans.Ban, evs []actions.Event, reason string, now time.Time)
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
		evs = nil
	}
	for _, o := range c.Observers {
		o.Banned(bs, evs, cause.Reason, now)
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

func (o notifyObserver) Banned(bs []bans.Ban, evs []actions.Event, _ string, now time.Time) {
	if evs != nil {
		for _, ev := range evs {
			o.n.Notify(ev)
		}
		return
	}
	w, picky := o.n.(interface{ Acts(jail string) bool })
	jail, acts := "", false
	for i, b := range bs {
		if picky && (i == 0 || b.Jail != jail) {
			jail, acts = b.Jail, w.Acts(b.Jail)
		}
		if !picky || acts {
			o.n.Notify(actions.FromBan(actions.Ban, b, now))
		}
	}
}

func (o notifyObserver) Unbanned(bs []bans.Ban, _ string, now time.Time) {
	for _, b := range bs {
		o.n.Notify(actions.FromBan(actions.Unban, b, now))
	}
}
