package metrics

import (
	"context"
	"errors"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

func TestScrapeShowsDaemonAndBackendMetrics(t *testing.T) {
	m := New(func(context.Context) (bans.Status, error) {
		return bans.Status{
			Backend:  "xdp",
			Counters: map[string]uint64{"dropped": 42, "dropped_bytes": 4200, "passed": 7, "events_sent": 3, "events_suppressed": 39},
			Tables:   []bans.TableStatus{{Name: "bans_v4", Entries: 25, Capacity: 100}},
		}, nil
	}, func() []JailCounters {
		syns, dp, db := uint64(17), uint64(30), uint64(1800)
		return []JailCounters{
			{Jail: "sshd", Failures: 11, CurrentlyFailed: 4, Filter: "sshd[mode=aggressive]", RegexTimeouts: 4, Evicted: 9, Sources: []SourceCounters{{Log: "/var/log/auth.log", Read: 100, Skipped: 2, BytesLost: 77}}, RateLimited: &syns,
				DroppedPackets: &dp, DroppedBytes: &db},
			{Jail: "nginx", Failures: 1}, // no ratelimit: no series
		}
	})
	m.BansActive.WithLabelValues("sshd").Set(3)
	m.BansTotal.WithLabelValues("sshd").Add(5)
	m.BanLatency.Observe(0.0002)

	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`xdpban_bans_active{jail="sshd"} 3`,
		`xdpban_bans_total{jail="sshd"} 5`,
		`xdpban_failures_total{jail="sshd"} 11`,
		`xdpban_currently_failed{jail="sshd"} 4`,
		`xdpban_regex_timeouts_total{filter="sshd[mode=aggressive]",jail="sshd"} 4`,
		`xdpban_failures_evicted_total{jail="sshd"} 9`,
		`xdpban_log_lines_read_total{jail="sshd",log="/var/log/auth.log"} 100`,
		`xdpban_log_lines_skipped_total{jail="sshd",log="/var/log/auth.log"} 2`,
		`xdpban_log_bytes_lost_total{jail="sshd",log="/var/log/auth.log"} 77`,
		`xdpban_dropped_packets_total{backend="xdp"} 42`,
		`xdpban_dropped_bytes_total{backend="xdp"} 4200`,
		`xdpban_packets_total{backend="xdp",verdict="passed"} 7`,
		`xdpban_packets_total{backend="xdp",verdict="dropped"} 42`,
		`xdpban_drop_events_total{backend="xdp",outcome="sent"} 3`,
		`xdpban_drop_events_total{backend="xdp",outcome="suppressed"} 39`,
		`xdpban_build_info{goversion="go`,
		`xdpban_table_entries{table="bans_v4"} 25`,
		`xdpban_table_fill_ratio{table="bans_v4"} 0.25`,
		`xdpban_ban_latency_seconds_count 1`,
		`xdpban_backend_up 1`,
		`xdpban_ratelimited_packets_total{jail="sshd"} 17`,
		`# TYPE xdpban_ratelimited_packets_total counter`,
		`xdpban_jail_dropped_packets_total{jail="sshd"} 30`,
		`xdpban_jail_dropped_bytes_total{jail="sshd"} 1800`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(string(body), `xdpban_jail_dropped_packets_total{jail="nginx"}`) {
		t.Errorf("a jail whose backend does not count its drops has a series:\n%s", body)
	}
	if strings.Contains(string(body), `xdpban_ratelimited_packets_total{jail="nginx"}`) {
		t.Errorf("a jail without a ratelimit has a rate-limited series:\n%s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestBackendDownIsReported(t *testing.T) {
	m := New(func(context.Context) (bans.Status, error) { return bans.Status{}, errors.New("gone") }, nil)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "xdpban_backend_up" {
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 0 {
				t.Fatalf("xdpban_backend_up = %v with a failing backend", v)
			}
			return
		}
	}
	t.Fatal("xdpban_backend_up missing")
}

func TestListenRejectsBadAddress(t *testing.T) {
	for _, bad := range []string{"9798", "localhost", "127.0.0.1:notaport"} {
		ln, err := Listen(bad)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q) accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("Listen(%q) error %q does not name the input", bad, err)
		}
	}
}

// promlint is what Prometheus' own tooling checks exporters with: names,
// units, _total on counters, help on every metric.
func TestMetricsLintClean(t *testing.T) {
	m := New(func(context.Context) (bans.Status, error) {
		return bans.Status{
			Backend:  "xdp",
			Counters: map[string]uint64{"dropped": 1, "passed": 2, "events_sent": 3, "events_suppressed": 4, "dropped_bytes": 5},
			Tables:   []bans.TableStatus{{Name: "ban_v4", Entries: 1, Capacity: 10}},
		}, nil
	}, func() []JailCounters {
		n := uint64(1)
		return []JailCounters{{Jail: "sshd", Failures: 1, Sources: []SourceCounters{{Log: "/var/log/auth.log", Read: 1}}, RateLimited: &n}}
	})
	m.BansActive.WithLabelValues("sshd").Set(1)
	m.BansTotal.WithLabelValues("sshd").Inc()
	m.UnbansTotal.WithLabelValues("sshd", "expired").Inc()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if len(mfs) < 15 {
		t.Errorf("only %d metric families gathered: the lint saw too little", len(mfs))
	}
}
