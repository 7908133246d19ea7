package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/xdpban/xdpban/internal/config"
)

// DefaultConfigDir is where the packaged configuration lives.
const DefaultConfigDir = "/etc/xdpban"

// loadConfig reads xdpban's configuration directory, or fail2ban's tree
// when f2bDir is set (its jails; the daemon settings then come from dir,
// or the shipped defaults). An absent default directory means the shipped
// defaults; an absent directory named on the command line is an error.
func loadConfig(dir, f2bDir string) (*config.Config, error) {
	if f2bDir != "" {
		cfg, err := config.LoadFail2ban(f2bDir)
		if err != nil {
			return nil, fmt.Errorf("--fail2ban-config: %w", err)
		}
		if dir != "" {
			d, err := config.LoadDaemon(dir)
			if err != nil {
				return nil, err
			}
			cfg.SetDaemon(d) // also moves recidive to this ban log
		}
		return cfg, nil
	}
	if dir == "" {
		dir = DefaultConfigDir
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			dir = ""
		}
	}
	return config.Load(dir)
}

// daemonSettings are the daemon paths a client command needs, from
// --config when given (so `xdpban --config DIR list` finds the socket the
// daemon of DIR uses), else nothing: the built-in defaults apply.
func (e *env) daemonSettings() config.Daemon {
	if e.config == "" {
		return config.Daemon{}
	}
	if e.cfgDaemon == nil {
		d, err := config.LoadDaemon(e.config)
		if err != nil {
			d = config.Daemon{}
		}
		e.cfgDaemon = &d
	}
	return *e.cfgDaemon
}
