package loader

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
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
		ifi, ierr := net.InterfaceByName(name)
		if ierr == nil && l != nil && sameIfindex(l, ifi.Index) == nil {
			continue
		}
		if l != nil {
			// Defunct: the kernel already took it off the old
			// device; drop our hold and its pin.
			_ = l.Detach()
			l.Close()
			x.links[name] = nil
			if rerr := os.Remove(filepath.Join(x.pin, linkPin(name))); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unpin the lost link of %s: %w", name, rerr))
			}
		}
		if ierr != nil {
			gone = append(gone, name)
			continue
		}
		nl, aerr := x.attach(x.pin, false, name, ifi.Index)
		if aerr != nil {
			errs = append(errs, fmt.Errorf("reattach %s: %w", name, aerr))
			continue
		}
		x.links[name] = nl
		back = append(back, name)
	}
	return gone, back, errors.Join(errs...)
}
