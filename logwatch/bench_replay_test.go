package logwatch

import (
	"bytes"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/xdpban/xdpban/bench/loggen"
	"github.com/xdpban/xdpban/logwatch/filter"
)

// authLogBytes is the benchmark log: the file named by XDPBAN_AUTHLOG
// (make authlog writes the 1M-line one) or 200k generated lines.
func authLogBytes(b *testing.B) ([]byte, int) {
	if p := os.Getenv("XDPBAN_AUTHLOG"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatalf("XDPBAN_AUTHLOG: %v", err)
		}
		return data, -1
	}
	var buf bytes.Buffer
	st, err := loggen.Generate(&buf, loggen.Options{Lines: 200_000})
	if err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), st.Failures
}

func benchReplay(b *testing.B, f *filter.Filter) { benchReplayOpt(b, f, ReplayOptions{}) }

func benchReplayOpt(b *testing.B, f *filter.Filter, opt ReplayOptions) {
	data, fails := authLogBytes(b)
	ref := time.Date(2026, 11, 25, 0, 0, 0, 0, time.Local)
	lines := bytes.Count(data, []byte("\n"))
	b.SetBytes(int64(len(data)))
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := opt
		o.Ref = ref
		res, err := Replay(bytes.NewReader(data), f.NewScanner(), o)
		if err != nil {
			b.Fatal(err)
		}
		if res.Lines != lines || (fails >= 0 && res.Matched != fails) {
			b.Fatalf("%d lines, %d matched: want %d lines, %d matched", res.Lines, res.Matched, lines, fails)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	// On a shared machine wall time includes waiting for the CPU; the
	// process's CPU time (run with GOMAXPROCS=1: one core) does not.
	b.ReportMetric(float64(lines)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "lines/cpu-s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAuthLog is what `xdpban regex LOG sshd` does (reading, dates,
// matching, per-address counts) on loggen's auth.log, with xdpban's
// shipped sshd filter. Target: >= 1,000,000 lines/s on one core.
func BenchmarkAuthLog(b *testing.B) {
	f, err := filter.Load(nil, "sshd", nil)
	if err != nil {
		b.Fatal(err)
	}
	benchReplay(b, f)
}

// BenchmarkAuthLogParallel is BenchmarkAuthLog matched on GOMAXPROCS
// goroutines, as `xdpban regex` does for a single-line filter.
func BenchmarkAuthLogParallel(b *testing.B) {
	f, err := filter.Load(nil, "sshd", nil)
	if err != nil {
		b.Fatal(err)
	}
	benchReplayOpt(b, f, ReplayOptions{NewScanner: f.NewScanner, Workers: runtime.GOMAXPROCS(0)})
}

// BenchmarkAuthLogFail2banFilter is the same with fail2ban's own sshd.conf
// (through the translation), the filter fail2ban-regex runs in make bench.
func BenchmarkAuthLogFail2banFilter(b *testing.B) {
	if _, err := os.Stat("/etc/fail2ban/filter.d/sshd.conf"); err != nil {
		b.Skip("fail2ban's filters are not installed")
	}
	f, err := filter.Load([]string{"/etc/fail2ban"}, "sshd", nil)
	if err != nil {
		b.Fatal(err)
	}
	benchReplay(b, f)
}
