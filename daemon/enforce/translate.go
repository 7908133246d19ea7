package enforce

import (
	"fmt"

	"github.com/xdpban/xdpban/fallback/iptables"
	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/loader"
)

// The configuration is translated into each backend's options here, in
// the only package that imports the backends: they know nothing of the
// configuration's types.

// rateLimitRules turns the enabled jails' `ratelimit` settings into
// rules: one per TCP port of the jail's port list (numbers, service
// names, ranges). A jail with a rate limit must name its ports: a limit
// on every port would throttle all new connections to the host.
func rateLimitRules(jails []config.Jail) ([]loader.RateLimitRule, error) {
	var out []loader.RateLimitRule
	for _, j := range jails {
		rl := j.RateLimit
		if !j.Enabled || rl.Rate <= 0 {
			continue
		}
		sc, err := bans.ParseScope("tcp", j.Port)
		if err != nil {
			return nil, fmt.Errorf("jail %q (%s): ratelimit: %w", j.Name, j.Source, err)
		}
		if len(sc.Ports) == 0 {
			return nil, fmt.Errorf("jail %q (%s): ratelimit needs the jail's port (e.g. port = ssh): it limits SYNs per port", j.Name, j.Source)
		}
		for _, pr := range sc.Ports {
			for p := int(pr.From); p <= int(pr.To); p++ {
				out = append(out, loader.RateLimitRule{Port: uint16(p), Jail: j.Name, Rate: rl.Rate, Per: rl.Per, Burst: rl.Burst})
			}
		}
	}
	return out, nil
}

// iptablesOptions maps the daemon configuration to the iptables
// backend's options (each ban carries its own scope: jails do not matter).
func iptablesOptions(d config.Daemon) iptables.Options {
	o := iptables.Options{
		From:       d.Chains,
		Interfaces: d.Interfaces,
		BlockType:  d.BlockType,
	}
	if n := d.MapSizes.V4 + d.MapSizes.V4Net; n > 0 {
		o.MaxElem = max(n, d.MapSizes.V6+d.MapSizes.V6Net)
	}
	return o
}
