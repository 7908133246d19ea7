package config

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/xdpban/xdpban/internal/config/ini"
)

// Fleet is the [fleet] section of xdpban.conf: bans shared with other
// hosts through a NATS JetStream key-value bucket (daemon/fleet). Off by
// default.
type Fleet struct {
	Enabled bool
	// Servers are the NATS URLs the daemon connects to as a client;
	// empty with Listen set means its own embedded node.
	Servers []string
	// Listen, when set, runs an embedded JetStream node on HOST:PORT.
	Listen string
	// ClusterListen is where the embedded node takes routes from its
	// peers (default: Listen's host, port 6222).
	ClusterListen string
	// Routes are the peers' cluster URLs (nats://host:6222); with
	// routes the bucket is replicated 3 ways.
	Routes []string
	// Node names this host in the fleet (default: the hostname).
	Node string
	// Creds is a NATS credentials file; TLSCert/TLSKey a client (and
	// embedded server) certificate, TLSCA the CA that signs the peers'.
	Creds, TLSCert, TLSKey, TLSCA string
	// StoreDir keeps the embedded node's JetStream files; empty is
	// STATE_DIR/fleet, resolved by the daemon against the state
	// directory it runs with (--state-dir included).
	StoreDir string
	// Bucket is the KV bucket's name (default xdpban-bans).
	Bucket string
	// Replicas of the bucket: 3 when clustered, else 1, unless set.
	Replicas int
}

const fleetSection = "fleet"

var fleetKeys = map[string]bool{
	"enabled": true, "servers": true, "listen": true, "cluster_listen": true, "routes": true,
	"node": true, "creds": true, "tls_cert": true, "tls_key": true, "tls_ca": true,
	"store_dir": true, "bucket": true, "replicas": true,
}

// FleetKeys lists the keys [fleet] accepts.
func FleetKeys() []string { return slices.Sorted(maps.Keys(fleetKeys)) }

var (
	nodeRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	bucketRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// parseFleet reads [fleet].
func parseFleet(f *ini.File) (Fleet, error) {
	g := getter{f}
	s := fleetSection
	var fl Fleet
	if !f.Has(s) {
		return fl, nil
	}
	for _, k := range f.Keys(s) {
		if !fleetKeys[k] {
			if v, ok := f.Own(s, k); ok {
				return fl, g.bad(s, k, v.Text, v.Pos, "unknown setting: see the shipped xdpban.conf for the [fleet] keys")
			}
		}
	}
	var err error
	if fl.Enabled, err = g.boolean(s, "enabled", false); err != nil {
		return fl, err
	}
	urls := func(key string) ([]string, error) {
		v, pos, err := g.str(s, key, "")
		if err != nil {
			return nil, err
		}
		var out []string
		for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
			u, err := url.Parse(w)
			if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || u.Port() == "" {
				return nil, g.bad(s, key, v, pos, "%q is not a NATS URL: want nats://HOST:PORT (or tls://HOST:PORT), comma-separated", w)
			}
			out = append(out, w)
		}
		return out, nil
	}
	if fl.Servers, err = urls("servers"); err != nil {
		return fl, err
	}
	if fl.Routes, err = urls("routes"); err != nil {
		return fl, err
	}
	hostPort := func(key, def string) (string, error) {
		v, pos, err := g.str(s, key, def)
		if err != nil {
			return "", err
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return "", nil
		}
		_, port, err := net.SplitHostPort(v)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || n < 1 || n > 65535 {
			return "", g.bad(s, key, v, pos, "want HOST:PORT such as 192.0.2.1:4222")
		}
		return v, nil
	}
	if fl.Listen, err = hostPort("listen", ""); err != nil {
		return fl, err
	}
	if fl.ClusterListen, err = hostPort("cluster_listen", ""); err != nil {
		return fl, err
	}
	if fl.ClusterListen == "" && fl.Listen != "" && len(fl.Routes) > 0 {
		h, _, _ := net.SplitHostPort(fl.Listen)
		fl.ClusterListen = net.JoinHostPort(h, "6222")
	}
	if len(fl.Routes) > 0 && fl.Listen == "" {
		v, _ := f.Raw(s, "routes")
		return fl, g.bad(s, "routes", v.Text, v.Pos, "routes cluster an embedded node: set listen too, or drop routes and list the cluster in servers")
	}
	if fl.Enabled && fl.Listen == "" && len(fl.Servers) == 0 {
		v, _ := f.Raw(s, "enabled")
		return fl, g.bad(s, "enabled", v.Text, v.Pos, "the fleet needs servers (NATS URLs to connect to) or listen (an embedded node), or both")
	}
	node, pos, err := g.str(s, "node", "")
	if err != nil {
		return fl, err
	}
	if node = strings.TrimSpace(node); node == "" {
		h, _ := os.Hostname()
		node = strings.Map(func(r rune) rune {
			if r == '.' || !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return '_'
			}
			return r
		}, strings.SplitN(h, ".", 2)[0])
		if node == "" {
			node = "xdpban"
		}
	} else if !nodeRE.MatchString(node) {
		return fl, g.bad(s, "node", node, pos, "want up to 64 letters, digits, '-' or '_'")
	}
	fl.Node = node
	paths := []struct {
		key string
		dst *string
	}{{"creds", &fl.Creds}, {"tls_cert", &fl.TLSCert}, {"tls_key", &fl.TLSKey}, {"tls_ca", &fl.TLSCA}, {"store_dir", &fl.StoreDir}}
	for _, p := range paths {
		v, pos, err := g.str(s, p.key, "")
		if err != nil {
			return fl, err
		}
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !filepath.IsAbs(v) {
			return fl, g.bad(s, p.key, v, pos, "want an absolute path")
		}
		*p.dst = filepath.Clean(v)
	}
	if (fl.TLSCert == "") != (fl.TLSKey == "") {
		v, _ := f.Raw(s, "tls_cert")
		return fl, g.bad(s, "tls_cert", v.Text, v.Pos, "set tls_cert and tls_key together")
	}
	b, pos, err := g.str(s, "bucket", "xdpban-bans")
	if err != nil {
		return fl, err
	}
	if b = strings.TrimSpace(b); !bucketRE.MatchString(b) {
		return fl, g.bad(s, "bucket", b, pos, "want up to 64 letters, digits, '-' or '_'")
	}
	fl.Bucket = b
	def := 1
	if len(fl.Routes) > 0 {
		def = 3
	}
	if fl.Replicas, err = g.integer(s, "replicas", def, 1, 5); err != nil {
		return fl, err
	}
	if !fl.Enabled {
		// Checked, but off: the daemon sees no fleet at all.
		return Fleet{}, nil
	}
	return fl, nil
}
