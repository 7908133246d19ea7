package actions

import "github.com/prometheus/client_golang/prometheus"

var (
	notifDesc = prometheus.NewDesc("xdpban_notifications_total",
		"Ban/unban notifications by action kind and result: sent, failed (after retries), dropped (queue full or shutting down).",
		[]string{"action", "result"}, nil)
	retryDesc = prometheus.NewDesc("xdpban_notification_retries_total",
		"Extra delivery attempts made after a failure, by action kind.", []string{"action"}, nil)
	queueDesc = prometheus.NewDesc("xdpban_notification_queue",
		"Notifications waiting to be delivered, by action kind.", []string{"action"}, nil)
)

// Collector exposes r's counters to Prometheus, read at scrape time:
// register it with the daemon's registry (metrics.Metrics.Registry).
func Collector(r *Runner) prometheus.Collector { return collector{r} }

type collector struct{ r *Runner }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- notifDesc
	ch <- retryDesc
	ch <- queueDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for kind, s := range c.r.Stats() {
		ch <- prometheus.MustNewConstMetric(notifDesc, prometheus.CounterValue, float64(s.Sent), kind, "sent")
		ch <- prometheus.MustNewConstMetric(notifDesc, prometheus.CounterValue, float64(s.Failed), kind, "failed")
		ch <- prometheus.MustNewConstMetric(notifDesc, prometheus.CounterValue, float64(s.Dropped), kind, "dropped")
		ch <- prometheus.MustNewConstMetric(retryDesc, prometheus.CounterValue, float64(s.Retried), kind)
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(s.Queued), kind)
	}
}
