package daemon

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
)

var _ control.Importer = (*Daemon)(nil)

// ImportPart is how many bans of an import go to the kernel and the store
// at once: large enough that a commit's fsync is shared by many bans,
// small enough that the kernel's next batch overlaps it.
const ImportPart = 1 << 16

// comparePrefix orders prefixes as the store's keys do (store.KeyOf):
// family, address, length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// Import implements control.Importer: a whole file of addresses, one a
// line, banned in one step. Every line is parsed and checked first (bad
// lines, or more than the tables can take, ban nothing: the first bad
// lines are named); then the lot goes to the kernel in batches and to the
// store in sorted bulk transactions, the two overlapped (Core.Import).
// Sent in 5,000-ban requests, a million bans took 200 round trips, 200
// commits at random places in the database (289 bytes a ban on disk) and
// 8-10 s; ipset restore takes 1.5-2 s for the same set.
func (d *Daemon) Import(ctx context.Context, req control.ImportRequest, body io.Reader) (control.ImportResponse, error) {
	if err := d.waitUp(ctx); err != nil {
		return control.ImportResponse{}, err
	}
	if d.core == nil {
		return control.ImportResponse{}, ErrDryRun
	}
	rules, err := d.manualRules(req.Force)
	if err != nil {
		return control.ImportResponse{}, err
	}
	start := time.Now()
	text, err := readText(body, req.Size)
	if err != nil {
		return control.ImportResponse{}, fmt.Errorf("%w: read the import: %w", control.ErrBadRequest, err)
	}
	read := time.Now()
	tmpl, ps, narrowed, err := ParseBanFile(text, req, d.widen, d.opt.Now(), rules)
	text = ""
	if err != nil {
		return control.ImportResponse{}, err
	}
	if narrowed > 0 {
		d.log.Warn("import: bans narrowed so as not to cover a protected address (ignoreip, the host's own)", "bans", narrowed)
	}
	parsed := time.Now()
	n, err := d.core.Import(ctx, tmpl, ps, ImportPart)
	ps = nil
	d.log.Info("import", "jail", tmpl.Jail, "bans", n, "read", read.Sub(start).Round(time.Millisecond),
		"parse", parsed.Sub(read).Round(time.Millisecond), "enforce", time.Since(parsed).Round(time.Millisecond))
	if err != nil {
		if n > 0 {
			err = fmt.Errorf("%w (%d were banned)", err, n)
		}
		return control.ImportResponse{Banned: n}, err
	}
	// A million parsed bans are garbage now: hand the memory back rather
	// than hold the peak until the scavenger gets round to it.
	debug.FreeOSMemory()
	d.core.ReleaseStoreCache()
	return control.ImportResponse{Banned: n}, nil
}

// readText reads an import's body, size bytes when known, into one
// string with no copy after the read.
func readText(body io.Reader, size int64) (string, error) {
	var sb strings.Builder
	if size > 0 && size <= control.ImportMaxBody {
		sb.Grow(int(size))
	}
	_, err := io.Copy(&sb, body)
	return sb.String(), err
}

// ParseBanFile reads an import (control.ScanBanText's format): the
// prefixes to ban, sorted in the store's key order without duplicates,
// and the ban each gets (tmpl: req's jail and duration, the jail's
// scope), checked against rules. Any bad line refuses the whole file: a
// *control.BadLinesError naming the first of them. narrowed counts bans
// cut so as not to cover a protected address. (Parsed on one core: a
// million lines take 0.13 s; in parts on two, no less.)
func ParseBanFile(text string, req control.ImportRequest, w bans.Widen, now time.Time, rules ItemRules) (tmpl bans.Ban, ps []netip.Prefix, narrowed int, err error) {
	// What every line shares is checked, and an error reported, once.
	if tmpl, err = banTemplate(req.Jail, req.For, now, rules); err != nil {
		return tmpl, nil, 0, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	}
	ps = make([]netip.Prefix, 0, strings.Count(text, "\n")+1)
	bad := &control.BadLinesError{}
	err = control.ScanBanText(text, func(line int, s string) error {
		wide, err := w.Parse(s)
		if err == nil {
			err = CheckWidth(wide, s)
		}
		p := wide
		if err == nil && !req.Force {
			p, err = guard(rules.Protected, s, p)
		}
		if err != nil {
			bad.Add(line, err)
			return nil
		}
		if p != wide {
			narrowed++
		}
		ps = append(ps, p)
		return nil
	})
	switch {
	case err != nil:
		return tmpl, nil, 0, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	case bad.Total > 0:
		return tmpl, nil, 0, bad
	case len(ps) == 0:
		return tmpl, nil, 0, fmt.Errorf("%w: no addresses in it", control.ErrBadRequest)
	}
	// A blocklist in order already costs one pass.
	if !slices.IsSortedFunc(ps, comparePrefix) {
		slices.SortFunc(ps, comparePrefix)
	}
	return tmpl, slices.Compact(ps), narrowed, nil
}
