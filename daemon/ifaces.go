package daemon

import (
	"github.com/xdpban/xdpban/daemon/enforce"
	"github.com/xdpban/xdpban/internal/bans"
)

// reattacher is a backend bound to interfaces that can be deleted and
// made again (XDP; iptables rules are not per interface).
type reattacher interface {
	Reattach() (gone, back []string, err error)
}

// ifaceCheckEvery is how many sweep ticks pass between interface checks:
// a deleted interface passes nothing, so only the one re-created after it
// matters, and a few seconds to notice it are enough.
const ifaceCheckEvery = 5

// checkInterfaces puts enforcement back on protected interfaces that were
// deleted and made again, and says once when one goes and comes back: an
// operator rebuilding a bond or VLAN must not lose filtering silently.
func (d *Daemon) checkInterfaces(b bans.Backend) {
	r, ok := enforce.Unwrap(b).(reattacher)
	if !ok {
		return
	}
	gone, back, err := r.Reattach()
	if d.gone == nil {
		d.gone = map[string]bool{}
	}
	for _, n := range gone {
		if !d.gone[n] {
			d.gone[n] = true
			d.log.Warn("protected interface gone: enforcement resumes when an interface of that name exists again", "interface", n)
		}
	}
	for _, n := range back {
		delete(d.gone, n)
		d.log.Info("protected interface back: enforcement attached again", "interface", n)
	}
	if err != nil {
		d.log.Error("cannot attach enforcement to a re-created interface", "err", err)
	}
}
