package actions

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gather returns xdpban_notifications_total{action=webhook} by result.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "xdpban_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["action"] == "webhook" {
				out[labels["result"]] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestCollectorExportsStats(t *testing.T) {
	r := NewRunner(Options{QueueSize: 1, Logger: discard})
	r.SetJail("sshd", []Action{nop()})
	r.Notify(sampleEvent()) // queued (not started)
	r.Notify(sampleEvent()) // dropped: the queue of 1 is full
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector(r))
	if got := gather(t, reg); got["dropped"] != 1 || got["sent"] != 0 || got["failed"] != 0 {
		t.Fatalf("before delivery: %v", got)
	}
	r.Close(context.Background()) // delivers the queued one
	if got := gather(t, reg); got["dropped"] != 1 || got["sent"] != 1 {
		t.Fatalf("after delivery: %v", got)
	}
}
