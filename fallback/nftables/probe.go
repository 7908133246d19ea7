package nftables

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/xdpban/xdpban/internal/bans"
)

// Probe checks that the kernel of the namespace at netns (empty: the
// caller's) does everything this backend needs: it creates a scratch
// table with one set of each kind (timeouts, element counters, intervals,
// concatenated intervals) and a rule looking them up, then deletes it.
// Nothing is hooked, so no packet sees the scratch table. An error wraps
// bans.ErrUnsupported: auto then falls back to iptables.
func Probe(ctx context.Context, netns string) error {
	conn, nsf, err := dial(netns)
	if err != nil {
		return err
	}
	defer func() {
		_ = conn.CloseLasting()
		if nsf != nil {
			nsf.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: "xdpban-probe-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	b := &Backend{opts: Options{BlockType: "DROP"}, table: t}
	conn.AddTable(t)
	c := conn.AddChain(&nftables.Chain{Name: chainBans, Table: t})
	for _, k := range []kind{{bits: 32}, {bits: 24}, {v6: true, bits: 64, scoped: true}} {
		s := k.set(t, 16)
		if err := conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables probe: %w: %w", bans.ErrUnsupported, err)
		}
		r := b.setRule(k, s)
		r.Chain = c
		conn.AddRule(r)
	}
	conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: []expr.Any{&expr.Counter{}}})
	ferr := conn.Flush()
	// Whatever part was made goes, even after a failure.
	conn.DelTable(t)
	derr := conn.Flush()
	if ferr != nil {
		return fmt.Errorf("nftables probe: create a scratch table with timeout, interval and concatenated sets: %w: %w", bans.ErrUnsupported, ferr)
	}
	if derr != nil {
		return fmt.Errorf("nftables probe: delete scratch table inet %s: %w", t.Name, derr)
	}
	return nil
}

// Exists reports whether the namespace at netns (empty: the caller's)
// has the table inet table (DefaultTable if empty), reading only.
func Exists(netns, table string) (bool, error) {
	table = cmp.Or(table, DefaultTable)
	conn, nsf, err := dial(netns)
	if err != nil {
		return false, err
	}
	defer func() {
		_ = conn.CloseLasting()
		if nsf != nil {
			nsf.Close()
		}
	}()
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list tables: %w: %w", bans.ErrUnsupported, err)
	}
	for _, t := range tables {
		if t.Name == table {
			return true, nil
		}
	}
	return false, nil
}
