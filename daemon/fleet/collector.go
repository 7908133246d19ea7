package fleet

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descConnected = prometheus.NewDesc("xdpban_fleet_connected", "1 when connected to the fleet's NATS servers.", nil, nil)
	descPublished = prometheus.NewDesc("xdpban_fleet_published_total", "Bans and unbans this host published to the fleet.", nil, nil)
	descReceived  = prometheus.NewDesc("xdpban_fleet_received_total", "Bans and unbans received from other hosts.", nil, nil)
	descRefused   = prometheus.NewDesc("xdpban_fleet_refused_total", "Remote bans refused here, by reason (ignoreip, too_wide, bad_record, ...).", []string{"reason"}, nil)
	descOutbox    = prometheus.NewDesc("xdpban_fleet_outbox", "Changes waiting to be published.", nil, nil)
	descValues    = prometheus.NewDesc("xdpban_fleet_bucket_values", "Values in the fleet bucket (bans and markers).", nil, nil)
	descApply     = prometheus.NewDesc("xdpban_fleet_apply_seconds", "Time to enforce a remote ban once received.", nil, nil)
)

// Collector exports the xdpban_fleet_* metrics.
func (f *Fleet) Collector() prometheus.Collector { return collector{f} }

type collector struct{ f *Fleet }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descPublished, descReceived, descRefused, descOutbox, descValues, descApply} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Status()
	up := 0.0
	if st.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(st.Received))
	for _, r := range []string{"ignoreip", "too_wide", "bad_record", "bad_key", "failed"} {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(st.Refused[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(st.Outbox))
	ch <- prometheus.MustNewConstMetric(descValues, prometheus.GaugeValue, float64(st.Values))
	l := &c.f.applyLat
	l.mu.Lock()
	bk := map[float64]uint64{}
	var cum uint64
	for i, b := range latencyBounds {
		cum += l.buckets[i]
		bk[b] = cum
	}
	count, sum := l.count, l.sum
	l.mu.Unlock()
	ch <- prometheus.MustNewConstHistogram(descApply, count, sum, bk)
}
