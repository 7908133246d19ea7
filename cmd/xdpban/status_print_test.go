package main

import (
	"strings"
	"testing"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
)

func TestStatusTextShowsRateLimitedDrops(t *testing.T) {
	n := uint64(4321)
	var b strings.Builder
	printStatus(&b, control.Status{Status: bans.Status{Backend: "xdp"}, Mode: "daemon", Jails: []control.JailSummary{
		{Name: "synflood", Enabled: true, RateLimit: "5/1s,burst=5", RateLimited: &n},
		{Name: "web", Enabled: true, RateLimit: "10/1m,burst=10"}, // backend without a rate limiter
		{Name: "sshd", Enabled: true},
	}})
	out := b.String()
	for _, want := range []string{
		"rate-limited SYNs dropped:  synflood  4321  (ratelimit 5/1s,burst=5)",
		"rate-limited SYNs dropped:  web       n/a   (ratelimit 10/1m,burst=10)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "rate-limited SYNs dropped:  sshd") {
		t.Errorf("a jail without a ratelimit has a rate-limited line:\n%s", out)
	}

	b.Reset()
	printJailStatus(&b, control.JailStatus{Name: "synflood", RateLimit: "5/1s,burst=5", RateLimited: &n})
	if want := "|- Rate limit\n|  |- Setting:\t5/1s,burst=5\n|  `- Rate-limited SYNs dropped:\t4321\n`- Actions\n"; !strings.Contains(b.String(), want) {
		t.Errorf("jail status lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	printJailStatus(&b, control.JailStatus{Name: "web", RateLimit: "10/1m,burst=10"})
	if want := "Rate-limited SYNs dropped:\tn/a\n"; !strings.Contains(b.String(), want) {
		t.Errorf("jail status on a backend without a rate limiter lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	printJailStatus(&b, control.JailStatus{Name: "sshd"})
	if strings.Contains(b.String(), "Rate") {
		t.Errorf("jail without a ratelimit shows a rate limit section:\n%s", b.String())
	}
}

func TestStatusTextShowsFleet(t *testing.T) {
	var b strings.Builder
	printStatus(&b, control.Status{Status: bans.Status{Backend: "xdp"}, Mode: "daemon"})
	if strings.Contains(b.String(), "fleet") {
		t.Errorf("status without [fleet] mentions it:\n%s", b.String())
	}
	b.Reset()
	printStatus(&b, control.Status{Status: bans.Status{Backend: "xdp"}, Mode: "daemon", Fleet: &control.FleetStatus{
		Node: "bastion-a", Connected: true, InStep: true, Server: "nats://192.0.2.1:4222", Servers: []string{"nats://192.0.2.1:4222", "nats://192.0.2.2:4222"},
		Bucket: "xdpban-bans", Values: 12, Outbox: 3, Published: 7, Received: 5, Refused: map[string]uint64{"ignoreip": 2}}})
	out := b.String()
	for _, want := range []string{
		"fleet:", "node bastion-a, connected to nats://192.0.2.1:4222",
		"nats://192.0.2.1:4222, nats://192.0.2.2:4222", "xdpban-bans  12 values", "fleet outbox:", "7 / 5", "ignoreip  2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printStatus(&b, control.Status{Status: bans.Status{Backend: "xdp"}, Mode: "daemon", Fleet: &control.FleetStatus{Node: "bastion-a", Outbox: 3}})
	if !strings.Contains(b.String(), "DISCONNECTED") {
		t.Errorf("a disconnected fleet is not said so:\n%s", b.String())
	}
}
