package control

import "github.com/prometheus/client_golang/prometheus"

var (
	connsDesc = prometheus.NewDesc("xdpban_control_connections",
		"Connections open on the control socket.", nil, nil)
	limitedDesc = prometheus.NewDesc("xdpban_control_connections_limited_total",
		"Control socket connections past socket_max_connections, by what was done: evicted (an idle connection or watch stream closed for a new one), busy (the new one answered busy: every connection in a request), refused (closed unanswered).",
		[]string{"action"}, nil)
)

// Collector exposes the socket's connection counts to Prometheus, read
// at scrape time: register it with the daemon's registry.
func (s *Server) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Server }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connsDesc
	ch <- limitedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.ConnStats()
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(limitedDesc, prometheus.CounterValue, float64(st.Evicted), "evicted")
	ch <- prometheus.MustNewConstMetric(limitedDesc, prometheus.CounterValue, float64(st.Busy), "busy")
	ch <- prometheus.MustNewConstMetric(limitedDesc, prometheus.CounterValue, float64(st.Refused), "refused")
}
