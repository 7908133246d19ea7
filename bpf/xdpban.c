//go:build ignore

// xdpban's enforcement point: one XDP program that drops packets whose
// source is banned. Userspace (loader/) owns the maps' contents; the
// program only reads bans, counts what it drops and honours expiry, so a
// daemon restart or crash never opens a gap in enforcement.
//
// Layout rule: every struct below is part of the pinned ABI. Maps survive
// daemon upgrades, so a field may only be added in reserved space, never
// moved; bump XDPBAN_LAYOUT when that is impossible (the loader then
// refuses the old pins and tells the operator to run `xdpban detach`).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual MIT/GPL";

#define XDPBAN_LAYOUT 1

// Sizes here are placeholders: the loader sets every max_entries from the
// configuration before loading.
#define DEFAULT_HOST_ENTRIES 1048576
#define DEFAULT_NET_ENTRIES 65536
#define JAIL_SLOTS 1024
#define JAIL_NAME_LEN 32
// Distinct port scopes in force at once (a jail's bans share one); each
// slot is two 8 KiB bitmaps, so 64 lock 1 MiB.
#define SCOPE_SLOTS 64
#define PORT_WORDS (65536 / 64)

// ban_entry is the value of every ban map.
struct ban_entry {
	// CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) instant the ban ends; 0 is
	// permanent. Boot time keeps counting across suspend, as wall-clock
	// ban times do. Judged against a per-CPU cached reading (see
	// clock_cache): a ban ends at most one tick late.
	__u64 expires_ns;
	// What this entry dropped; atomic adds, several CPUs hit one entry.
	__u64 packets;
	__u64 bytes;
	// Drop-event sampling per banned address: start of the current
	// one-second window and the events sent in it, plus the drops not
	// reported since the entry's last event (handed over in that next
	// event, then reset).
	__u64 last_event_ns;
	__u64 events_suppressed;
	// The jail that made the ban: its slot in jail_names (0: none). Was
	// a __u32 before scopes; ids stay below JAIL_SLOTS, so the upper half
	// of old entries reads as scope_id 0 on these little-endian targets.
	__u16 jail_id;
	// What the ban drops: 0 is every packet of the source; otherwise
	// the slot in xdpban_scopes holding the ban's TCP and UDP ports.
	__u16 scope_id;
	__u32 events_in_window;
};

// port_scope is one banscope = port scope: bit p of tcp (udp) set means
// the ban drops TCP (UDP) packets to destination port p. An all-zero
// slot is free.
struct port_scope {
	__u64 tcp[PORT_WORDS];
	__u64 udp[PORT_WORDS];
};

// jail_drops is what one jail's bans dropped, per CPU, over the pins'
// life: bans come and go with their own counters, this stays.
struct jail_drop_count {
	__u64 packets;
	__u64 bytes;
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

// meta is written by userspace only. The trie counts let the fast path
// skip an LPM lookup (the slow part) when no prefix is banned.
struct meta {
	__u32 layout;
	__u32 ipv6_prefix;
	__u32 v4_net_entries;
	__u32 v6_net_entries;
	// Reserved for drop events and rate limiting; zero means off.
	__u32 drop_log_rate;
	__u32 drop_log_global;
	__u32 ratelimit_rules;
	__u32 reserved;
};

struct jail_name {
	char name[JAIL_NAME_LEN];
};

// xdpban_stats are the global counters, one copy per CPU. Every packet
// lands in exactly one of passed, dropped, expired_pass, not_ip,
// malformed, rate_limited (a banned source's packet outside its ban's
// port scope is passed); dropped_bytes are the frame bytes of the
// dropped, and the event counters are outside that sum. Drops counted
// in a hit-cache slot (dropped, dropped_bytes, events_suppressed, and
// jail_drops) reach these maps when the slot is refilled; the loader's
// Counters and DroppedByJail add what slots hold. New counters go in
// reserved.
struct stats {
	__u64 passed;
	__u64 dropped;
	__u64 expired_pass;
	__u64 not_ip;
	__u64 malformed;
	__u64 rate_limited;
	__u64 events_sent;
	__u64 events_suppressed;
	__u64 dropped_bytes;
	__u64 reserved[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DEFAULT_HOST_ENTRIES);
	__type(key, __u8[4]);
	__type(value, struct ban_entry);
} ban_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DEFAULT_HOST_ENTRIES);
	__type(key, __u8[16]);
	__type(value, struct ban_entry);
} ban_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_NET_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, struct ban_entry);
} ban_v4_net SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_NET_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, struct ban_entry);
} ban_v6_net SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats);
} xdpban_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct meta);
} xdpban_meta SEC(".maps");

// Indexed by ban_entry.scope_id; slot 0 (all traffic) is never read.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SCOPE_SLOTS);
	__type(key, __u32);
	__type(value, struct port_scope);
} xdpban_scopes SEC(".maps");

// Indexed by ban_entry.jail_id.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JAIL_SLOTS);
	__type(key, __u32);
	__type(value, struct jail_drop_count);
} jail_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JAIL_SLOTS);
	__type(key, __u32);
	__type(value, struct jail_name);
} jail_names SEC(".maps");

#define NSEC_PER_SEC 1000000000ULL
#define IP_OFFSET_MASK 0x1fff
#define IPV6_FRAG_OFFSET_MASK 0xfff8
#define IPV6_EXT_MAX 4
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define DROP_BANNED 1
#define RL_PORTS 65536
#define RL_BUCKETS 65536
#define EVENT_RING_BYTES (256 * 1024)

// drop_event is one sampled drop, read by userspace from drop_events.
struct drop_event {
	__u64 time_ns; // CLOCK_BOOTTIME
	__u32 ifindex;
	__u32 jail_id;
	__u8 src[16]; // IPv4: first 4 bytes
	__u8 dst[16];
	__u16 sport; // host order; 0 when not TCP/UDP or unknown
	__u16 dport;
	__u32 length; // frame bytes
	__u8 family;  // 4 or 6
	__u8 proto;
	__u8 tcp_flags;
	__u8 reason; // DROP_BANNED
	__u32 reserved;
	// Drops of this entry the sampling held back since its previous
	// event: this event stands for 1 + suppressed drops.
	__u64 suppressed;
};

struct event_budget {
	__u64 window_ns;
	__u64 sent;
};

// rl_rule is the limit on one TCP port: a SYN may arrive every
// interval_ns on average, with tau_ns = (burst-1)*interval_ns of slack.
struct rl_rule {
	__u64 interval_ns;
	__u64 tau_ns;
	__u32 jail_id;
	__u32 reserved;
};

// rl_key: source (IPv4 as ::ffff:a.b.c.d, IPv6 cut to ipv6_prefix like
// bans) and destination port, both network order.
struct rl_key {
	__u8 addr[16];
	__be16 port;
	__u16 pad;
};

// rl_bucket: tat is the GCRA theoretical arrival time; over_since_ns is
// when the source began exceeding without a second's pause (0: it is
// not), which userspace turns into a ban after ratelimit.banafter.
struct rl_bucket {
	__u64 tat;
	__u64 dropped;
	__u64 over_since_ns;
	__u64 last_over_ns;
	__u32 jail_id;
	__u32 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENT_RING_BYTES);
} drop_events SEC(".maps");

// (15 characters: the kernel keeps no more of a map's name.)
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_budget);
} xdpban_evbudget SEC(".maps");

// Indexed by destination port (host order): an array lookup is a few
// instructions, so SYNs to ports without a rule (interval_ns 0) pay
// almost nothing.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RL_PORTS);
	__type(key, __u32);
	__type(value, struct rl_rule);
} rl_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RL_BUCKETS);
	__type(key, struct rl_key);
	__type(value, struct rl_bucket);
} rl_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JAIL_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} rl_jail_stats SEC(".maps");

// clock_cache is one CPU's last reading of CLOCK_BOOTTIME and the jiffy
// it was taken in. bpf_ktime_get_boot_ns reads the clocksource (tens of
// ns in a VM, the largest cost of a drop); jiffies are a plain load. So a
// CPU reads the real clock at most once per tick and expiry is decided
// at most one tick (1-10 ms) late. Not pinned: a new program starts cold.
struct clock_cache {
	__u64 jiffies;
	__u64 boot_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clock_cache);
} xdpban_clock SEC(".maps");

// hit_slot is one entry of a CPU's hit cache (xdpban_hitcache): a copy
// of an exact-table ban (ban_v4/ban_v6) this CPU dropped a packet for, so
// the next packet from that source is dropped without the hash lookup and
// without the atomic adds on the shared entry. Direct-mapped: the slot is
// a hash of the key, a colliding key evicts. Only positive, live,
// exact-table hits are cached (never a miss, never a prefix ban), so a
// new ban is enforced at once; a slot is valid only while its gen equals
// xdpban_gen, which userspace bumps after every change to an existing
// exact entry (and every delete), so an unban or re-ban takes effect at
// the next packet.
//
// packets, bytes and suppressed are this CPU's drops not yet added to the
// entry: plain adds (the slot is this CPU's), moved into the entry by the
// slow path when the slot is refilled. Userspace reports entry + every
// CPU's slots for the key, and starts a new entry at minus what the
// slots still hold for its key, so the counters stay exact. Pinned like
// the entries: a program upgrade must not lose what the slots hold.
//
// Drop events: while quiet_until is ahead no drop of the entry can be
// reported, and the fast path counts the drops it holds back in
// suppressed, which only grows. The next event for the entry, sent from
// any CPU, takes what every CPU's slot holds beyond handed (take: a
// compare-and-swap on handed, so each count is handed over once); the
// CPU's own slow path folds it into the entry too. On kernels without
// bpf_map_lookup_percpu_elem (before 5.19) events cannot reach other
// CPUs' slots, and held-back drops go on the entry at once instead.
struct hit_slot {
	__u32 key[4]; // the exact table's key; IPv4 in key[0], the rest 0
	__u64 gen;    // xdpban_gen read before the lookup that filled it
	__u64 expires_ns;
	// No drop event for this entry before this boot instant: its
	// one-second quota (or the global one) was spent when last asked.
	__u64 quiet_until;
	__u64 packets;
	__u64 bytes;
	__u64 suppressed; // held-back drops, ever (never reset)
	__u64 handed;     // of which handed over to an event or the entry
	__u16 jail_id;
	__u16 scope_id;
	__u8 family; // 4 or 6; 0: empty
	__u8 events; // drop_log_rate was on when filled
	__u16 pad;
	// The xor of the words of the last key that hit this slot's index
	// while another key's drops sat in it (see drop_fill).
	__u32 cand;
	__u32 reserved32;
	__u64 settled; // of suppressed, what is in xdpban_stats (this CPU's)
};

#define HIT_SLOTS 1024
#define HIT_SHIFT 22 // 32 - log2(HIT_SLOTS)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HIT_SLOTS);
	__type(key, __u32);
	__type(value, struct hit_slot);
} xdpban_hitcache SEC(".maps");

// The hit cache's generation (one __u64, written by userspace only; a
// slot filled at another value is ignored). Its own map rather than
// meta's reserved word: a 64-bit value never comes back round, and only
// the bump writes it, so a racing meta update cannot undo a bump.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} xdpban_gen SEC(".maps");

// The IPv6 width a single-address ban covers (48..128), fixed at load:
// ban_v6 keys are the source masked to it.
volatile const __u32 ipv6_prefix = 64;

// Set by the loader when the kernel has bpf_map_lookup_percpu_elem
// (5.19): the verifier knows it and keeps only the path it selects.
volatile const __u32 have_percpu_lookup = 0;

// The layout version, for the loader to compare with pinned maps' meta.
volatile const __u32 layout_version = XDPBAN_LAYOUT;

// Puts struct drop_event in BTF, which the ring buffer map cannot name
// (read-only data: it adds no map of its own).
volatile const struct drop_event drop_event_layout = {};

struct frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

static __always_inline struct stats *get_stats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&xdpban_stats, &zero);
}

// count adds one to a counter of xdpban_stats and returns verdict; the
// slot is this CPU's, so no atomics are needed.
#define count(field, verdict)                     \
	({                                        \
		struct stats *s_ = get_stats(); \
		if (s_)                           \
			s_->field += 1;           \
		(verdict);                        \
	})

static __always_inline __u64 boot_now(void)
{
	__u32 zero = 0;
	struct clock_cache *c = bpf_map_lookup_elem(&xdpban_clock, &zero);
	if (!c)
		return bpf_ktime_get_boot_ns();
	__u64 j = bpf_jiffies64();
	if (c->jiffies != j) {
		c->boot_ns = bpf_ktime_get_boot_ns();
		c->jiffies = j;
	}
	return c->boot_ns;
}

// live reports whether a ban entry still holds.
static __always_inline int live(struct ban_entry *e)
{
	__u64 exp = e->expires_ns;
	return !exp || boot_now() < exp;
}

static __always_inline struct meta *get_meta(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&xdpban_meta, &zero);
}

// pkt is what the parser found, kept for drop events and rate limiting.
struct pkt {
	void *l3;
	void *l4; // NULL when unknown (a later IPv4 fragment)
	void *end;
	__u64 len;
	__u8 family; // 4 or 6
	__u8 proto;  // IPv4 protocol or IPv6 next header
};

// in_scope reports whether a packet of a source banned with a port scope
// is one the ban drops: TCP or UDP to a port in the scope's bitmap. Only
// here, for such a source, is the transport header read. A later
// fragment (no transport header) is outside, as for fail2ban's
// multiport rules; an id with no slot drops (fail closed).
static __always_inline int in_scope(__u32 id, struct pkt *p)
{
	struct port_scope *s = bpf_map_lookup_elem(&xdpban_scopes, &id);
	if (!s)
		return 1;
	__u8 *l4 = p->l4;
	if (!l4 || (void *)(l4 + 4) > p->end)
		return 0;
	__u32 port = bpf_ntohs(*(__be16 *)(l4 + 2));
	__u64 w;
	if (p->proto == IPPROTO_TCP)
		w = s->tcp[(port >> 6) & (PORT_WORDS - 1)];
	else if (p->proto == IPPROTO_UDP)
		w = s->udp[(port >> 6) & (PORT_WORDS - 1)];
	else
		return 0;
	return (w >> (port & 63)) & 1;
}

// hit returns e when it is a ban on this packet: live, and either of all
// traffic or with the packet in its port scope.
static __always_inline struct ban_entry *hit(struct ban_entry *e, struct pkt *p, int *expired)
{
	if (!e)
		return NULL;
	if (!live(e)) {
		*expired = 1;
		return NULL;
	}
	if (e->scope_id && !in_scope(e->scope_id, p))
		return NULL;
	return e;
}

// find_v4 returns the live ban covering saddr that drops this packet, or
// NULL; *exact is set when it came from the exact table (the hit cache
// holds only those). An exact entry that has expired, or whose port
// scope the packet is outside, does not hide a prefix ban. (The trie
// gives only the longest prefix: a port-scoped /24 inside a /16 hides
// the /16.) key is saddr's stack copy, addressed through a pointer that
// depends on the hit cache's generation (see gen_dep).
static __always_inline struct ban_entry *find_v4(const __u32 *key, struct pkt *p, int *expired, int *exact)
{
	struct ban_entry *e = hit(bpf_map_lookup_elem(&ban_v4, key), p, expired);
	if (e) {
		*exact = 1;
		return e;
	}
	struct meta *m = get_meta();
	if (m && m->v4_net_entries) {
		struct lpm_v4_key k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, key, 4);
		return hit(bpf_map_lookup_elem(&ban_v4_net, &k), p, expired);
	}
	return NULL;
}

// find_v6 is find_v4 for IPv6: masked is the source cut to ipv6_prefix
// (the exact table's key), the trie gets the full address.
static __always_inline struct ban_entry *find_v6(const struct in6_addr *src, const __u32 *masked, struct pkt *p, int *expired, int *exact)
{
	struct ban_entry *e = hit(bpf_map_lookup_elem(&ban_v6, masked), p, expired);
	if (e) {
		*exact = 1;
		return e;
	}
	struct meta *m = get_meta();
	if (m && m->v6_net_entries) {
		struct lpm_v6_key k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, src, 16);
		return hit(bpf_map_lookup_elem(&ban_v6_net, &k), p, expired);
	}
	return NULL;
}

// sample decides whether this drop is reported: at most drop_log_rate
// events per second per ban entry and drop_log_global per second in all.
// The windows are updated without atomics: several CPUs hitting one entry
// at once may each send, overshooting by at most the CPU count. On a
// refusal *quiet is when the refusing window ends: until then no drop of
// this entry can be reported, which the hit cache remembers.
static __always_inline int sample(struct ban_entry *e, struct meta *m, __u64 now, __u64 *quiet)
{
	if (now - e->last_event_ns >= NSEC_PER_SEC) {
		e->last_event_ns = now;
		e->events_in_window = 0;
	}
	if (e->events_in_window >= m->drop_log_rate) {
		*quiet = e->last_event_ns + NSEC_PER_SEC;
		return 0;
	}
	if (m->drop_log_global) {
		__u32 zero = 0;
		struct event_budget *b = bpf_map_lookup_elem(&xdpban_evbudget, &zero);
		if (!b)
			return 0;
		if (now - b->window_ns >= NSEC_PER_SEC) {
			b->window_ns = now;
			b->sent = 0;
		}
		if (b->sent >= m->drop_log_global) {
			*quiet = b->window_ns + NSEC_PER_SEC;
			return 0;
		}
		__sync_fetch_and_add(&b->sent, 1);
	}
	__sync_fetch_and_add(&e->events_in_window, 1);
	return 1;
}

static __always_inline __u32 hit_hash(__u32 w);
static __always_inline int same_key(struct hit_slot *c, const __u32 *key, __u8 family);

// take claims the held-back drops of a slot not handed over yet. The
// owner CPU keeps adding to suppressed meanwhile; those stay for later.
static __always_inline __u64 take(struct hit_slot *c)
{
	__u64 s = *(volatile __u64 *)&c->suppressed;
	__u64 h = *(volatile __u64 *)&c->handed;
	if (s == h)
		return 0;
	if (__sync_val_compare_and_swap(&c->handed, h, s) != h)
		return 0; // another CPU took them in between
	return s - h;
}

#define GATHER_CPUS 128

// hit_gather takes what every CPU's slot holds back for a key (CPUs past
// GATHER_CPUS hand theirs over at their own next slow path). A global
// function: the verifier checks its loop once, not at every call site.
__attribute__((noinline)) __u64 hit_gather(__u32 k0, __u32 k1, __u32 k2, __u32 k3, __u32 family)
{
	// Checked here too: a global function is verified on its own, and
	// before 5.19 the helper below must be dead code for the verifier.
	if (!have_percpu_lookup)
		return 0;
	__u32 key[4] = { k0, k1, k2, k3 };
	__u32 idx = hit_hash(k0 ^ k1 ^ k2 ^ k3);
	__u64 n = 0;
	for (__u32 cpu = 0; cpu < GATHER_CPUS; cpu++) {
		struct hit_slot *o = bpf_map_lookup_percpu_elem(&xdpban_hitcache, &idx, cpu);
		if (!o)
			break;
		if (same_key(o, key, family))
			n += take(o);
	}
	return n;
}

static __always_inline __u64 gather(const __u32 *key, __u8 family)
{
	if (!have_percpu_lookup || !family)
		return 0;
	return hit_gather(key[0], key[1], key[2], key[3], family);
}

static __always_inline void suppressed(struct ban_entry *e)
{
	__sync_fetch_and_add(&e->events_suppressed, 1);
	count(events_suppressed, 0);
}

// emit sends a drop event for e; key and family (0: not an exact-table
// entry) find the drops other CPUs' slots hold back for it.
static __always_inline void emit(struct xdp_md *ctx, struct ban_entry *e, struct pkt *p, __u64 now,
				 const __u32 *key, __u8 family)
{
	struct drop_event *ev = bpf_ringbuf_reserve(&drop_events, sizeof(*ev), 0);
	if (!ev) {
		suppressed(e); // userspace is not keeping up
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->time_ns = now;
	ev->ifindex = ctx->ingress_ifindex;
	ev->jail_id = e->jail_id;
	ev->length = p->len;
	ev->family = p->family;
	ev->proto = p->proto;
	ev->reason = DROP_BANNED;
	// Hand the pending count over; subtracting what was read keeps
	// increments from other CPUs that land in between.
	__u64 pending = e->events_suppressed;
	ev->suppressed = pending + gather(key, family);
	if (pending)
		__sync_fetch_and_add(&e->events_suppressed, -pending);
	if (p->family == 4) {
		struct iphdr *iph = p->l3;
		if ((void *)(iph + 1) <= p->end) {
			__builtin_memcpy(ev->src, &iph->saddr, 4);
			__builtin_memcpy(ev->dst, &iph->daddr, 4);
		}
	} else {
		struct ipv6hdr *ip6h = p->l3;
		if ((void *)(ip6h + 1) <= p->end) {
			__builtin_memcpy(ev->src, &ip6h->saddr, 16);
			__builtin_memcpy(ev->dst, &ip6h->daddr, 16);
		}
	}
	__u8 *l4 = p->l4;
	if (l4 && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) && (void *)(l4 + 4) <= p->end) {
		ev->sport = bpf_ntohs(*(__be16 *)l4);
		ev->dport = bpf_ntohs(*(__be16 *)(l4 + 2));
		if (p->proto == IPPROTO_TCP && (void *)(l4 + 14) <= p->end)
			ev->tcp_flags = l4[13];
	}
	bpf_ringbuf_submit(ev, 0);
	count(events_sent, 0);
}

// count_drop adds a drop to its jail's and the global per-CPU counters.
static __always_inline void count_drop(__u32 jid, __u64 len, int suppressed)
{
	struct jail_drop_count *jd = bpf_map_lookup_elem(&jail_drops, &jid);
	if (jd) {
		jd->packets += 1; // per-CPU
		jd->bytes += len;
	}
	struct stats *s = get_stats();
	if (s) {
		s->dropped += 1;
		s->dropped_bytes += len;
		s->events_suppressed += suppressed;
	}
}

// drop is a drop by an entry the hit cache does not hold (a prefix ban,
// family 0, or an exact one not in this CPU's slot): its counters are
// shared, hence the atomics.
static __always_inline int drop(struct xdp_md *ctx, struct ban_entry *e, struct pkt *p, const __u32 *key,
				__u8 family)
{
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, p->len);
	struct meta *m = get_meta();
	if (m && m->drop_log_rate) {
		__u64 now = boot_now();
		__u64 quiet = 0;
		if (sample(e, m, now, &quiet))
			emit(ctx, e, p, now, key, family);
		else
			suppressed(e);
	}
	count_drop(e->jail_id, p->len, 0);
	return XDP_DROP;
}

// hit_hash is the slot of a key's xor-ed words: Knuth's multiplicative
// hash after folding the high half down, since the bytes that vary most
// (an IPv4 address's last) sit in the word's top bits, which a product
// carries only to its top bits.
static __always_inline __u32 hit_hash(__u32 w)
{
	w ^= w >> 16;
	return (w * 2654435761u) >> HIT_SHIFT;
}

static __always_inline int same_key(struct hit_slot *c, const __u32 *key, __u8 family)
{
	return c->family == family && c->key[0] == key[0] && c->key[1] == key[1] && c->key[2] == key[2] &&
	       c->key[3] == key[3];
}

// settle adds a slot's pending drops to its jail's and the global
// per-CPU counters, before the slot is refilled (the fast path leaves
// them in the slot: Counters and DroppedByJail add what slots hold).
static __always_inline void settle(struct hit_slot *c)
{
	__u64 held = c->suppressed - c->settled;
	if (!c->packets && !held)
		return;
	__u32 jid = c->jail_id;
	struct jail_drop_count *jd = bpf_map_lookup_elem(&jail_drops, &jid);
	if (jd) {
		jd->packets += c->packets;
		jd->bytes += c->bytes;
	}
	struct stats *s = get_stats();
	if (s) {
		s->dropped += c->packets;
		s->dropped_bytes += c->bytes;
		s->events_suppressed += held;
	}
	c->settled = c->suppressed;
}

// fold moves a slot's pending counts into the entry they belong to.
static __always_inline void fold(struct ban_entry *e, struct hit_slot *c)
{
	if (c->packets) {
		__sync_fetch_and_add(&e->packets, c->packets);
		__sync_fetch_and_add(&e->bytes, c->bytes);
	}
	__u64 held = take(c);
	if (held)
		__sync_fetch_and_add(&e->events_suppressed, held);
	c->packets = 0;
	c->bytes = 0;
}

// fast_drop drops a packet whose source holds a valid slot, from the
// slot's copies alone: no hash lookup, no atomics. It returns -1 when
// only the slow path can decide: the ban has expired, the packet is
// outside the ban's port scope (a prefix ban may still cover it), or
// drop events are on.
static __always_inline int fast_drop(struct hit_slot *c, struct pkt *p)
{
	__u64 exp = c->expires_ns;
	__u8 events = c->events;
	__u64 now = 0;
	if (exp || events)
		now = boot_now();
	if (exp && now >= exp)
		return -1;
	if (c->scope_id && !in_scope(c->scope_id, p))
		return -1;
	if (events) {
		// Without a way for another CPU's event to take this CPU's
		// count, the slow path puts it on the entry (drop_fill).
		if (!have_percpu_lookup || now >= c->quiet_until)
			return -1;
		c->suppressed += 1;
	}
	c->packets += 1;
	c->bytes += p->len;
	return XDP_DROP;
}

// drop_fill is drop for an exact-table hit: it hands the slot's pending
// counts to the entry they belong to, refills the slot from e, stamped
// with the generation read before e was looked up (so an unban racing
// this packet leaves a slot that is already stale), and counts this
// packet in the slot. Taking over a slot from another key with pending
// counts costs one lookup of that key to fold them (none if that ban is
// gone: its counts went with it).
static __always_inline int drop_fill(struct xdp_md *ctx, struct ban_entry *e, struct pkt *p, struct hit_slot *c,
				     const __u32 *key, __u8 family, __u64 gen)
{
	if (!have_percpu_lookup && c->events && c->gen == gen && same_key(c, key, family) &&
	    boot_now() < c->quiet_until) {
		// Still quiet: only the held-back count needs the entry.
		c->packets += 1;
		c->bytes += p->len;
		suppressed(e);
		return XDP_DROP;
	}
	if (same_key(c, key, family)) {
		settle(c);
		fold(e, c);
	} else if (c->family && (c->packets || c->suppressed != c->handed)) {
		// Another key's drops sit here: take the slot over only for a
		// key that comes back to it before any other, so a flood
		// cycling through more sources than slots pays a plain drop
		// per packet, not a fold (a second lookup) and a refill too.
		__u32 h = key[0] ^ key[1] ^ key[2] ^ key[3];
		if (c->cand != h) {
			c->cand = h;
			return drop(ctx, e, p, key, family);
		}
		settle(c);
		__u32 old[4] = { c->key[0], c->key[1], c->key[2], c->key[3] };
		struct ban_entry *oe;
		if (c->family == 4)
			oe = bpf_map_lookup_elem(&ban_v4, old);
		else
			oe = bpf_map_lookup_elem(&ban_v6, old);
		if (oe)
			fold(oe, c);
		else
			take(c); // that ban is gone, and what it held back with it
	}
	c->key[0] = key[0];
	c->key[1] = key[1];
	c->key[2] = key[2];
	c->key[3] = key[3];
	c->family = family;
	c->gen = gen;
	c->expires_ns = e->expires_ns;
	c->jail_id = e->jail_id;
	c->scope_id = e->scope_id;
	c->packets = 1;
	c->bytes = p->len;
	c->quiet_until = 0;
	struct meta *m = get_meta();
	c->events = m && m->drop_log_rate;
	if (c->events) {
		__u64 now = boot_now();
		__u64 quiet = 0;
		if (sample(e, m, now, &quiet))
			emit(ctx, e, p, now, key, family);
		else
			suppressed(e);
		c->quiet_until = quiet;
	}
	return XDP_DROP; // counted in the slot, settled at its next refill
}

// gen_dep returns 0 computed from the generation just read, opaquely to
// the compiler. The exact table is looked up through a pointer offset by
// it: an address dependency orders that lookup after the generation's
// load on weakly ordered CPUs (arm64) as it already is on x86, so a slot
// is never stamped with a generation newer than the entry it copied.
static __always_inline __u64 gen_dep(__u64 gen)
{
	__u64 z = gen;
	asm volatile("%0 &= 0" : "+r"(z));
	return z;
}

// rate_limit runs the per-source token bucket (GCRA: one "theoretical
// arrival time" per source and port) on a TCP SYN without ACK aimed at a
// rate-limited port. It returns 1 when the SYN is over the limit.
static __always_inline int rate_limit(struct pkt *p, const __u32 *masked6)
{
	struct meta *m = get_meta();
	if (!m || !m->ratelimit_rules || p->proto != IPPROTO_TCP || !p->l4)
		return 0;
	__u8 *th = p->l4;
	if ((void *)(th + 20) > p->end)
		return 0;
	if ((th[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return 0;
	__be16 dport = *(__be16 *)(th + 2);
	__u32 port = bpf_ntohs(dport);
	struct rl_rule *r = bpf_map_lookup_elem(&rl_rules, &port);
	if (!r || !r->interval_ns)
		return 0;

	struct rl_key k = {};
	k.port = dport;
	if (p->family == 4) {
		struct iphdr *iph = p->l3;
		if ((void *)(iph + 1) > p->end)
			return 0;
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], &iph->saddr, 4);
	} else {
		__builtin_memcpy(k.addr, masked6, 16);
	}

	__u64 now = boot_now();
	struct rl_bucket *b = bpf_map_lookup_elem(&rl_buckets, &k);
	if (!b) {
		struct rl_bucket nb = { .tat = now + r->interval_ns, .jail_id = r->jail_id };
		bpf_map_update_elem(&rl_buckets, &k, &nb, BPF_NOEXIST);
		return 0;
	}
	__u64 tat = b->tat;
	if (tat < now)
		tat = now;
	if (tat - now > r->tau_ns) {
		__sync_fetch_and_add(&b->dropped, 1);
		if (!b->over_since_ns)
			b->over_since_ns = now;
		b->last_over_ns = now;
		b->jail_id = r->jail_id;
		__u32 jid = r->jail_id;
		__u64 *c = bpf_map_lookup_elem(&rl_jail_stats, &jid);
		if (c)
			*c += 1;
		return 1;
	}
	b->tat = tat + r->interval_ns;
	// A source that went a second without exceeding starts over.
	if (b->over_since_ns && now - b->last_over_ns > NSEC_PER_SEC)
		b->over_since_ns = 0;
	return 0;
}

// hit_lookup returns this CPU's slot for a key hash and the cache's
// generation (read now, before any lookup of the ban tables); NULL when
// the maps cannot be read, which only turns the cache off.
static __always_inline struct hit_slot *hit_lookup(__u32 h, __u64 *gen)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&xdpban_gen, &zero);
	if (!g)
		return NULL;
	*gen = *(volatile __u64 *)g;
	__u32 idx = hit_hash(h);
	return bpf_map_lookup_elem(&xdpban_hitcache, &idx);
}

SEC("xdp")
int xdpban(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(malformed, XDP_PASS);
	__be16 proto = eth->h_proto;
	void *cur = eth + 1;

	// Up to two tags: 802.1Q, or QinQ with an 802.1ad outer tag.
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vh = cur;
		if ((void *)(vh + 1) > end)
			return count(malformed, XDP_PASS);
		proto = vh->encap_proto;
		cur = vh + 1;
	}

	struct pkt p = { .l3 = cur, .end = end, .len = end - data };
	int expired = 0;
	struct ban_entry *e;
	__u32 masked[4] = {};

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = cur;
		if ((void *)(iph + 1) > end)
			return count(malformed, XDP_PASS);
		__u32 hlen = iph->ihl * 4;
		if (iph->version != 4 || hlen < sizeof(*iph) || cur + hlen > end)
			return count(malformed, XDP_PASS);
		p.family = 4;
		p.proto = iph->protocol;
		if (!(iph->frag_off & bpf_htons(IP_OFFSET_MASK)))
			p.l4 = cur + hlen;
		__u32 key[4] = { iph->saddr };
		__u64 gen = 0;
		struct hit_slot *c = hit_lookup(key[0], &gen);
		if (c && c->gen == gen && c->key[0] == key[0] && c->family == 4) {
			int r = fast_drop(c, &p);
			if (r >= 0)
				return r;
		}
		int exact = 0;
		e = find_v4((const void *)key + gen_dep(gen), &p, &expired, &exact);
		if (e && exact && c)
			return drop_fill(ctx, e, &p, c, key, 4, gen);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = cur;
		if ((void *)(ip6h + 1) > end)
			return count(malformed, XDP_PASS);
		if (ip6h->version != 6)
			return count(malformed, XDP_PASS);
		p.family = 6;
		__u32 plen = ipv6_prefix;
		__u64 gen = 0;
		struct hit_slot *c;
		if (plen == 64) {
			// The default width: the key is the address's first two
			// words, compared in place (the general path below copies
			// and masks first). The verifier knows plen (read-only
			// data) and keeps only one of the two paths.
			__u32 w0 = ip6h->saddr.in6_u.u6_addr32[0];
			__u32 w1 = ip6h->saddr.in6_u.u6_addr32[1];
			c = hit_lookup(w0 ^ w1, &gen);
			if (c && c->gen == gen && c->key[0] == w0 && c->key[1] == w1 && c->family == 6 && !c->scope_id) {
				int r = fast_drop(c, &p);
				if (r >= 0)
					return r;
			}
		}
		// Mask a copy to the configured width for the exact table.
		__builtin_memcpy(masked, &ip6h->saddr, 16);
		if (plen == 64) {
			masked[2] = 0;
			masked[3] = 0;
		} else {
#pragma unroll
			for (int i = 0; i < 4; i++) {
				int bits = (int)plen - 32 * i;
				if (bits <= 0)
					masked[i] = 0;
				else if (bits < 32)
					masked[i] &= bpf_htonl(0xffffffffu << (32 - bits));
			}
		}
		if (plen != 64)
			c = hit_lookup(masked[0] ^ masked[1] ^ masked[2] ^ masked[3], &gen);
		// A ban of all traffic needs nothing past the addresses: the
		// extension headers are walked only for a port scope, and for
		// the slow path (events, rate limiting).
		int valid = c && c->gen == gen && same_key(c, masked, 6);
		if (plen != 64 && valid && !c->scope_id) {
			int r = fast_drop(c, &p);
			if (r >= 0)
				return r;
		}
		// Walk extension headers to the upper layer, so a SYN behind a
		// Hop-by-Hop or Destination Options header is still rate limited
		// and reported with its ports. Bounded, and only on IPv6 traffic
		// that needs it: a SYN-flooder gains nothing by adding headers.
		__u8 nh = ip6h->nexthdr;
		void *l4 = ip6h + 1;
#pragma unroll
		for (int i = 0; i < IPV6_EXT_MAX; i++) {
			if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
				struct ipv6_opt_hdr *oh = l4;
				if ((void *)(oh + 1) > end) {
					l4 = NULL;
					break;
				}
				nh = oh->nexthdr;
				l4 += (oh->hdrlen + 1) * 8;
			} else if (nh == IPPROTO_FRAGMENT) {
				struct frag_hdr *fh = l4;
				if ((void *)(fh + 1) > end || (fh->frag_off & bpf_htons(IPV6_FRAG_OFFSET_MASK))) {
					l4 = NULL; // a later fragment: no transport header
					break;
				}
				nh = fh->nexthdr;
				l4 += sizeof(*fh);
			} else {
				break;
			}
		}
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT)
			l4 = NULL; // too many extension headers: upper layer unknown
		p.proto = nh;
		p.l4 = l4;
		if (valid && c->scope_id) {
			int r = fast_drop(c, &p);
			if (r >= 0)
				return r;
		}
		int exact = 0;
		e = find_v6(&ip6h->saddr, (const void *)masked + gen_dep(gen), &p, &expired, &exact);
		if (e && exact && c)
			return drop_fill(ctx, e, &p, c, masked, 6, gen);
	} else {
		return count(not_ip, XDP_PASS);
	}

	// A port-scoped ban drops only what its scope names (find_v4/v6 skip
	// it otherwise): the rest of that source's traffic goes on like
	// anyone's. Prefix bans are not cached.
	if (e)
		return drop(ctx, e, &p, NULL, 0);
	if (rate_limit(&p, masked))
		return count(rate_limited, XDP_DROP);
	if (expired)
		return count(expired_pass, XDP_PASS);
	return count(passed, XDP_PASS);
}
