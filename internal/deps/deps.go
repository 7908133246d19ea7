package deps

import (
	_ "github.com/cilium/ebpf"
	_ "github.com/coreos/go-iptables/iptables"
	_ "github.com/dlclark/regexp2"
	_ "github.com/nxadm/tail"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/sys/unix"
)
