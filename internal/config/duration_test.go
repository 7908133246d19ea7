package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	ok := []struct {
		in   string
		want time.Duration
	}{
		{"600", 600 * time.Second},
		{"-1", -time.Second},
		{"1.5", 1500 * time.Millisecond},
		{"10m", 10 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1h 30m", 90 * time.Minute},
		{"1h+30m", 90 * time.Minute},
		{"0d 1h 30m", 90 * time.Minute},
		{"1d", 24 * time.Hour},
		{"1w", 7 * 24 * time.Hour},
		{"2 weeks", 14 * 24 * time.Hour},
		{"1hour+30min", 90 * time.Minute},
		{"10M", 10 * time.Minute},
		{"6mo", time.Duration(6 * 365.25 * 86400 / 12 * float64(time.Second))},
		{"1y", time.Duration(365.25 * 86400 * float64(time.Second))},
		{"1year-6mo", 15778800 * time.Second},
		{"48h", 48 * time.Hour},
		{" 5m ", 5 * time.Minute},
		{"30s", 30 * time.Second},
	}
	for _, c := range ok {
		got, err := ParseDuration(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"", "empty duration"},
		{"abc", "expected a number"},
		{"10x", `unknown unit "x"`},
		{"1..2", "not a number"},
		{"10m-", "expected a number"},
		{"1h*2", "expected a number"},
		{"999999y", "longer than 200 years"},
	}
	for _, c := range bad {
		_, err := ParseDuration(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseDuration(%q) error %v, want one mentioning %q", c.in, err, c.want)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"600", "1h30m", "-1", "1year-6mo", "2 weeks"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && (d > maxDuration || d < -maxDuration) {
			t.Fatalf("ParseDuration(%q) = %v beyond the bound", s, d)
		}
	})
}
