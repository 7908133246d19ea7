package loader

// The BPF object is generated from bpf/xdpban.c and committed, so building
// xdpban needs no clang. Regenerate with `make generate`, which sets
// BPF_CFLAGS with -I for the host's multiarch include dir (clang -target
// bpf does not search it, and asm/types.h lives there). Both supported
// architectures (amd64, arm64) are little-endian, hence -target bpfel.
// -mcpu=v3 (linux 5.1+ runs it) for the compare-and-swap the hit cache's
// event hand-over uses (only reached on 5.19+, see have_percpu_lookup).
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 $BPF_CFLAGS" -target bpfel -type ban_entry -type lpm_v4_key -type lpm_v6_key -type meta -type jail_name -type rl_rule -type rl_key -type rl_bucket -type stats -type port_scope -type jail_drop_count -type hit_slot xdpban ../bpf/xdpban.c
