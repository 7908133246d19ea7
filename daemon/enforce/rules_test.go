package enforce

import (
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/loader"
)

func TestRateLimitRulesFromJails(t *testing.T) {
	rl := config.RateLimit{Rate: 10, Per: time.Minute, Burst: 3}
	jails := []config.Jail{
		{Name: "sshd", Enabled: true, Port: "ssh", RateLimit: rl},
		{Name: "web", Enabled: true, Port: "http, https,8000:8002", RateLimit: config.RateLimit{Rate: 100, Per: time.Second}},
		{Name: "off", Enabled: false, Port: "25", RateLimit: rl},
		{Name: "nolimit", Enabled: true, Port: "993"},
	}
	got, err := rateLimitRules(jails)
	if err != nil {
		t.Fatal(err)
	}
	want := []loader.RateLimitRule{
		{Port: 22, Jail: "sshd", Rate: 10, Per: time.Minute, Burst: 3},
		{Port: 80, Jail: "web", Rate: 100, Per: time.Second},
		{Port: 443, Jail: "web", Rate: 100, Per: time.Second},
		{Port: 8000, Jail: "web", Rate: 100, Per: time.Second},
		{Port: 8001, Jail: "web", Rate: 100, Per: time.Second},
		{Port: 8002, Jail: "web", Rate: 100, Per: time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("rules %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, tc := range []struct {
		j    config.Jail
		want string
	}{
		{config.Jail{Name: "a", Enabled: true, RateLimit: rl, Source: "jail.local:3"}, `jail "a" (jail.local:3): ratelimit needs the jail's port`},
		{config.Jail{Name: "b", Enabled: true, Port: "nosuchservice", RateLimit: rl}, "nosuchservice"},
	} {
		if _, err := rateLimitRules([]config.Jail{tc.j}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("jail %+v: %v, want error with %q", tc.j, err, tc.want)
		}
	}
}
