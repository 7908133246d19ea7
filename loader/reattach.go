package loader

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"
)

// Reattach checks every protected interface's link. Deleting an interface
// (a bond or VLAN rebuilt, a container's veth) detaches the program from
// it for good: one made again under the same name would pass all traffic
// until the daemon restarted. Reattach puts the program back on such an
// interface once it exists again. gone lists the interfaces that do not
// exist now; back those attached again by this call. The maps, and so
// every ban, are shared by all links and untouched.
func (x *XDP) Reattach() (gone, back []string, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.checkOpen(); err != nil {
		return nil, nil, err
	}
	if x.prog == nil {
		// OpenPinned (the CLI): not the process that owns the links.
		return nil, nil, nil
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(x.links)) {
		l := x.links[name]
		// One netlink request per interface: net.InterfaceByName lists
		// them all, every few seconds on a host with thousands.
		dev, lerr := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if lerr != nil && !errors.As(lerr, &notFound) {
			// A failed lookup says nothing about the link: leave it.
			errs = append(errs, fmt.Errorf("look up interface %s: %w", name, lerr))
			continue
		}
		if l != nil {
			info, err := l.Info()
			if err != nil {
				errs = append(errs, fmt.Errorf("read the xdp link of %s: %w", name, err))
				continue
			}
			ifindex := 0
			if xi := info.XDP(); xi != nil {
				ifindex = int(xi.Ifindex)
			}
			switch {
			case lerr == nil && ifindex == dev.Attrs().Index:
				continue // healthy
			case lerr != nil && ifindex != 0:
				// Renamed, not deleted: the program still runs on
				// that device; nothing to attach under this name.
				continue
			}
			// Defunct (ifindex 0: the kernel took it off the deleted
			// device) or the name now belongs to a new device: drop
			// our hold and its pin.
			_ = l.Detach()
			l.Close()
			x.links[name] = nil
			if rerr := os.Remove(filepath.Join(x.pin, linkPin(name))); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unpin the lost link of %s: %w", name, rerr))
			}
		}
		if lerr != nil {
			gone = append(gone, name)
			continue
		}
		nl, aerr := x.attach(x.pin, false, name, dev.Attrs().Index)
		if aerr != nil {
			errs = append(errs, fmt.Errorf("reattach %s: %w", name, aerr))
			continue
		}
		x.links[name] = nl
		back = append(back, name)
	}
	return gone, back, errors.Join(errs...)
}
