// Package metrics exposes xdpban's Prometheus metrics. It is off unless
// metrics_listen is set: a banning host should not open a port by default.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/version"
)

// DefaultListen is the documented metrics_listen value.
const DefaultListen = "127.0.0.1:9798"

// StatusFunc reads the backend's counters and table fill at scrape time.
type StatusFunc func(ctx context.Context) (bans.Status, error)

// Metrics holds the collectors the daemon updates.
type Metrics struct {
	Registry *prometheus.Registry

	BansActive  *prometheus.GaugeVec   // jail
	BansTotal   *prometheus.CounterVec // jail
	UnbansTotal *prometheus.CounterVec // jail, reason
	// BanLatency is decision (or CLI request) to backend Add done.
	BanLatency prometheus.Histogram
	// StoreBacklog is the bans and unbans enforced but not yet written
	// to the ban database (it refused the write: full disk).
	StoreBacklog prometheus.Gauge
	// StoreWriteErrors counts refused database writes, retries included.
	StoreWriteErrors prometheus.Counter
	// BansReinserted counts bans found missing from the kernel (evicted
	// from an LRU map, or removed behind the daemon's back) and put back.
	BansReinserted prometheus.Counter
}

// JailCounters are one jail's log-side totals, read from the jail engine
// at scrape time (the engine already counts; copying would double the
// bookkeeping).
type JailCounters struct {
	Jail     string
	Failures uint64
	// CurrentlyFailed is the addresses with failures inside findtime
	// that are not banned yet (fail2ban's "Currently failed").
	CurrentlyFailed int
	// Filter names the jail's filter; RegexTimeouts counts the lines it
	// gave up on (backtracking past the per-line budget).
	Filter        string
	RegexTimeouts uint64
	// Evicted counts addresses whose failures were dropped by the
	// jail's maxtracked bound, oldest first.
	Evicted uint64
	// Ignored counts failures of ignored addresses (never banned);
	// Narrowed counts bans narrowed so as not to cover one.
	Ignored, Narrowed uint64
	Sources           []SourceCounters
	// RateLimited is the SYNs the kernel dropped for exceeding the jail's
	// ratelimit; nil when the jail has none or the backend does not
	// rate-limit, so no series claims a limit that is not enforced.
	RateLimited *uint64
	// DroppedPackets and DroppedBytes are what the jail's bans dropped
	// (XDP keeps them per jail); nil when the backend does not.
	DroppedPackets, DroppedBytes *uint64
}

// SourceCounters are one followed log's line totals.
type SourceCounters struct {
	Log           string
	Read, Skipped uint64
	// BytesLost were truncated away before they could be read.
	BytesLost uint64
}

// JailsFunc reads the jails' counters at scrape time.
type JailsFunc func() []JailCounters

// New builds the collectors; status and jails (either may be nil) feed
// the backend and log-side ones.
func New(status StatusFunc, jails JailsFunc) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		BansActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xdpban_bans_active", Help: "Bans currently enforced, per jail.",
		}, []string{"jail"}),
		BansTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xdpban_bans_total", Help: "Bans added since the daemon started, per jail.",
		}, []string{"jail"}),
		UnbansTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xdpban_unbans_total", Help: "Bans lifted since the daemon started, per jail and reason (expired, manual).",
		}, []string{"jail", "reason"}),
		BanLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "xdpban_ban_latency_seconds",
			Help:    "Time from a ban decision to the backend enforcing it.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16), // 50µs .. ~1.6s
		}),
		StoreBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xdpban_store_backlog", Help: "Bans and unbans in force but not yet written to the ban database, which refused the write (full disk); retried every second.",
		}),
		StoreWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xdpban_store_write_errors_total", Help: "Ban database writes that failed, retries included.",
		}),
		BansReinserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xdpban_bans_reinserted_total", Help: "Bans found missing from the kernel maps (evicted, or removed behind the daemon's back) and put back from the store.",
		}),
	}
	// The build, as Prometheus exporters publish theirs: a constant 1
	// whose labels say which binary is running across a fleet.
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "xdpban_build_info", Help: "A constant 1 labelled with the running build's version, revision and Go version.",
		ConstLabels: prometheus.Labels{"version": version.String(), "revision": version.Revision(), "goversion": version.GoVersion()},
	})
	buildInfo.Set(1)
	m.Registry.MustRegister(m.BansActive, m.BansTotal, m.UnbansTotal, m.BanLatency, buildInfo,
		m.StoreBacklog, m.StoreWriteErrors, m.BansReinserted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if status != nil {
		m.Registry.MustRegister(&backendCollector{status: status})
	}
	if jails != nil {
		m.Registry.MustRegister(&jailCollector{jails: jails})
	}
	return m
}

var (
	descFailures = prometheus.NewDesc("xdpban_failures_total",
		"Log lines matched as failures, per jail.", []string{"jail"}, nil)
	descLinesRead = prometheus.NewDesc("xdpban_log_lines_read_total",
		"Lines read, per jail and followed log.", []string{"jail", "log"}, nil)
	descLinesSkipped = prometheus.NewDesc("xdpban_log_lines_skipped_total",
		"Lines skipped as too long to match, per jail and followed log.", []string{"jail", "log"}, nil)
	descCurrentlyFailed = prometheus.NewDesc("xdpban_currently_failed",
		"Addresses with failures inside findtime and no ban yet, per jail.", []string{"jail"}, nil)
	descBytesLost = prometheus.NewDesc("xdpban_log_bytes_lost_total",
		"Bytes of a followed log truncated away before they could be read (copytruncate with no readable copy, or written between logrotate's copy and its truncation), per jail and log.", []string{"jail", "log"}, nil)
	descRegexTimeouts = prometheus.NewDesc("xdpban_regex_timeouts_total",
		"Log lines a filter gave up on after the per-line backtracking budget (counted as misses), per jail and filter.", []string{"jail", "filter"}, nil)
	descEvicted = prometheus.NewDesc("xdpban_failures_evicted_total",
		"Addresses whose counted failures were dropped, oldest first, because the jail tracked maxtracked addresses, per jail.", []string{"jail"}, nil)
	descIgnored = prometheus.NewDesc("xdpban_ignored_failures_total",
		"Failures of addresses in ignoreip, the host's own (ignoreself) or loopback: counted, never banned, per jail.", []string{"jail"}, nil)
	descNarrowed = prometheus.NewDesc("xdpban_bans_narrowed_total",
		"Bans narrowed below ipv6_prefix because the widened prefix would have covered an ignored address, per jail.", []string{"jail"}, nil)
	descJailDropped = prometheus.NewDesc("xdpban_jail_dropped_packets_total",
		"Packets dropped by the jail's bans, lifted ones included (XDP per-CPU counters summed).", []string{"jail"}, nil)
	descJailDroppedBytes = prometheus.NewDesc("xdpban_jail_dropped_bytes_total",
		"Bytes dropped by the jail's bans, lifted ones included (XDP).", []string{"jail"}, nil)
	descRateLimited = prometheus.NewDesc("xdpban_ratelimited_packets_total",
		"SYNs dropped by the kernel for exceeding the jail's ratelimit (XDP per-CPU counters summed).", []string{"jail"}, nil)
)

type jailCollector struct{ jails JailsFunc }

func (c *jailCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFailures
	ch <- descCurrentlyFailed
	ch <- descLinesRead
	ch <- descLinesSkipped
	ch <- descRateLimited
	ch <- descJailDropped
	ch <- descJailDroppedBytes
	ch <- descRegexTimeouts
	ch <- descBytesLost
	ch <- descEvicted
	ch <- descIgnored
	ch <- descNarrowed
}

func (c *jailCollector) Collect(ch chan<- prometheus.Metric) {
	for _, j := range c.jails() {
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(j.Failures), j.Jail)
		ch <- prometheus.MustNewConstMetric(descCurrentlyFailed, prometheus.GaugeValue, float64(j.CurrentlyFailed), j.Jail)
		ch <- prometheus.MustNewConstMetric(descRegexTimeouts, prometheus.CounterValue, float64(j.RegexTimeouts), j.Jail, j.Filter)
		ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(j.Evicted), j.Jail)
		ch <- prometheus.MustNewConstMetric(descIgnored, prometheus.CounterValue, float64(j.Ignored), j.Jail)
		ch <- prometheus.MustNewConstMetric(descNarrowed, prometheus.CounterValue, float64(j.Narrowed), j.Jail)
		if j.RateLimited != nil {
			ch <- prometheus.MustNewConstMetric(descRateLimited, prometheus.CounterValue, float64(*j.RateLimited), j.Jail)
		}
		if j.DroppedPackets != nil && j.DroppedBytes != nil {
			ch <- prometheus.MustNewConstMetric(descJailDropped, prometheus.CounterValue, float64(*j.DroppedPackets), j.Jail)
			ch <- prometheus.MustNewConstMetric(descJailDroppedBytes, prometheus.CounterValue, float64(*j.DroppedBytes), j.Jail)
		}
		seen := map[string]bool{}
		for _, s := range j.Sources {
			if seen[s.Log] { // a duplicate label set would fail the scrape
				continue
			}
			seen[s.Log] = true
			ch <- prometheus.MustNewConstMetric(descLinesRead, prometheus.CounterValue, float64(s.Read), j.Jail, s.Log)
			ch <- prometheus.MustNewConstMetric(descLinesSkipped, prometheus.CounterValue, float64(s.Skipped), j.Jail, s.Log)
			ch <- prometheus.MustNewConstMetric(descBytesLost, prometheus.CounterValue, float64(s.BytesLost), j.Jail, s.Log)
		}
	}
}

var (
	descDropped = prometheus.NewDesc("xdpban_dropped_packets_total",
		"Packets dropped by the backend (XDP per-CPU counters summed).", []string{"backend"}, nil)
	descDroppedBytes = prometheus.NewDesc("xdpban_dropped_bytes_total",
		"Bytes dropped by the backend.", []string{"backend"}, nil)
	descPackets = prometheus.NewDesc("xdpban_packets_total",
		"Packets the backend judged, per verdict: passed, dropped, expired_pass (from an expired ban), not_ip, malformed, rate_limited (XDP); dropped (netfilter).", []string{"backend", "verdict"}, nil)
	descDropEvents = prometheus.NewDesc("xdpban_drop_events_total",
		"Drop events, per outcome: sent to the daemon, or suppressed by the per-ban and global sampling budgets.", []string{"backend", "outcome"}, nil)
	descEntries = prometheus.NewDesc("xdpban_table_entries",
		"Entries in each ban map or set.", []string{"table"}, nil)
	descCapacity = prometheus.NewDesc("xdpban_table_capacity",
		"Capacity of each ban map or set.", []string{"table"}, nil)
	descLimit = prometheus.NewDesc("xdpban_table_limit",
		"Bans each ban map or set takes: its capacity, less the room an LRU map keeps so that the kernel never evicts; bans past it are refused.", []string{"table"}, nil)
	descFill = prometheus.NewDesc("xdpban_table_fill_ratio",
		"Entries over the limit of each ban map or set (1 is full: further bans are refused).", []string{"table"}, nil)
	descUp = prometheus.NewDesc("xdpban_backend_up",
		"1 when the backend answered the last status read.", nil, nil)
)

// backendCollector reads the backend at scrape time, so the kernel's
// per-CPU counters are never copied on a timer nobody reads.
type backendCollector struct{ status StatusFunc }

func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDropped, descDroppedBytes, descPackets, descDropEvents, descEntries, descCapacity, descLimit, descFill, descUp} {
		ch <- d
	}
}

func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Counters["dropped"]), st.Backend)
	// Only a backend that counts bytes globally reports them; 0 would lie.
	if v, ok := st.Counters["dropped_bytes"]; ok {
		ch <- prometheus.MustNewConstMetric(descDroppedBytes, prometheus.CounterValue, float64(v), st.Backend)
	}
	for name, v := range st.Counters {
		switch name {
		case "dropped_bytes", "entries":
			// Bytes have their own metric; entries are the tables'.
		case "events_sent":
			ch <- prometheus.MustNewConstMetric(descDropEvents, prometheus.CounterValue, float64(v), st.Backend, "sent")
		case "events_suppressed":
			ch <- prometheus.MustNewConstMetric(descDropEvents, prometheus.CounterValue, float64(v), st.Backend, "suppressed")
		default:
			ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(v), st.Backend, name)
		}
	}
	for _, t := range st.Tables {
		ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(t.Entries), t.Name)
		ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(t.Capacity), t.Name)
		limit := t.Capacity
		if t.Limit > 0 {
			limit = t.Limit
		}
		ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(limit), t.Name)
		if limit > 0 {
			ch <- prometheus.MustNewConstMetric(descFill, prometheus.GaugeValue, float64(t.Entries)/float64(limit), t.Name)
		}
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Listen binds addr (host:port) so a bad or busy address fails at start,
// not in the background.
func Listen(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("metrics_listen %q: %w: want HOST:PORT such as %s", addr, err, DefaultListen)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %q: %w", addr, err)
	}
	return ln, nil
}

// Serve serves /metrics on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}
