package config

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config/ini"
)

const daemonSection = "xdpban"

var daemonKeys = map[string]bool{
	"backend": true, "interfaces": true, "pin_path": true, "socket": true, "socket_max_connections": true, "state_dir": true,
	"banlog": true, "map_size_v4": true, "map_size_v6": true, "map_size_v4_net": true,
	"map_size_v6_net": true, "ipv6_prefix": true, "metrics_listen": true, "log_format": true,
	"log_level": true, "dbpurgeage": true, "log_drops": true, "drop_log_rate": true,
	"drop_log_global": true, "chains": true, "blocktype": true,
}

var (
	ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)
	chainRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,28}$`)
)

func parseDaemon(f *ini.File) (Daemon, error) {
	g := getter{f}
	s := daemonSection
	var d Daemon
	if !f.Has(s) {
		return d, fmt.Errorf("no [xdpban] section in %s: %w", strings.Join(f.Files(), ", "), ErrInvalid)
	}
	for _, k := range f.Keys(s) {
		if !daemonKeys[k] {
			v, _ := f.Own(s, k)
			return d, g.bad(s, k, v.Text, v.Pos, "unknown setting: see the shipped xdpban.conf for the list")
		}
	}
	var err error
	choice := func(key, def string, allowed ...string) (string, error) {
		v, pos, err := g.str(s, key, def)
		if err != nil {
			return "", err
		}
		v = strings.TrimSpace(v)
		for _, a := range allowed {
			if strings.EqualFold(v, a) {
				return a, nil
			}
		}
		return "", g.bad(s, key, v, pos, "want one of %s", strings.Join(allowed, ", "))
	}
	if d.Backend, err = choice("backend", "auto", "auto", "xdp", "nftables", "iptables"); err != nil {
		return d, err
	}
	ifs, pos, err := g.str(s, "interfaces", "")
	if err != nil {
		return d, err
	}
	for _, i := range splitWords(ifs) {
		if !ifaceRE.MatchString(i) {
			return d, g.bad(s, "interfaces", ifs, pos, "%q is not an interface name (at most 15 characters, no '/' or spaces)", i)
		}
		d.Interfaces = append(d.Interfaces, i)
	}
	paths := []struct {
		key string
		dst *string
		def string
		off bool
	}{
		{"pin_path", &d.PinPath, "/sys/fs/bpf/xdpban", false},
		{"socket", &d.Socket, "/run/xdpban/xdpban.sock", false},
		{"state_dir", &d.StateDir, "/var/lib/xdpban", false},
		{"banlog", &d.BanLog, "/var/log/xdpban/xdpban.log", true},
	}
	for _, p := range paths {
		v, pos, err := g.str(s, p.key, p.def)
		if err != nil {
			return d, err
		}
		v = strings.TrimSpace(v)
		if p.off && (v == "" || strings.EqualFold(v, "none")) {
			// "none", not "": callers fill "" with the default path.
			*p.dst = "none"
			continue
		}
		if !filepath.IsAbs(v) {
			return d, g.bad(s, p.key, v, pos, "want an absolute path")
		}
		*p.dst = filepath.Clean(v)
	}
	if d.SocketMaxConns, err = g.integer(s, "socket_max_connections", 128, 4, 65536); err != nil {
		return d, err
	}
	sizes := []struct {
		key string
		dst *int
	}{{"map_size_v4", &d.MapSizes.V4}, {"map_size_v6", &d.MapSizes.V6}, {"map_size_v4_net", &d.MapSizes.V4Net}, {"map_size_v6_net", &d.MapSizes.V6Net}}
	for _, sz := range sizes {
		if *sz.dst, err = g.integer(s, sz.key, 0, 0, 1<<26); err != nil {
			return d, err
		}
	}
	if d.IPv6Prefix, err = g.integer(s, "ipv6_prefix", bans.DefaultIPv6Prefix, 0, 1<<30); err != nil {
		return d, err
	}
	if err := bans.ValidateIPv6Prefix(d.IPv6Prefix); err != nil {
		v, _ := f.Raw(s, "ipv6_prefix")
		return d, g.bad(s, "ipv6_prefix", v.Text, v.Pos, "%s", strings.TrimPrefix(err.Error(), fmt.Sprintf("ipv6_prefix %d ", d.IPv6Prefix)))
	}
	ml, pos, err := g.str(s, "metrics_listen", "")
	if err != nil {
		return d, err
	}
	if ml = strings.TrimSpace(ml); ml != "" {
		_, port, err := net.SplitHostPort(ml)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || n < 1 || n > 65535 {
			return d, g.bad(s, "metrics_listen", ml, pos, "want HOST:PORT such as 127.0.0.1:9798 or [::1]:9798, or empty for no metrics")
		}
	}
	d.MetricsListen = ml
	if d.LogFormat, err = choice("log_format", "text", "text", "json"); err != nil {
		return d, err
	}
	if d.LogLevel, err = choice("log_level", "info", "debug", "info", "warn", "error"); err != nil {
		return d, err
	}
	if d.DBPurgeAge, err = g.duration(s, "dbpurgeage", 24*time.Hour, false, true); err != nil {
		return d, err
	}
	if d.LogDrops, err = g.boolean(s, "log_drops", false); err != nil {
		return d, err
	}
	if d.DropLogRate, err = g.integer(s, "drop_log_rate", 1, 0, 1_000_000); err != nil {
		return d, err
	}
	if d.DropLogGlobal, err = g.integer(s, "drop_log_global", 100, 0, 1_000_000); err != nil {
		return d, err
	}
	ch, pos, err := g.str(s, "chains", "INPUT")
	if err != nil {
		return d, err
	}
	for _, c := range splitWords(ch) {
		if !chainRE.MatchString(c) {
			return d, g.bad(s, "chains", ch, pos, "%q is not a chain name (letters, digits, '_' and '-')", c)
		}
		d.Chains = append(d.Chains, c)
	}
	if len(d.Chains) == 0 {
		return d, g.bad(s, "chains", ch, pos, "name at least one chain, e.g. INPUT")
	}
	bt, pos, err := g.str(s, "blocktype", "DROP")
	if err != nil {
		return d, err
	}
	switch strings.ToUpper(strings.TrimSpace(bt)) {
	case "DROP", "REJECT":
		d.BlockType = strings.ToUpper(strings.TrimSpace(bt))
	default:
		return d, g.bad(s, "blocktype", bt, pos, "want DROP or REJECT")
	}
	if d.Fleet, err = parseFleet(f); err != nil {
		return d, err
	}
	return d, nil
}
