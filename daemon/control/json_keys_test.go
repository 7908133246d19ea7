package control

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

// keysOf is the sorted top-level keys of v marshalled as JSON.
func keysOf(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestJSONKeysAreTheDocumentedOnes pins the --json shapes README.md
// documents: scripts parse them, so a renamed field is a broken promise.
func TestJSONKeysAreTheDocumentedOnes(t *testing.T) {
	exp := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	timed := EntryOf(bans.Ban{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Jail: "sshd", Expires: exp, Packets: 3, Bytes: 180})
	perm := EntryOf(bans.Ban{Prefix: netip.MustParsePrefix("2001:db8::/64"), Jail: "manual"})
	for _, c := range []struct {
		what string
		v    any
		want string
	}{
		{"list entry", timed, "addr bytes expires jail packets scope"},
		{"list entry from the fleet", EntryOf(bans.Ban{Prefix: netip.MustParsePrefix("192.0.2.8/32"), Jail: "sshd", Origin: "bastion-b"}),
			"addr bytes expires jail origin packets scope"},
		{"status fleet", FleetStatus{}, "bucket connected in_step node outbox published received servers values"},
		{"status", Status{Status: bans.Status{Backend: "xdp", Reason: "r",
			Interfaces: []bans.IfaceStatus{{Name: "eth0", Mode: "native"}}, Tables: []bans.TableStatus{{Name: "ban_v4"}},
			Counters: map[string]uint64{"dropped": 1}}, Mode: "daemon", Uptime: "1s"},
			"backend bans counters interfaces jails mode reason tables uptime"},
		{"status interface", bans.IfaceStatus{}, "mode name"},
		{"status table", bans.TableStatus{}, "capacity entries name"},
		{"status jail", JailSummary{}, "banned enabled name"},
		{"status jail with a ratelimit", JailSummary{RateLimit: "5/1s,burst=5", RateLimited: new(uint64)},
			"banned enabled name ratelimit ratelimited"},
		{"jail status", JailStatus{Journal: []string{"_COMM=sshd"}},
			"banned currently_banned currently_failed files journal name total_banned total_failed"},
		{"jail status with a ratelimit", JailStatus{RateLimit: "5/1s,burst=5", RateLimited: new(uint64)},
			"banned currently_banned currently_failed files name ratelimit ratelimited total_banned total_failed"},
		{"ban", BanResponse{}, "banned"},
		{"unban", UnbanResponse{}, "removed"},
		{"reload", ReloadResponse{}, "warnings"},
	} {
		if got := strings.Join(keysOf(t, c.v), " "); got != c.want {
			t.Errorf("%s keys: %q, want %q (update README's JSON section with any change)", c.what, got, c.want)
		}
	}
	// ratelimited is a plain number, 0 included, whenever a limit is set.
	if b, _ := json.Marshal(JailSummary{Name: "s", RateLimit: "5/1s,burst=5", RateLimited: new(uint64)}); string(b) !=
		`{"name":"s","enabled":false,"banned":0,"ratelimit":"5/1s,burst=5","ratelimited":0}` {
		t.Errorf("jail summary with a ratelimit and no drops: %s", b)
	}
	// expires: RFC 3339 in UTC, null when permanent.
	b, _ := json.Marshal([]Entry{timed, perm})
	want := `[{"addr":"192.0.2.7/32","jail":"sshd","expires":"2026-03-01T11:00:00Z","scope":"all","packets":3,"bytes":180},` +
		`{"addr":"2001:db8::/64","jail":"manual","expires":null,"scope":"all","packets":0,"bytes":0}]`
	if string(b) != want {
		t.Errorf("list JSON:\n got %s\nwant %s", b, want)
	}
}
