// Package loader is xdpban's XDP backend: it loads bpf/xdpban.c, pins its
// maps and links under a bpffs directory and implements bans.Backend on
// those maps.
//
// Enforcement lives in the kernel, not in the daemon: the links and maps
// are pinned, so Close (or a crash) leaves every ban enforced, a
// restarted daemon swaps the new program into the pinned links without a
// moment of no enforcement, and the CLI can read and change bans with
// OpenPinned while no daemon runs.
package loader

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/bans"
)

// MapSizes are the ban maps' capacities (the configuration's map_size_*
// keys); zero fields take the defaults below.
type MapSizes struct {
	V4, V6, V4Net, V6Net int
}

// Default map capacities (MapSizes zero values).
const (
	DefaultHostEntries = 1 << 20 // ban_v4, ban_v6
	DefaultNetEntries  = 1 << 16 // ban_v4_net, ban_v6_net
)

// layoutVersion must equal XDPBAN_LAYOUT in bpf/xdpban.c
// (TestLayoutVersion checks the object).
const layoutVersion = 1

// Sentinel errors callers branch on.
var (
	// ErrNotLoaded: the pin directory holds no xdpban maps (the daemon
	// never ran, or `xdpban detach` removed them).
	ErrNotLoaded = errors.New("xdp enforcement not loaded")
	// ErrIncompatible: pinned maps were made by a different layout, map
	// size or ipv6_prefix and cannot be reused.
	ErrIncompatible = errors.New("pinned xdp maps incompatible")
	// ErrPinPath: pin_path is not under a bpf filesystem (a setting to
	// fix, not a host limit).
	ErrPinPath = errors.New("pin path not on a bpf filesystem")
)

var nativeEndian = binary.NativeEndian

const linkPrefix = "link_"

// bpffs refuses names containing '.', which interface names may hold
// (eth0.100), so pins escape it URL-style.
var pinEscape = strings.NewReplacer("%", "%25", ".", "%2e")
var pinUnescape = strings.NewReplacer("%2e", ".", "%25", "%")

func linkPin(ifname string) string { return linkPrefix + pinEscape.Replace(ifname) }

func linkName(pin string) (string, bool) {
	n, ok := strings.CutPrefix(pin, linkPrefix)
	return pinUnescape.Replace(n), ok
}

// Options configure Open.
type Options struct {
	// Interfaces to protect, by name, in the caller's network namespace.
	Interfaces []string
	// PinPath is the bpffs directory holding maps and links, e.g.
	// /sys/fs/bpf/xdpban. Its parent must be on bpffs.
	PinPath string
	// MapSizes: zero fields take the defaults.
	MapSizes MapSizes
	// IPv6Prefix is the width a single IPv6 address is banned at
	// (48..128); 0 means bans.DefaultIPv6Prefix.
	IPv6Prefix int
	// DropLogRate and DropLogGlobal set drop-event sampling (SetDropLog);
	// both zero leaves events off.
	DropLogRate, DropLogGlobal int
	// RateLimits are the SYN rate limits (SetRateLimits, RulesFromJails).
	RateLimits []RateLimitRule
	Logger     *slog.Logger
}

// XDP is the XDP backend. It implements bans.Backend.
type XDP struct {
	mu       sync.Mutex
	pin      string
	log      *slog.Logger
	widen    bans.Widen
	v6Prefix int

	tbl         [tables]*ebpf.Map
	stats       *ebpf.Map
	meta        *ebpf.Map
	jails       *ebpf.Map
	events      *ebpf.Map // drop_events ring buffer
	rlRules     *ebpf.Map
	rlBuckets   *ebpf.Map
	rlJailStats *ebpf.Map
	scopes      *ebpf.Map // xdpban_scopes (scopes.go)
	jailDrops   *ebpf.Map
	// The hit cache and its generation (hitcache.go); nil when
	// OpenPinned finds pins made before the cache.
	hitCache *ebpf.Map
	gen      *ebpf.Map

	prog  *ebpf.Program        // nil when opened with OpenPinned
	links map[string]link.Link // interface name → link, Open only

	jailIDs   map[string]uint32
	jailNames map[uint32]string
	// scopeIDs maps a scope's text to its slot, scopeOf a slot to its
	// scope (scopes.go).
	scopeIDs map[string]uint16
	scopeOf  map[uint16]bans.Scope
	closed   bool

	// lock is the pin path's flock (lock.go), held from Open to
	// Close/Detach; nil for OpenPinned.
	lock *os.File
	// fresh: Open found nothing pinned and made the pins itself.
	fresh bool
}

var _ bans.Backend = (*XDP)(nil)

// Kind implements bans.Backend.
func (x *XDP) Kind() string { return "xdp" }

// Fresh reports whether Open made the pins (nothing was pinned before):
// a start that fails after it may Detach and leave the host as it was.
func (x *XDP) Fresh() bool { return x.fresh }

// PinPath is the bpffs directory the backend works on.
func (x *XDP) PinPath() string { return x.pin }

// Widen is the IPv6 widening the maps were loaded with (read back from the
// pinned meta map by OpenPinned), so a CLI without a daemon parses
// addresses exactly as the daemon would.
func (x *XDP) Widen() bans.Widen { return x.widen }

// Probe checks that this kernel can run xdpban's program. Failures wrap
// bans.ErrUnsupported so the daemon's "auto" backend falls back to
// iptables.
func Probe() error {
	if err := features.HaveProgramType(ebpf.XDP); err != nil {
		return fmt.Errorf("xdp programs: %w: %w", bans.ErrUnsupported, err)
	}
	for _, mt := range []ebpf.MapType{ebpf.LRUHash, ebpf.LPMTrie, ebpf.PerCPUArray, ebpf.RingBuf} {
		if err := features.HaveMapType(mt); err != nil {
			return fmt.Errorf("bpf map type %s: %w: %w", mt, bans.ErrUnsupported, err)
		}
	}
	for _, fn := range []asm.BuiltinFunc{asm.FnKtimeGetBootNs, asm.FnJiffies64, asm.FnRingbufReserve} {
		if err := features.HaveProgramHelper(ebpf.XDP, fn); err != nil {
			return fmt.Errorf("bpf helper %s in XDP (linux 5.9+ needed): %w: %w", fn, bans.ErrUnsupported, err)
		}
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PinPath == "" {
		return o, errors.New("empty pin path: set pin_path in [xdpban] (default /sys/fs/bpf/xdpban)")
	}
	o.PinPath = filepath.Clean(o.PinPath)
	if o.IPv6Prefix == 0 {
		o.IPv6Prefix = bans.DefaultIPv6Prefix
	}
	if err := bans.ValidateIPv6Prefix(o.IPv6Prefix); err != nil {
		return o, err
	}
	for _, s := range []struct {
		name string
		v    *int
		def  int
	}{
		{"v4", &o.MapSizes.V4, DefaultHostEntries},
		{"v6", &o.MapSizes.V6, DefaultHostEntries},
		{"v4_net", &o.MapSizes.V4Net, DefaultNetEntries},
		{"v6_net", &o.MapSizes.V6Net, DefaultNetEntries},
	} {
		if *s.v == 0 {
			*s.v = s.def
		}
		if *s.v < 1 || *s.v > 1<<28 {
			return o, fmt.Errorf("map size %s = %d out of range: use 1 to %d entries", s.name, *s.v, 1<<28)
		}
	}
	return o, nil
}

// pinPathError is ErrPinPath with its own message (which already says
// what is wrong and what to do).
type pinPathError struct{ error }

func (e pinPathError) Is(target error) bool { return target == ErrPinPath }
func (e pinPathError) Unwrap() error        { return e.error }

// checkBPFFS makes sure pins will land on bpffs: pinning elsewhere fails
// with an obscure EPERM, and a rename across filesystems is not atomic.
func checkBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return pinPathError{fmt.Errorf("pin path parent %s: %w: create it on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir, err)}
	}
	if uint32(st.Type) != uint32(unix.BPF_FS_MAGIC) {
		return pinPathError{fmt.Errorf("pin path parent %s is not on a bpf filesystem: mount one (mount -t bpf bpf /sys/fs/bpf) or choose a pin_path under /sys/fs/bpf", dir)}
	}
	return nil
}

// pinState is what the pin directory holds.
type pinState int

const (
	pinAbsent pinState = iota
	pinOurs
)

func inspectPin(dir string) (pinState, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return pinAbsent, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read pin path %s: %w", dir, err)
	}
	if len(ents) == 0 {
		return pinAbsent, nil
	}
	for _, e := range ents {
		if e.Name() == xdpbanMapXdpbanMeta || e.Name() == legacyMeta {
			return pinOurs, nil
		}
	}
	return 0, fmt.Errorf("pin path %s holds files that are not xdpban's: choose another pin_path or remove them", dir)
}

func randomSuffix() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Open loads the program, reuses or creates the pinned maps, attaches to
// every interface and publishes the pins. On a host where xdpban already
// runs (a daemon restart) the pinned links are updated in place to the
// new program, so enforcement never lapses.
func Open(ctx context.Context, o Options) (*XDP, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(o.Interfaces) == 0 {
		return nil, errors.New("no interface to protect: set interfaces in [xdpban] (e.g. interfaces = eth0)")
	}
	ifindex := make(map[string]int, len(o.Interfaces))
	for _, name := range o.Interfaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %q: %w: check the name with `ip link`", name, err)
		}
		ifindex[name] = ifi.Index
	}
	if err := Probe(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	st, err := load(o)
	if err != nil {
		return nil, err
	}
	x := st.x
	ok := false
	defer func() {
		if !ok {
			st.abort()
		}
	}()

	// Settings go in before the program sees traffic.
	if err := x.SetDropLog(o.DropLogRate, o.DropLogGlobal); err != nil {
		return nil, err
	}
	if err := x.SetRateLimits(o.RateLimits); err != nil {
		return nil, err
	}
	x.links = make(map[string]link.Link, len(o.Interfaces))
	names := append([]string(nil), o.Interfaces...)
	sort.Strings(names)
	for _, name := range names {
		l, err := x.attach(st.dir, !st.fresh, name, ifindex[name])
		if err != nil {
			return nil, err
		}
		x.links[name] = l
	}
	if !st.fresh {
		x.dropStaleLinks(ifindex)
	}
	if st.fresh {
		if err := os.Rename(st.dir, x.pin); err != nil {
			return nil, fmt.Errorf("publish pins %s as %s: %w (another xdpban started at the same time?)", st.dir, x.pin, err)
		}
	}
	ok = true
	x.fresh = st.fresh
	x.log.Info("xdp enforcement attached", "pin_path", x.pin, "interfaces", names, "reused_pins", !st.fresh)
	return x, nil
}

// attach puts the program on one interface. With reuse, a pinned link is
// updated atomically (the kernel swaps the program under the link);
// otherwise a new link is made, native first, generic if the driver has
// no XDP support, and pinned.
func (x *XDP) attach(dir string, reuse bool, name string, ifindex int) (link.Link, error) {
	path := filepath.Join(dir, linkPin(name))
	if reuse {
		l, err := link.LoadPinnedLink(path, nil)
		switch {
		case err == nil:
			if err := sameIfindex(l, ifindex); err != nil {
				x.log.Warn("pinned xdp link is stale, attaching anew", "interface", name, "reason", err)
			} else if err := l.Update(x.prog); err != nil {
				x.log.Warn("cannot update pinned xdp link, attaching anew", "interface", name, "error", err)
			} else {
				return l, nil
			}
			// Detach now (unpinning alone frees the link only later)
			// so the new attach does not find the device busy.
			_ = l.Detach()
			l.Close()
			_ = os.Remove(path)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, fmt.Errorf("load pinned link %s: %w", path, err)
		}
	}

	l, err := link.AttachXDP(link.XDPOptions{Program: x.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		nerr := err
		l, err = link.AttachXDP(link.XDPOptions{Program: x.prog, Interface: ifindex, Flags: link.XDPGenericMode})
		if err != nil {
			if errors.Is(err, unix.EBUSY) || errors.Is(nerr, unix.EBUSY) {
				return nil, fmt.Errorf("attach xdp to %s: another XDP program is attached: remove it (ip link set dev %s xdp off) or use backend = iptables: %w", name, name, err)
			}
			return nil, fmt.Errorf("attach xdp to %s (native: %v): %w", name, nerr, err)
		}
		x.log.Warn("native XDP unavailable, attached in generic mode (slower, but enforcing)", "interface", name, "native_error", nerr)
	}
	// Pin under a temporary name and rename: the final name then only
	// ever refers to a complete, attached link.
	tmp := filepath.Join(dir, "tmp-"+linkPin(name)+"-"+randomSuffix())
	if err := l.Pin(tmp); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link for %s at %s: %w", name, tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		l.Close()
		return nil, fmt.Errorf("publish link for %s at %s: %w", name, path, err)
	}
	return l, nil
}

func sameIfindex(l link.Link, ifindex int) error {
	info, err := l.Info()
	if err != nil {
		return fmt.Errorf("link info: %w", err)
	}
	xi := info.XDP()
	if xi == nil {
		return fmt.Errorf("pinned link is %v, not XDP", info.Type)
	}
	if int(xi.Ifindex) != ifindex {
		return fmt.Errorf("pinned link is on ifindex %d, interface now has %d", xi.Ifindex, ifindex)
	}
	return nil
}

// dropStaleLinks detaches interfaces a previous configuration protected
// and this one no longer names.
func (x *XDP) dropStaleLinks(keep map[string]int) {
	ents, err := os.ReadDir(x.pin)
	if err != nil {
		x.log.Warn("cannot list pinned links", "pin_path", x.pin, "error", err)
		return
	}
	for _, e := range ents {
		name, ok := linkName(e.Name())
		if !ok {
			continue
		}
		if _, want := keep[name]; want {
			continue
		}
		path := filepath.Join(x.pin, e.Name())
		// Detach explicitly: unpinning alone takes effect only later.
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
				x.log.Warn("cannot detach interface no longer configured", "interface", name, "error", err)
			}
			l.Close()
		}
		if err := os.Remove(path); err != nil {
			x.log.Warn("cannot unpin interface no longer configured", "interface", name, "error", err)
			continue
		}
		x.log.Info("detached interface no longer configured", "interface", name)
	}
}

// loadState carries a load in progress until it is published.
type loadState struct {
	x     *XDP
	dir   string // where pins go: PinPath itself, or a staging dir
	fresh bool   // dir is a staging dir to rename to PinPath
}

func (st *loadState) abort() {
	st.x.closeFDs()
	if st.fresh {
		// Removing the staging pins drops the last references: links
		// detach and maps are freed.
		_ = os.RemoveAll(st.dir)
	}
}

// load prepares maps and program. Maps pinned by an earlier run are
// reused (bans survive restarts); otherwise fresh maps are pinned into a
// staging directory beside PinPath that Open renames into place.
func load(o Options) (*loadState, error) {
	if err := checkBPFFS(filepath.Dir(o.PinPath)); err != nil {
		return nil, err
	}
	state, err := inspectPin(o.PinPath)
	if err != nil {
		return nil, err
	}
	// The lock comes before anything is read, removed or attached: a
	// second daemon on these pins would otherwise swap its program into
	// the first one's links and detach the interfaces it does not name.
	var lk *os.File
	if state == pinOurs {
		if lk, err = lockDir(o.PinPath); err != nil {
			return nil, err
		}
	}
	published := false
	defer func() {
		if !published && lk != nil {
			lk.Close()
		}
	}()

	spec, err := loadXdpban()
	if err != nil {
		return nil, fmt.Errorf("read embedded bpf object: %w", err)
	}
	spec.Maps[xdpbanMapBanV4].MaxEntries = uint32(o.MapSizes.V4)
	spec.Maps[xdpbanMapBanV6].MaxEntries = uint32(o.MapSizes.V6)
	spec.Maps[xdpbanMapBanV4Net].MaxEntries = uint32(o.MapSizes.V4Net)
	spec.Maps[xdpbanMapBanV6Net].MaxEntries = uint32(o.MapSizes.V6Net)
	if err := spec.Variables[xdpbanVarIpv6Prefix].Set(uint32(o.IPv6Prefix)); err != nil {
		return nil, fmt.Errorf("set ipv6_prefix: %w", err)
	}
	if err := spec.Variables[xdpbanVarHavePercpuLookup].Set(percpuLookup()); err != nil {
		return nil, fmt.Errorf("set have_percpu_lookup: %w", err)
	}

	st := &loadState{x: &XDP{
		pin:      o.PinPath,
		log:      o.Logger,
		widen:    bans.Widen{IPv6: o.IPv6Prefix},
		v6Prefix: o.IPv6Prefix,
	}}
	repl := map[string]*ebpf.Map{}
	closeRepl := func() {
		for _, m := range repl {
			m.Close()
		}
	}
	if state == pinOurs {
		st.dir = o.PinPath
		removeStaleLinkPins(o.PinPath, o.Logger)
		if err := renameLegacyPins(o.PinPath, o.Logger); err != nil {
			return nil, err
		}
		for name, ms := range spec.Maps {
			if !isPinned(name) {
				continue
			}
			path := filepath.Join(o.PinPath, name)
			m, err := ebpf.LoadPinnedMap(path, nil)
			if errors.Is(err, fs.ErrNotExist) {
				continue // added by a newer xdpban: created and pinned below
			}
			if err != nil {
				closeRepl()
				return nil, fmt.Errorf("load pinned map %s: %w", path, err)
			}
			repl[name] = m
			if err := ms.Compatible(m); err != nil {
				closeRepl()
				return nil, fmt.Errorf("pinned map %s does not fit this configuration (%v): run `xdpban detach` to remove the old pins (drops every ban; the daemon re-adds stored ones) or restore the old map sizes: %w", path, err, ErrIncompatible)
			}
		}
		if err := checkMeta(repl[xdpbanMapXdpbanMeta], o.PinPath, o.IPv6Prefix); err != nil {
			closeRepl()
			return nil, err
		}
	} else {
		st.fresh = true
		removeStaleStaging(o.PinPath, o.Logger)
		st.dir = o.PinPath + stagingSuffix + randomSuffix()
		if err := os.Mkdir(st.dir, 0o700); err != nil {
			return nil, fmt.Errorf("create staging pin dir %s: %w", st.dir, err)
		}
		if lk, err = lockDir(st.dir); err != nil {
			_ = os.RemoveAll(st.dir)
			return nil, err
		}
	}
	st.x.lock = lk

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	closeRepl() // the collection holds clones
	if err != nil {
		if st.fresh {
			_ = os.RemoveAll(st.dir)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load xdp program: kernel verifier rejected it: %+v", ve)
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	x := st.x
	x.prog = coll.Programs[xdpbanProgXdpban]
	delete(coll.Programs, xdpbanProgXdpban)
	if err := x.takeMaps(coll.Maps); err != nil {
		coll.Close()
		st.abort()
		return nil, err
	}
	coll.Close() // closes what takeMaps left (none we use)

	for _, pm := range x.pinnedMaps() {
		if _, reused := repl[pm.name]; reused {
			continue
		}
		if err := (*pm.m).Pin(filepath.Join(st.dir, pm.name)); err != nil {
			st.abort()
			return nil, fmt.Errorf("pin map %s in %s: %w", pm.name, st.dir, err)
		}
	}
	// Pinned slots may predate changes an xdpban without the cache made
	// to the tables (a downgrade and back): none is trusted.
	if err := x.bumpGen(); err != nil {
		st.abort()
		return nil, err
	}
	if st.fresh {
		m := xdpbanMeta{Layout: layoutVersion, Ipv6Prefix: uint32(o.IPv6Prefix)}
		if err := x.meta.Put(uint32(0), m); err != nil {
			st.abort()
			return nil, fmt.Errorf("write meta map: %w", err)
		}
	} else {
		// Counts may have drifted if two writers raced; the kernel only
		// needs them non-zero exactly when a trie holds entries.
		for _, t := range []table{tV4Net, tV6Net} {
			if err := x.recountNet(t); err != nil {
				st.abort()
				return nil, err
			}
		}
	}
	published = true
	return st, nil
}

const stagingSuffix = "-tmp-"

// Pins of xdpban before its maps had xdpban_ names (issue 18): meta is
// taken over under its new name (bans, trie counts and the layout are in
// the maps it describes), stats was an array of numbered slots and is
// dropped, its counters starting again from zero in xdpban_stats.
const (
	legacyMeta  = "meta"
	legacyStats = "stats"
)

// renameLegacyPins moves an older xdpban's pins to today's names. Pins
// are files on bpffs: a rename keeps the map and everything in it.
func renameLegacyPins(dir string, log *slog.Logger) error {
	old, cur := filepath.Join(dir, legacyMeta), filepath.Join(dir, xdpbanMapXdpbanMeta)
	if _, err := os.Stat(old); err == nil {
		if _, err := os.Stat(cur); errors.Is(err, fs.ErrNotExist) {
			if err := os.Rename(old, cur); err != nil {
				return fmt.Errorf("rename pin %s to %s: %w: run `xdpban detach` (drops every ban; the daemon re-adds stored ones)", old, cur, err)
			}
			log.Info("renamed a pin made by an older xdpban", "from", old, "to", cur)
		}
	}
	stats := filepath.Join(dir, legacyStats)
	if _, err := os.Stat(stats); err == nil {
		if err := os.Remove(stats); err != nil {
			return fmt.Errorf("remove the old counters pin %s: %w", stats, err)
		}
		log.Info("global counters moved to xdpban_stats and start from zero", "removed", stats)
	}
	return nil
}

// removeStaleStaging deletes staging dirs a crashed Open left beside
// pinPath. One may hold a link still attached to an interface, which
// would make every later attach there fail with EBUSY.
func removeStaleStaging(pinPath string, log *slog.Logger) {
	stale, _ := filepath.Glob(pinPath + stagingSuffix + "*")
	for _, d := range stale {
		if locked(d) {
			continue // another xdpban is starting there right now
		}
		detachLinksIn(d)
		if err := os.RemoveAll(d); err != nil {
			log.Warn("cannot remove a stale staging pin dir", "dir", d, "error", err)
			continue
		}
		log.Warn("removed a staging pin dir left by an interrupted start", "dir", d)
	}
}

// removeStaleLinkPins deletes link pins a crashed attach left under a
// temporary name (see attach), detaching their links first.
func removeStaleLinkPins(dir string, log *slog.Logger) {
	stale, _ := filepath.Glob(filepath.Join(dir, "tmp-"+linkPrefix+"*"))
	for _, f := range stale {
		if l, err := link.LoadPinnedLink(f, nil); err == nil {
			_ = l.Detach()
			l.Close()
		}
		if err := os.Remove(f); err != nil {
			log.Warn("cannot remove a stale link pin", "pin", f, "error", err)
			continue
		}
		log.Warn("removed a link pin left by an interrupted start", "pin", f)
	}
}

// detachLinksIn detaches every link pinned in dir, synchronously (see
// Detach).
func detachLinksIn(dir string) []error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return []error{fmt.Errorf("list pins in %s: %w", dir, err)}
	}
	var errs []error
	for _, e := range ents {
		name, ok := linkName(e.Name())
		if !ok {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("load pinned link for %s: %w", name, err))
			continue
		}
		if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
			errs = append(errs, fmt.Errorf("detach xdp from %s: %w", name, err))
		}
		l.Close()
	}
	return errs
}

func checkMeta(m *ebpf.Map, pin string, v6 int) error {
	if m == nil {
		return fmt.Errorf("pin path %s has no meta map: run `xdpban detach` and start again: %w", pin, ErrIncompatible)
	}
	var meta xdpbanMeta
	if err := m.Lookup(uint32(0), &meta); err != nil {
		return fmt.Errorf("read meta map in %s: %w", pin, err)
	}
	if meta.Layout != layoutVersion {
		return fmt.Errorf("pins in %s use map layout %d, this xdpban uses %d: run `xdpban detach` (drops every ban; the daemon re-adds stored ones): %w", pin, meta.Layout, layoutVersion, ErrIncompatible)
	}
	if v6 != 0 && int(meta.Ipv6Prefix) != v6 {
		return fmt.Errorf("pins in %s ban IPv6 at /%d, configuration says ipv6_prefix = %d: run `xdpban detach` (drops every ban; the daemon re-adds stored ones) or set ipv6_prefix back to %d: %w", pin, meta.Ipv6Prefix, v6, meta.Ipv6Prefix, ErrIncompatible)
	}
	return nil
}

type pinnedMap struct {
	m    **ebpf.Map
	name string
}

// pinnedMaps are the maps that outlive the program (bans, counters,
// names, rate-limit state, the event ring). The per-CPU clock cache and
// the global event budget are not: a new program may start them cold.
func (x *XDP) pinnedMaps() []pinnedMap {
	return []pinnedMap{
		{&x.tbl[tV4], xdpbanMapBanV4}, {&x.tbl[tV6], xdpbanMapBanV6},
		{&x.tbl[tV4Net], xdpbanMapBanV4Net}, {&x.tbl[tV6Net], xdpbanMapBanV6Net},
		{&x.stats, xdpbanMapXdpbanStats}, {&x.meta, xdpbanMapXdpbanMeta}, {&x.jails, xdpbanMapJailNames},
		{&x.events, xdpbanMapDropEvents}, {&x.rlRules, xdpbanMapRlRules},
		{&x.rlBuckets, xdpbanMapRlBuckets}, {&x.rlJailStats, xdpbanMapRlJailStats},
		{&x.scopes, xdpbanMapXdpbanScopes}, {&x.jailDrops, xdpbanMapJailDrops},
		{&x.hitCache, xdpbanMapXdpbanHitcache}, {&x.gen, xdpbanMapXdpbanGen},
	}
}

// hitMap: the maps OpenPinned may find missing (pins older than the
// hit cache, whose program does not use one).
func hitMap(name string) bool {
	return name == xdpbanMapXdpbanHitcache || name == xdpbanMapXdpbanGen
}

func isPinned(name string) bool {
	return name != xdpbanMapXdpbanClock && name != xdpbanMapXdpbanEvbudget && !strings.HasPrefix(name, ".")
}

// takeMaps moves the maps x uses out of ms (so closing the collection
// leaves them open). The hit cache's maps may be nil (OpenPinned on
// older pins).
func (x *XDP) takeMaps(ms map[string]*ebpf.Map) error {
	for _, p := range x.pinnedMaps() {
		m := ms[p.name]
		if m == nil && hitMap(p.name) {
			if _, listed := ms[p.name]; listed {
				delete(ms, p.name)
				continue
			}
		}
		if m == nil {
			return fmt.Errorf("bpf object has no map %s: rebuild with `make generate`", p.name)
		}
		delete(ms, p.name)
		*p.m = m
	}
	return nil
}

// OpenPinned opens the maps a running (or stopped) daemon left pinned at
// pinPath, without loading or attaching anything: the CLI's view when no
// daemon answers. It returns ErrNotLoaded when nothing is pinned there.
func OpenPinned(pinPath string) (*XDP, error) {
	if pinPath == "" {
		return nil, errors.New("empty pin path: pass --pin-path or set pin_path in [xdpban]")
	}
	pinPath = filepath.Clean(pinPath)
	state, err := inspectPin(pinPath)
	if err != nil {
		return nil, err
	}
	if state == pinAbsent {
		return nil, fmt.Errorf("nothing pinned at %s (start the daemon, or check pin_path): %w", pinPath, ErrNotLoaded)
	}
	spec, err := loadXdpban()
	if err != nil {
		return nil, fmt.Errorf("read embedded bpf object: %w", err)
	}
	x := &XDP{pin: pinPath, log: slog.Default()}
	ms := map[string]*ebpf.Map{}
	for _, pm := range x.pinnedMaps() {
		name := pm.name
		if hitMap(name) {
			continue
		}
		path := filepath.Join(pinPath, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			for _, m := range ms {
				m.Close()
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("pin path %s lacks map %s (half-removed?): run `xdpban detach` and restart the daemon: %w", pinPath, name, ErrNotLoaded)
			}
			return nil, fmt.Errorf("load pinned map %s: %w", path, err)
		}
		ms[name] = m
		s := spec.Maps[name]
		if m.Type() != s.Type || m.KeySize() != s.KeySize || m.ValueSize() != s.ValueSize {
			for _, m := range ms {
				m.Close()
			}
			return nil, fmt.Errorf("pinned map %s has a layout this xdpban does not know (type %s key %d value %d, want %s %d %d): use the matching xdpban version or run `xdpban detach`: %w",
				path, m.Type(), m.KeySize(), m.ValueSize(), s.Type, s.KeySize, s.ValueSize, ErrIncompatible)
		}
	}
	cache, gen, err := loadHitMaps(pinPath)
	if err != nil {
		for _, m := range ms {
			m.Close()
		}
		return nil, err
	}
	for name, m := range map[string]*ebpf.Map{xdpbanMapXdpbanHitcache: cache, xdpbanMapXdpbanGen: gen} {
		s := spec.Maps[name]
		if m != nil && (m.Type() != s.Type || m.KeySize() != s.KeySize || m.ValueSize() != s.ValueSize || m.MaxEntries() != s.MaxEntries) {
			for _, m := range ms {
				m.Close()
			}
			cache.Close()
			gen.Close()
			return nil, fmt.Errorf("pinned map %s in %s has a layout this xdpban does not know: use the matching xdpban version or run `xdpban detach`: %w",
				name, pinPath, ErrIncompatible)
		}
	}
	x.hitCache, x.gen = cache, gen
	for _, pm := range x.pinnedMaps() {
		if hitMap(pm.name) {
			ms[pm.name] = *pm.m
		}
	}
	if err := x.takeMaps(ms); err != nil {
		return nil, err
	}
	if err := checkMeta(x.meta, pinPath, 0); err != nil {
		x.closeFDs()
		return nil, err
	}
	var meta xdpbanMeta
	if err := x.meta.Lookup(uint32(0), &meta); err != nil {
		x.closeFDs()
		return nil, fmt.Errorf("read meta map in %s: %w", pinPath, err)
	}
	x.v6Prefix = int(meta.Ipv6Prefix)
	x.widen = bans.Widen{IPv6: x.v6Prefix}
	return x, nil
}

func (x *XDP) closeFDs() {
	if x.lock != nil {
		x.lock.Close()
		x.lock = nil
	}
	for _, l := range x.links {
		if l != nil { // nil: lost with its interface (reattach.go)
			l.Close()
		}
	}
	x.links = nil
	if x.prog != nil {
		x.prog.Close()
		x.prog = nil
	}
	for _, p := range x.pinnedMaps() {
		if *p.m != nil {
			(*p.m).Close()
			*p.m = nil
		}
	}
}

// Close releases the backend's file descriptors. Pinned links and maps
// stay: the kernel keeps enforcing every ban.
func (x *XDP) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil
	}
	x.closed = true
	x.closeFDs()
	return nil
}

// Detach removes the pin directory: links detach from their interfaces
// and maps are freed once nothing else holds them. Every ban is gone.
func (x *XDP) Detach() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	// Unpinning alone detaches only after an RCU grace period and a
	// workqueue run; detach each link explicitly so traffic flows again
	// when Detach returns.
	errs := detachLinksIn(x.pin)
	if err := os.RemoveAll(x.pin); err != nil {
		errs = append(errs, fmt.Errorf("remove pins %s: %w", x.pin, err))
	}
	x.closed = true
	x.closeFDs()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	x.log.Info("xdp enforcement detached", "pin_path", x.pin)
	return nil
}

func (x *XDP) checkOpen() error {
	if x.closed {
		return errors.New("xdp backend is closed")
	}
	return nil
}
