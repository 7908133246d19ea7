package config

import (
	"testing"
	"time"
)

// The shown setting parses back to the same limit.
func TestRateLimitStringRoundTrips(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"10/min,burst=20", "10/1m,burst=20"},
		{"5/s", "5/1s,burst=5"},
		{"100/10s,burst=200", "100/10s,burst=200"},
		{"3/1h", "3/1h,burst=3"},
		{"3/1h30m", "3/1h30m,burst=3"},
		{"7/0.5", "7/0.5s,burst=7"},
		{"1/2d", "1/48h,burst=1"},
	} {
		rl, err := parseRateLimit(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		got := rl.String()
		if got != c.want {
			t.Errorf("%q shown as %q, want %q", c.in, got, c.want)
		}
		back, err := parseRateLimit(got)
		if err != nil || back != rl {
			t.Errorf("%q: shown %q parses back to %+v (%v), want %+v", c.in, got, back, err, rl)
		}
	}
	if s := (RateLimit{}).String(); s != "" {
		t.Errorf("no rate limit shown as %q, want empty", s)
	}
	if s := (RateLimit{Rate: 4, Per: time.Minute}).String(); s != "4/1m,burst=4" {
		t.Errorf("burst 0 (defaults to the rate) shown as %q", s)
	}
}
