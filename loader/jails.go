package loader

import (
	"fmt"
	"unicode/utf8"

	"github.com/xdpban/xdpban/internal/bans"
)

// Jail names live in the jail_names array map (id → name) so the CLI can
// name jails from the pins alone. Id 0 is "no jail"; ids are never
// reused, a ban keeps pointing at the name it was made with.

const jailNameLen = 32 // char name[32] in bpf/xdpban.c, NUL included

// jailID returns the id for name, allocating a slot the first time.
// Callers hold x.mu.
func (x *XDP) jailID(name string) (uint32, error) {
	if name == "" {
		return 0, nil
	}
	if len(name) >= jailNameLen || !utf8.ValidString(name) {
		return 0, fmt.Errorf("jail name %q: use at most %d bytes of UTF-8", name, jailNameLen-1)
	}
	if err := x.loadJails(false); err != nil {
		return 0, err
	}
	if id, ok := x.jailIDs[name]; ok {
		return id, nil
	}
	// Another process (CLI vs daemon) may have named a slot since we
	// last read the map.
	if err := x.loadJails(true); err != nil {
		return 0, err
	}
	if id, ok := x.jailIDs[name]; ok {
		return id, nil
	}
	for id := uint32(1); id < x.jails.MaxEntries(); id++ {
		if _, used := x.jailNames[id]; used {
			continue
		}
		var v xdpbanJailName
		for i := 0; i < len(name); i++ {
			v.Name[i] = int8(name[i])
		}
		if err := x.jails.Put(id, &v); err != nil {
			return 0, fmt.Errorf("record jail %q in jail_names: %w", name, err)
		}
		x.jailIDs[name] = id
		x.jailNames[id] = name
		return id, nil
	}
	return 0, fmt.Errorf("jail %q: all %d jail ids are used: run `xdpban detach` to reset them: %w",
		name, x.jails.MaxEntries()-1, bans.ErrFull)
}

// jailName returns the name recorded for id ("" for 0 or unknown ids).
func (x *XDP) jailName(id uint32) string {
	if id == 0 || x.jails == nil {
		return ""
	}
	if err := x.loadJails(false); err != nil {
		return ""
	}
	if n, ok := x.jailNames[id]; ok {
		return n
	}
	if err := x.loadJails(true); err != nil {
		return ""
	}
	return x.jailNames[id]
}

func (x *XDP) loadJails(force bool) error {
	if x.jailIDs != nil && !force {
		return nil
	}
	ids := map[string]uint32{}
	names := map[uint32]string{}
	err := walkBatch(x.jails, func(id uint32, v xdpbanJailName) error {
		var b []byte
		for _, c := range v.Name {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		if len(b) == 0 {
			return nil
		}
		names[id] = string(b)
		if _, dup := ids[string(b)]; !dup {
			ids[string(b)] = id
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read jail_names: %w", err)
	}
	x.jailIDs, x.jailNames = ids, names
	return nil
}
