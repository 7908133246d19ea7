package fleet

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/xdpban/xdpban/internal/config"
)

// clusterName is the embedded nodes' cluster: routes only join nodes of
// the same name.
const clusterName = "xdpban"

// startServer runs the embedded JetStream node cfg.Listen asks for:
// file storage under cfg.StoreDir, clustered over cfg.Routes.
func startServer(cfg config.Fleet) (*server.Server, error) {
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("fleet listen %s: %w", cfg.Listen, err)
	}
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("fleet listen %s: no store directory for the embedded node: set store_dir in [fleet]", cfg.Listen)
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet store directory: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Node,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// The daemon owns the signals and the log.
		NoSigs:                 true,
		NoLog:                  true,
		DisableJetStreamBanner: true,
	}
	if cfg.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CaFile: cfg.TLSCA, Verify: cfg.TLSCA != ""})
		if err != nil {
			return nil, fmt.Errorf("fleet tls: %w", err)
		}
		opts.TLSConfig = tc
	}
	if len(cfg.Routes) > 0 {
		ch, cp, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("fleet cluster_listen %s: %w", cfg.ClusterListen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: clusterName, Host: ch, Port: cp}
		if opts.TLSConfig != nil {
			opts.Cluster.TLSConfig = opts.TLSConfig
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("fleet route %s: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("fleet: start embedded NATS node: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("fleet: embedded NATS node on %s not ready after 10s (address in use?)", cfg.Listen)
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, n, nil
}
