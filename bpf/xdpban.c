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

// ban_entry is the value of every ban map.
struct ban_entry {
	// CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) instant the ban ends; 0 is
	// permanent. Boot time keeps counting across suspend, as wall-clock
	// ban times do.
	__u64 expires_ns;
	// What this entry dropped; atomic adds, several CPUs hit one entry.
	__u64 packets;
	__u64 bytes;
	// Drop-event sampling per banned address: start of the current
	// one-second window and the events sent in it, plus the events held
	// back because the window was full.
	__u64 last_event_ns;
	__u64 events_suppressed;
	__u32 jail_id;
	__u32 events_in_window;
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
struct xdpban_meta {
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

// Every packet lands in exactly one of passed, dropped, expired_pass,
// not_ip, malformed (and, later, rate_limited); the event counters are
// outside that sum.
enum stat_idx {
	STAT_PASSED = 0,
	STAT_DROPPED = 1,
	STAT_EXPIRED_PASS = 2,
	STAT_NOT_IP = 3,
	STAT_MALFORMED = 4,
	STAT_RATE_LIMITED = 5,
	STAT_EVENTS_SENT = 6,
	STAT_EVENTS_SUPPRESSED = 7,
	STAT_SLOTS = 16,
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
	__uint(max_entries, STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpban_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JAIL_SLOTS);
	__type(key, __u32);
	__type(value, struct jail_name);
} jail_names SEC(".maps");

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
} clock SEC(".maps");

// The IPv6 width a single-address ban covers (48..128), fixed at load:
// ban_v6 keys are the source masked to it.
volatile const __u32 ipv6_prefix = 64;

// Puts enum stat_idx in BTF so bpf2go can give userspace its values
// (read-only data: it adds no map of its own).
volatile const enum stat_idx stat_slots = STAT_SLOTS;

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

static __always_inline int count(__u32 idx, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &idx);
	if (c)
		*c += 1; // per-CPU slot: no atomics needed
	return verdict;
}

static __always_inline __u64 boot_now(void)
{
	__u32 zero = 0;
	struct clock_cache *c = bpf_map_lookup_elem(&clock, &zero);
	if (!c)
		return bpf_ktime_get_boot_ns();
	__u64 j = bpf_jiffies64();
	if (c->jiffies != j) {
		c->boot_ns = bpf_ktime_get_boot_ns();
		c->jiffies = j;
	}
	return c->boot_ns;
}

// judge applies an entry found for the source: drop it while the ban is
// live. It returns -1 when the entry has expired so the caller can try
// the wider tables before passing.
static __always_inline int judge(struct ban_entry *e, __u64 len)
{
	__u64 exp = e->expires_ns;
	if (exp && boot_now() >= exp)
		return -1;
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);
	return XDP_DROP;
}

static __always_inline struct xdpban_meta *get_meta(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&meta, &zero);
}

static __always_inline int verdict_v4(__be32 saddr, __u64 len)
{
	int expired = 0;
	struct ban_entry *e = bpf_map_lookup_elem(&ban_v4, &saddr);
	if (e) {
		if (judge(e, len) == XDP_DROP)
			return count(STAT_DROPPED, XDP_DROP);
		expired = 1;
	}
	struct xdpban_meta *m = get_meta();
	if (m && m->v4_net_entries) {
		struct lpm_v4_key k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, &saddr, 4);
		e = bpf_map_lookup_elem(&ban_v4_net, &k);
		if (e) {
			if (judge(e, len) == XDP_DROP)
				return count(STAT_DROPPED, XDP_DROP);
			expired = 1;
		}
	}
	return count(expired ? STAT_EXPIRED_PASS : STAT_PASSED, XDP_PASS);
}

static __always_inline int verdict_v6(const struct in6_addr *src, __u64 len)
{
	int expired = 0;
	struct lpm_v6_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, src, 16);

	// Mask a copy to the configured width for the exact table; the trie
	// gets the full address.
	__u32 w[4];
	__builtin_memcpy(w, src, 16);
	__u32 plen = ipv6_prefix;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int bits = (int)plen - 32 * i;
		if (bits <= 0)
			w[i] = 0;
		else if (bits < 32)
			w[i] &= bpf_htonl(0xffffffffu << (32 - bits));
	}

	struct ban_entry *e = bpf_map_lookup_elem(&ban_v6, w);
	if (e) {
		if (judge(e, len) == XDP_DROP)
			return count(STAT_DROPPED, XDP_DROP);
		expired = 1;
	}
	struct xdpban_meta *m = get_meta();
	if (m && m->v6_net_entries) {
		e = bpf_map_lookup_elem(&ban_v6_net, &k);
		if (e) {
			if (judge(e, len) == XDP_DROP)
				return count(STAT_DROPPED, XDP_DROP);
			expired = 1;
		}
	}
	return count(expired ? STAT_EXPIRED_PASS : STAT_PASSED, XDP_PASS);
}

SEC("xdp")
int xdpban(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(STAT_MALFORMED, XDP_PASS);
	__be16 proto = eth->h_proto;
	void *cur = eth + 1;

	// Up to two tags: 802.1Q, or QinQ with an 802.1ad outer tag.
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vh = cur;
		if ((void *)(vh + 1) > end)
			return count(STAT_MALFORMED, XDP_PASS);
		proto = vh->encap_proto;
		cur = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = cur;
		if ((void *)(iph + 1) > end)
			return count(STAT_MALFORMED, XDP_PASS);
		if (iph->version != 4 || iph->ihl < 5 || cur + iph->ihl * 4 > end)
			return count(STAT_MALFORMED, XDP_PASS);
		return verdict_v4(iph->saddr, len);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = cur;
		if ((void *)(ip6h + 1) > end)
			return count(STAT_MALFORMED, XDP_PASS);
		if (ip6h->version != 6)
			return count(STAT_MALFORMED, XDP_PASS);
		return verdict_v6(&ip6h->saddr, len);
	}
	return count(STAT_NOT_IP, XDP_PASS);
}
