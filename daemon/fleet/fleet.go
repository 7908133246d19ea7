// Package fleet shares bans between hosts through a NATS JetStream
// key-value bucket: each daemon publishes the bans it decides and
// enforces the ones the others publish, through the daemon's one intake.
//
// The bucket keeps one value per banned prefix (History 1) with a per-key
// TTL of the ban's remaining time, so the bucket's live set is the
// fleet's live bans. Publishes go through an outbox in the daemon's store
// (written after the local ban is enforced and stored): NATS being down
// never delays local enforcement, and what was not published is published
// on reconnect. Every publish is idempotent.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
)

// LimitMarkerTTL is how long an expiry marker stays in the bucket: long
// enough for a watcher that reconnects to see it.
const LimitMarkerTTL = 10 * time.Minute

// tombstoneAge is how long an unban's delete marker is kept before
// PurgeDeletes drops it: a host away longer than this catches up from the
// snapshot alone (the ban is simply absent).
const tombstoneAge = 24 * time.Hour

// Outbox is where publishes wait (store.Store).
type Outbox interface {
	OutboxPut(es ...store.OutboxEntry) error
	OutboxPage(after string, n int) ([]store.OutboxEntry, error)
	OutboxDone(es ...store.OutboxEntry) error
	OutboxLen() int
	OutboxQueued(key string) bool
}

// Sink receives what other hosts published: the daemon's intake.
type Sink interface {
	// RemoteBans enforces bans other nodes decided (never shortening one
	// in force), filtered by this host's ignore lists; refused[i] is
	// why rs[i] was refused ("" when it applied).
	RemoteBans(ctx context.Context, rs []Record) (refused []string)
	// RemoteUnban lifts the bans on ps: an operator unbanned them
	// somewhere (or here).
	RemoteUnban(ctx context.Context, ps []netip.Prefix)
	// Reconcile follows a (re)connect's snapshot: live is every ban in
	// the bucket (this node's included), deleted the prefixes unbanned
	// whose tombstones remain. The sink lifts the remote bans it holds
	// that are not live and whatever is deleted, and returns the local
	// bans the bucket lacks (or holds shorter) for republishing.
	Reconcile(ctx context.Context, live map[netip.Prefix]Record, deleted []netip.Prefix) (republish []bans.Ban)
}

// Fleet is one host's membership.
type Fleet struct {
	cfg  config.Fleet
	log  *slog.Logger
	out  Outbox
	sink Sink
	now  func() time.Time

	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	kick chan struct{}
	// reconnected is signalled by the client on every (re)connect: the
	// watch restarts from a full snapshot.
	reconnected chan struct{}

	mu       sync.Mutex
	kv       jetstream.KeyValue
	lastErr  string
	refused  map[string]uint64
	keys     uint64
	lastSnap time.Time

	connected atomic.Bool
	closing   atomic.Bool
	// inStep: this session read the bucket's snapshot and reconciled;
	// live changes apply as they come.
	inStep    atomic.Bool
	published atomic.Uint64
	received  atomic.Uint64
	applyLat  latency
}

// New prepares a membership; Run starts it.
func New(cfg config.Fleet, out Outbox, sink Sink, log *slog.Logger) (*Fleet, error) {
	if !cfg.Enabled {
		return nil, errors.New("fleet: not enabled")
	}
	if out == nil || sink == nil {
		return nil, errors.New("fleet: no outbox or sink")
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "xdpban-bans"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	return &Fleet{cfg: cfg, log: log.With("fleet", cfg.Node), out: out, sink: sink, now: time.Now,
		kick: make(chan struct{}, 1), reconnected: make(chan struct{}, 1), refused: map[string]uint64{}}, nil
}

// Node is this host's name in the fleet.
func (f *Fleet) Node() string { return f.cfg.Node }

// Start runs the embedded node (if any) and connects; it returns once
// the node listens, not once connected: a fleet that cannot be reached
// must not hold up the daemon's start.
func (f *Fleet) Start() error {
	if f.cfg.Listen != "" {
		s, err := startServer(f.cfg)
		if err != nil {
			return err
		}
		f.srv = s
	}
	servers := f.cfg.Servers
	if len(servers) == 0 {
		// The node's own URL: right even when listen named port 0.
		servers = []string{f.srv.ClientURL()}
	}
	opts := []nats.Option{
		nats.Name("xdpban " + f.cfg.Node),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(*nats.Conn) { f.onConnect() }),
		nats.ReconnectHandler(func(*nats.Conn) { f.onConnect() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			f.connected.Store(false)
			f.inStep.Store(false)
			if f.closing.Load() {
				return
			}
			f.log.Warn("fleet disconnected: local bans keep applying and are queued for publishing", "err", err)
		}),
	}
	if f.cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(f.cfg.Creds))
	}
	if f.cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(f.cfg.TLSCert, f.cfg.TLSKey))
	}
	if f.cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(f.cfg.TLSCA))
	}
	nc, err := nats.Connect(strings.Join(servers, ","), opts...)
	if err != nil {
		f.stopServer()
		return fmt.Errorf("fleet: connect to %s: %w", strings.Join(servers, ", "), err)
	}
	f.nc = nc
	if f.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		f.stopServer()
		return fmt.Errorf("fleet: jetstream: %w", err)
	}
	if nc.IsConnected() {
		f.onConnect()
	}
	return nil
}

func (f *Fleet) onConnect() {
	f.connected.Store(true)
	select {
	case f.reconnected <- struct{}{}:
	default:
	}
}

// Close disconnects and stops the embedded node.
func (f *Fleet) Close() {
	f.handOver()
	f.closing.Store(true)
	if f.nc != nil {
		f.nc.Close()
	}
	f.stopServer()
}

// handOver moves the bucket's stream leader off this host's node before
// it stops: left to an election, the others wait out RAFT's timeouts
// (4-9 s) before a ban is accepted again. A node killed cannot do this.
func (f *Fleet) handOver() {
	if f.srv == nil || len(f.cfg.Routes) == 0 || f.nc == nil || !f.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stream := "KV_" + f.cfg.Bucket
	leader := func() string {
		s, err := f.js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return ""
		}
		return s.CachedInfo().Cluster.Leader
	}
	me := f.srv.Name()
	if leader() != me {
		return
	}
	if _, err := f.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil); err != nil {
		f.log.Warn("fleet: handing the bucket's leadership over before stopping failed", "err", err)
		return
	}
	for ctx.Err() == nil {
		if l := leader(); l != "" && l != me {
			f.log.Info("fleet: bucket leadership handed over", "to", l)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *Fleet) stopServer() {
	if f.srv != nil {
		f.srv.Shutdown()
		f.srv.WaitForShutdown()
		f.srv = nil
	}
}

// Server is the embedded node (nil when none): tests and the bench stop
// it to take a node of a cluster down.
func (f *Fleet) Server() *server.Server { return f.srv }

// Publish queues bans decided on this host and wakes the publisher. The
// caller has enforced and stored them: an error here (the store) leaves
// them in force, only not shared.
func (f *Fleet) Publish(bs []bans.Ban, reason string) error {
	if err := QueueBans(f.out, f.cfg.Node, bs, reason); err != nil {
		return err
	}
	f.wake()
	return nil
}

// Unban queues the deletes of ps: the ban ends on every host.
func (f *Fleet) Unban(ps []netip.Prefix) error {
	if err := QueueUnbans(f.out, ps); err != nil {
		return err
	}
	f.wake()
	return nil
}

// QueueBans puts bs in out as node's bans, to be published by the
// daemon's Fleet when it runs: Publish, and the CLI's bans made while
// no daemon runs (the next start publishes them).
func QueueBans(out Outbox, node string, bs []bans.Ban, reason string) error {
	es := make([]store.OutboxEntry, 0, len(bs))
	for _, b := range bs {
		v, err := RecordOf(b, node, reason).encode()
		if err != nil {
			return err
		}
		es = append(es, store.OutboxEntry{Key: Key(b.Prefix), Value: v})
	}
	return out.OutboxPut(es...)
}

// QueueUnbans puts the deletes of ps in out, as Unban and the CLI's
// unbans made while no daemon runs: without them, the bucket would give
// a lifted remote ban back at the next start.
func QueueUnbans(out Outbox, ps []netip.Prefix) error {
	es := make([]store.OutboxEntry, 0, len(ps))
	for _, p := range ps {
		es = append(es, store.OutboxEntry{Key: Key(p)})
	}
	return out.OutboxPut(es...)
}

func (f *Fleet) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// errReconnected ends a session: the client reconnected (or the watch
// stalled), and what happened meanwhile is read from a new snapshot.
var errReconnected = errors.New("reconnected")

// Run watches the bucket and publishes the outbox until ctx ends. Every
// (re)connect starts over from a snapshot of the bucket.
func (f *Fleet) Run(ctx context.Context) {
	wait := true
	for ctx.Err() == nil {
		if wait {
			select {
			case <-ctx.Done():
				return
			case <-f.reconnected:
			case <-time.After(2 * time.Second):
				if !f.nc.IsConnected() {
					continue
				}
			}
		}
		err := f.session(ctx)
		wait = !errors.Is(err, errReconnected)
		if err != nil && wait && ctx.Err() == nil {
			f.setErr(err)
			f.log.Warn("fleet session ended; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (f *Fleet) setErr(err error) {
	f.mu.Lock()
	f.lastErr = ""
	if err != nil {
		f.lastErr = err.Error()
	}
	f.mu.Unlock()
}

// bucket opens the bucket, creating it on first use.
func (f *Fleet) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := f.js.KeyValue(ctx, f.cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open bucket %s: %w", f.cfg.Bucket, err)
	}
	kv, err = f.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: f.cfg.Bucket, Description: "xdpban fleet bans",
		History: 1, Storage: jetstream.FileStorage, Replicas: f.cfg.Replicas,
		LimitMarkerTTL: LimitMarkerTTL,
	})
	if err != nil && errors.Is(err, jetstream.ErrBucketExists) {
		return f.js.KeyValue(ctx, f.cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s (replicas %d): %w", f.cfg.Bucket, f.cfg.Replicas, err)
	}
	return kv, nil
}

func (f *Fleet) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	var pub sync.WaitGroup
	defer pub.Wait()
	defer cancel()
	// A cluster still electing its leader does not answer: ask again
	// soon rather than wait out the client's 5 s.
	bctx, bcancel := context.WithTimeout(sctx, 2*time.Second)
	kv, err := f.bucket(bctx)
	bcancel()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.kv = kv
	f.mu.Unlock()
	// base: every message up to it that still exists is in the
	// snapshot; the stream's last message may be gone (an expired
	// marker, a purged tombstone) and never reach the watch.
	base, based := f.lastSeq(sctx, kv)
	w, err := kv.WatchAll(sctx)
	if err != nil {
		return fmt.Errorf("watch bucket: %w", err)
	}
	defer w.Stop()
	defer f.inStep.Store(false)
	sn := &snapshot{live: map[netip.Prefix]Record{}, deleted: map[netip.Prefix]bool{}}
	// The watch is an ordered consumer on the stream leader: when that
	// node dies, the client notices only after missed heartbeats (5-10
	// s). Comparing the stream's last sequence with the watch's notices
	// in about a second; a new session reads a new snapshot.
	health := time.NewTicker(time.Second)
	defer health.Stop()
	var seen, stale, checked uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.reconnected:
			return errReconnected
		case <-health.C:
			if sn != nil {
				continue
			}
			if !based {
				base, based = f.lastSeq(sctx, kv)
				continue
			}
			// Stalled: behind the stream and no progress since the last
			// check. A watch merely behind (this host applying a burst)
			// is not; restarting it would replay the whole bucket.
			if last, ok := f.lastSeq(sctx, kv); ok && last > max(seen, base) && seen == checked {
				if stale++; stale >= 2 {
					f.log.Warn("fleet: the watch stalled (its node down?); reading the bucket again", "seen", seen, "last", last)
					return errReconnected
				}
			} else {
				stale = 0
			}
			checked = seen
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e != nil {
				seen = max(seen, e.Revision())
			}
			if sn != nil {
				if e != nil {
					sn.add(f, e)
					continue
				}
				f.reconcile(sctx, sn)
				sn = nil
				f.inStep.Store(true)
				f.setErr(nil)
				// Publishing starts only now: reconcile read the outbox
				// as the newest word on its keys. It runs beside the
				// watch, so a publish waiting on a stream electing a new
				// leader never holds up what others ban.
				pub.Add(1)
				go func() {
					defer pub.Done()
					f.publisher(sctx, kv)
				}()
				continue
			}
			if e == nil {
				continue
			}
			if err := f.changes(sctx, e, w.Updates(), &seen); err != nil {
				return err
			}
		}
	}
}

// snapshot collects the bucket's state as a (re)connect reads it.
type snapshot struct {
	live    map[netip.Prefix]Record
	deleted map[netip.Prefix]bool
}

func (sn *snapshot) add(f *Fleet, e jetstream.KeyValueEntry) {
	p, ok := f.key(e)
	if !ok {
		return
	}
	switch e.Operation() {
	case jetstream.KeyValueDelete:
		delete(sn.live, p)
		sn.deleted[p] = true
	case jetstream.KeyValuePurge:
		// An expiry marker: the ban ended; it is simply not live.
		delete(sn.live, p)
	case jetstream.KeyValuePut:
		if r, ok := f.record(e); ok {
			sn.live[p] = r
			delete(sn.deleted, p)
		}
	}
}

func (f *Fleet) key(e jetstream.KeyValueEntry) (netip.Prefix, bool) {
	p, err := PrefixOfKey(e.Key())
	if err != nil {
		f.refuse("bad_key")
		f.log.Warn("fleet: ignoring a key this version does not read", "key", e.Key(), "err", err)
		return p, false
	}
	return p, true
}

func (f *Fleet) record(e jetstream.KeyValueEntry) (Record, bool) {
	r, err := DecodeRecord(e.Key(), e.Value())
	if err != nil {
		f.refuse("bad_record")
		f.log.Warn("fleet: refusing a record", "key", e.Key(), "err", err)
		return r, false
	}
	return r, true
}

// maxBatch bounds the changes handed to the sink at once.
const maxBatch = 1024

// changes applies e and whatever else the watch already holds, in
// batches of one kind (bans, or unbans) so the sink commits many at once
// and a key's changes keep their order.
func (f *Fleet) changes(ctx context.Context, e jetstream.KeyValueEntry, more <-chan jetstream.KeyValueEntry, seen *uint64) error {
	var puts []Record
	var dels []netip.Prefix
	flush := func() {
		if len(puts) > 0 {
			f.apply(ctx, puts)
			puts = nil
		}
		if len(dels) > 0 {
			f.received.Add(uint64(len(dels)))
			f.sink.RemoteUnban(ctx, dels)
			dels = nil
		}
	}
	for n := 0; ; n++ {
		if p, ok := f.key(e); ok {
			switch e.Operation() {
			case jetstream.KeyValueDelete:
				// An operator's unban, anywhere: this node's own too,
				// unless the key was banned again since (this host's
				// own ban again would be lifted by its unban's echo).
				if f.superseded(ctx, e) {
					break
				}
				if len(puts) > 0 {
					flush()
				}
				dels = append(dels, p)
			case jetstream.KeyValuePut:
				// An expiry marker (KeyValuePurge) needs nothing: every
				// host lifts a ban at its own absolute expiry.
				if r, ok := f.record(e); ok && r.Origin != f.cfg.Node {
					if len(dels) > 0 {
						flush()
					}
					puts = append(puts, r)
				}
			}
		}
		if n >= maxBatch {
			break
		}
		var ok bool
		select {
		case e, ok = <-more:
			if !ok {
				flush()
				return errors.New("watch ended")
			}
			if e != nil {
				*seen = max(*seen, e.Revision())
			}
		default:
		}
		if e == nil || !ok {
			break
		}
	}
	flush()
	return nil
}

// superseded reports whether the key of delete marker e holds a newer
// ban, queued here or in the bucket. Only a marker with messages after
// it in the stream (Delta > 0) can be.
func (f *Fleet) superseded(ctx context.Context, e jetstream.KeyValueEntry) bool {
	if f.out.OutboxQueued(e.Key()) {
		return true
	}
	if e.Delta() == 0 {
		return false
	}
	f.mu.Lock()
	kv := f.kv
	f.mu.Unlock()
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cur, err := kv.Get(gctx, e.Key())
	return err == nil && cur.Revision() > e.Revision() && cur.Operation() == jetstream.KeyValuePut
}

func (f *Fleet) apply(ctx context.Context, rs []Record) {
	f.received.Add(uint64(len(rs)))
	start := time.Now()
	why := f.sink.RemoteBans(ctx, rs)
	d := time.Since(start)
	for i := range rs {
		if i < len(why) && why[i] != "" {
			f.refuse(why[i])
			continue
		}
		f.applyLat.observe(d)
	}
}

func (f *Fleet) refuse(why string) {
	f.mu.Lock()
	f.refused[why]++
	f.mu.Unlock()
}

// reconcile brings this host in step with a snapshot. A change queued
// here and not yet published is newer than what the bucket holds: a key
// this host unbanned meanwhile is not banned again from the bucket, and
// one it banned again is not lifted by an older unban.
func (f *Fleet) reconcile(ctx context.Context, sn *snapshot) {
	for after := ""; ; {
		queued, err := f.out.OutboxPage(after, pipeline)
		if err != nil {
			f.log.Error("fleet: reading the outbox failed", "err", err)
			break
		}
		for _, e := range queued {
			p, err := PrefixOfKey(e.Key)
			if err != nil {
				continue
			}
			if e.Value == nil {
				delete(sn.live, p)
				sn.deleted[p] = true
			} else {
				delete(sn.deleted, p)
			}
		}
		if len(queued) < pipeline {
			break
		}
		after = queued[len(queued)-1].Key
	}
	var remote []Record
	for _, r := range sn.live {
		if r.Origin != f.cfg.Node {
			remote = append(remote, r)
		}
	}
	for len(remote) > 0 {
		n := min(len(remote), maxBatch)
		f.apply(ctx, remote[:n])
		remote = remote[n:]
	}
	deleted := make([]netip.Prefix, 0, len(sn.deleted))
	for p := range sn.deleted {
		deleted = append(deleted, p)
	}
	re := f.sink.Reconcile(ctx, sn.live, deleted)
	if len(re) > 0 {
		f.log.Info("fleet: publishing local bans the bucket lacks", "bans", len(re))
		if err := f.Publish(re, "reconcile"); err != nil {
			f.log.Error("fleet: queueing local bans failed", "err", err)
		}
	}
	f.mu.Lock()
	f.lastSnap = f.now()
	f.mu.Unlock()
	f.log.Info("fleet: in step with the bucket", "live", len(sn.live), "unbanned", len(deleted))
}

// publisher drains the outbox when woken, and every few seconds, and
// keeps the bucket tidy, until ctx ends.
func (f *Fleet) publisher(ctx context.Context, kv jetstream.KeyValue) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	f.drain(ctx, kv)
	f.refreshSize(ctx, kv)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
			f.drain(ctx, kv)
		case <-tick.C:
			f.drain(ctx, kv)
			f.refreshSize(ctx, kv)
		case <-purge.C:
			if err := kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(tombstoneAge)); err != nil && ctx.Err() == nil {
				f.log.Warn("fleet: purging old unban markers failed", "err", err)
			}
		}
	}
}

// retryEvery is how soon a failed publish is tried again (a stream
// electing a new leader after a node died answers within seconds).
const retryEvery = 500 * time.Millisecond

// drain publishes the outbox a page at a time, each page read from the
// first key again: what is published leaves the outbox, and a key queued
// meanwhile waits at most a page even while later keys keep coming (a
// pass that went on from the last key read starved the earlier ones: at
// 1,000 bans/s an IPv4 ban waited 0.3-1.5 s behind IPv6 ones). What
// fails stays for the next round, soon.
func (f *Fleet) drain(ctx context.Context, kv jetstream.KeyValue) {
	for ctx.Err() == nil {
		es, err := f.out.OutboxPage("", pipeline)
		if err != nil {
			f.log.Error("fleet: reading the outbox failed", "err", err)
			return
		}
		if len(es) == 0 {
			return
		}
		done, err := f.publishBatch(ctx, kv, es)
		f.published.Add(uint64(len(done)))
		if derr := f.done(done); derr != nil || err != nil {
			if err != nil {
				f.setErr(err)
			}
			if ctx.Err() == nil {
				f.log.Warn("fleet: publish failed; kept in the outbox", "err", errors.Join(err, derr))
				time.AfterFunc(retryEvery, f.wake)
			}
			return
		}
		if len(es) < pipeline {
			return
		}
	}
}

// pipeline is how many publishes are in flight at once: one at a time,
// a 10k burst took 2 ms a ban (20 s) to reach the bucket.
const pipeline = 512

// ackWait bounds the wait for a pipelined batch's acknowledgements.
const ackWait = 3 * time.Second

// publishBatch publishes es, new keys pipelined: a create is a publish
// expecting no earlier message on the key, with the ban's TTL. Whatever
// that refuses (the key exists, or holds a tombstone) and the unbans go
// the careful way, one by one (publish). It returns what is published;
// on error the rest stays queued.
func (f *Fleet) publishBatch(ctx context.Context, kv jetstream.KeyValue, es []store.OutboxEntry) (done []store.OutboxEntry, err error) {
	type inflight struct {
		e   store.OutboxEntry
		fut jetstream.PubAckFuture
	}
	var fly []inflight
	var careful []store.OutboxEntry
	for _, e := range es {
		if e.Value == nil {
			careful = append(careful, e)
			continue
		}
		r, err := DecodeRecord(e.Key, e.Value)
		if err != nil {
			careful = append(careful, e) // publish drops it, saying so
			continue
		}
		ttl := ttlOf(r.Expires, f.now())
		if ttl < 0 {
			done = append(done, e) // ended before it could be shared
			continue
		}
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(0)}
		if ttl > 0 {
			opts = append(opts, jetstream.WithMsgTTL(ttl))
		}
		fut, err := f.js.PublishAsync("$KV."+f.cfg.Bucket+"."+e.Key, e.Value, opts...)
		if err != nil {
			careful = append(careful, e)
			continue
		}
		fly = append(fly, inflight{e, fut})
	}
	// A publish sent as the stream changes leader may never be
	// answered: give up soon and send it again (harmless if it landed).
	timeout := time.NewTimer(ackWait)
	defer timeout.Stop()
	for i, x := range fly {
		select {
		case <-x.fut.Ok():
			done = append(done, x.e)
		case <-x.fut.Err():
			careful = append(careful, x.e)
		case <-timeout.C:
			return done, fmt.Errorf("%d publishes not acknowledged within %v", len(fly)-i, ackWait)
		case <-ctx.Done():
			return done, ctx.Err()
		}
	}
	for _, e := range careful {
		if err := f.publish(ctx, kv, e); err != nil {
			return done, err
		}
		done = append(done, e)
	}
	return done, nil
}

// done clears published entries; failing, they are published again
// later, which is harmless.
func (f *Fleet) done(es []store.OutboxEntry) error {
	return f.out.OutboxDone(es...)
}

// ttlOf is the key TTL for a ban ending at exp: whole seconds, rounded up
// so the key never ends before the ban; 0 for permanent, -1 when ended.
func ttlOf(exp, now time.Time) time.Duration {
	if exp.IsZero() {
		return 0
	}
	d := exp.Sub(now)
	if d <= 0 {
		return -1
	}
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// publish makes the bucket hold at least e. A key created here gets the
// ban's TTL (kv.Create with KeyTTL); an existing key is replaced only by
// a longer ban, with a message carrying the TTL itself: kv.Put and
// kv.Update publish without one, and a temporary ban would turn
// permanent.
func (f *Fleet) publish(ctx context.Context, kv jetstream.KeyValue, e store.OutboxEntry) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if e.Value == nil {
		if err := kv.Delete(pctx, e.Key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("unban %s: %w", e.Key, err)
		}
		return nil
	}
	r, err := DecodeRecord(e.Key, e.Value)
	if err != nil {
		f.log.Error("fleet: dropping an unreadable outbox entry", "key", e.Key, "err", err)
		return nil
	}
	for try := 0; try < 5; try++ {
		ttl := ttlOf(r.Expires, f.now())
		if ttl < 0 {
			return nil // ended before it could be shared
		}
		var opts []jetstream.KVCreateOpt
		if ttl > 0 {
			opts = append(opts, jetstream.KeyTTL(ttl))
		}
		_, err := kv.Create(pctx, e.Key, e.Value, opts...)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("publish %s: %w", e.Key, err)
		}
		cur, err := kv.Get(pctx, e.Key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Key, err)
		}
		if c, err := DecodeRecord(e.Key, cur.Value()); err == nil && c.Covers(r) {
			return nil // never shortened
		}
		popts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(cur.Revision())}
		if ttl > 0 {
			popts = append(popts, jetstream.WithMsgTTL(ttl))
		}
		_, err = f.js.Publish(pctx, "$KV."+f.cfg.Bucket+"."+e.Key, e.Value, popts...)
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence && apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return fmt.Errorf("extend %s: %w", e.Key, err)
		}
		// Changed under us: read again.
	}
	return fmt.Errorf("publish %s: the key kept changing", e.Key)
}

// lastSeq is the stream's last sequence; false when it cannot be read
// (no leader yet): that is no sign of a stalled watch.
func (f *Fleet) lastSeq(ctx context.Context, kv jetstream.KeyValue) (uint64, bool) {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := kv.Status(sctx)
	if err != nil {
		return 0, false
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, false
	}
	f.mu.Lock()
	f.keys = st.Values()
	f.mu.Unlock()
	return bs.StreamInfo().State.LastSeq, true
}

func (f *Fleet) refreshSize(ctx context.Context, kv jetstream.KeyValue) {
	st, err := kv.Status(ctx)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.keys = st.Values()
	f.mu.Unlock()
}

// Status is what `xdpban status` shows of the fleet.
type Status struct {
	Node      string            `json:"node"`
	Connected bool              `json:"connected"`
	InStep    bool              `json:"in_step"`
	Server    string            `json:"server,omitempty"`
	Servers   []string          `json:"servers"`
	Embedded  string            `json:"embedded,omitempty"`
	Bucket    string            `json:"bucket"`
	Values    uint64            `json:"values"`
	Outbox    int               `json:"outbox"`
	Published uint64            `json:"published"`
	Received  uint64            `json:"received"`
	Refused   map[string]uint64 `json:"refused,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// Status reports the membership.
func (f *Fleet) Status() Status {
	st := Status{Node: f.cfg.Node, Connected: f.nc != nil && f.nc.IsConnected(), Bucket: f.cfg.Bucket,
		InStep: f.inStep.Load(),
		Outbox: f.out.OutboxLen(), Published: f.published.Load(), Received: f.received.Load(),
		Servers: f.cfg.Servers, Embedded: f.cfg.Listen}
	if st.Connected {
		st.Server = f.nc.ConnectedUrlRedacted()
	}
	if len(st.Servers) == 0 {
		st.Servers = []string{"nats://" + f.cfg.Listen}
		if f.srv != nil {
			st.Servers = []string{f.srv.ClientURL()}
		}
	}
	f.mu.Lock()
	st.Values, st.Error = f.keys, f.lastErr
	if len(f.refused) > 0 {
		st.Refused = map[string]uint64{}
		for k, v := range f.refused {
			st.Refused[k] = v
		}
	}
	f.mu.Unlock()
	return st
}

// latency is a fixed-bucket histogram of remote-ban apply times, read by
// the collector.
type latency struct {
	mu      sync.Mutex
	buckets [len(latencyBounds) + 1]uint64
	sum     float64
	count   uint64
}

var latencyBounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	l.buckets[i]++
	l.sum += s
	l.count++
}
