package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync/atomic"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
	"golang.org/x/sync/errgroup"
)

var _ control.Importer = (*Daemon)(nil)

// importPart is how many bans of an import go to the kernel and the store
// at once.
const importPart = 1 << 16

// importInFlight is how many parts are applied at once.
const importInFlight = 2

// comparePrefix orders prefixes as the store's keys do: family, address,
// length.
func comparePrefix(a, b netip.Prefix) int {
	ka, kb := store.KeyOf(a), store.KeyOf(b)
	return bytes.Compare(ka[:], kb[:])
}

// Import implements control.Importer: a whole file of addresses, one a
// line, banned in one step. Every line is parsed and checked first (one
// bad line, or one the tables cannot take, bans nothing); then the lot is
// enforced with one batch into the kernel and written to the store in
// sorted bulk transactions, as one Core.Ban. Sent in 5,000-ban requests,
// a million bans took 200 round trips, 200 commits at random places in
// the database (289 bytes a ban on disk) and 8-10 s; ipset restore takes
// 1.5-2 s for the same set.
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
	now := d.opt.Now()
	it := control.BanItem{Jail: req.Jail, For: req.For, Force: req.Force}
	// Read whole (25 MB for a million lines) to size the list once:
	// growing it by appends held up to three copies of it at a time.
	raw, err := io.ReadAll(body)
	if err != nil {
		return control.ImportResponse{}, fmt.Errorf("%w: read the import: %w", control.ErrBadRequest, err)
	}
	bs := make([]bans.Ban, 0, bytes.Count(raw, []byte{'\n'})+1)
	narrowed := 0
	err = control.ScanBanFile(bytes.NewReader(raw), func(line int, s string) error {
		it.Addr = s
		b, wide, err := parseItem(it, d.widen, now, rules)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if wide != b.Prefix {
			narrowed++
		}
		bs = append(bs, b)
		return nil
	})
	if err != nil {
		return control.ImportResponse{}, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	}
	if len(bs) == 0 {
		return control.ImportResponse{}, fmt.Errorf("%w: no addresses in the import", control.ErrBadRequest)
	}
	if narrowed > 0 {
		d.log.Warn("import: bans narrowed so as not to cover a protected address (ignoreip, the host's own)", "bans", narrowed)
	}
	raw = nil
	// All or nothing: the whole list must fit before any of it is
	// banned. Then it goes in key order and in parts, so that the
	// kernel batches and store transactions stay small and the store
	// writes each part's pages once.
	if _, err := d.core.CheckRoom(bs, nil); err != nil {
		return control.ImportResponse{}, err
	}
	slices.SortFunc(bs, func(a, b bans.Ban) int { return comparePrefix(a.Prefix, b.Prefix) })
	// Two parts in flight: one's store commit (an fsync) and ban log
	// overlap the next one's kernel batch. Parts are disjoint, so their
	// stripe locks never meet.
	var (
		g      errgroup.Group
		banned atomic.Int64
		failed atomic.Bool
	)
	g.SetLimit(importInFlight)
	for i := 0; i < len(bs) && !failed.Load(); i += importPart {
		part := bs[i:min(i+importPart, len(bs))]
		g.Go(func() error {
			if err := d.core.BanImported(ctx, part); err != nil {
				failed.Store(true)
				return err
			}
			banned.Add(int64(len(part)))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if n := banned.Load(); n > 0 {
			err = fmt.Errorf("%w (%d of %d were banned)", err, n, len(bs))
		}
		return control.ImportResponse{Banned: int(banned.Load())}, err
	}
	n := len(bs)
	bs = nil
	// A million parsed bans are garbage now: hand the memory back rather
	// than hold the peak until the scavenger gets round to it.
	debug.FreeOSMemory()
	d.core.ReleaseStoreCache()
	return control.ImportResponse{Banned: n}, nil
}
