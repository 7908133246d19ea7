package actions

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/internal/config"
)

// FuzzWebhookBody: whatever a log line or jail name holds, a JSON
// template stays valid JSON and carries the sanitized value unchanged.
func FuzzWebhookBody(f *testing.F) {
	f.Add("sshd", `user "x", "evil": true`)
	f.Add("a\\b", "\x00\x1f\u2028\xff")
	a := &webhookAction{}
	tmpl := build1(&testing.T{}, "webhook", map[string]string{"url": "http://192.0.2.1/",
		"template": `{"j": "{{.Jail}}", "l": "{{.Lines}}", "raw": {{json .Raw.Lines}}}`}).(*webhookAction)
	f.Fuzz(func(t *testing.T, jail, line string) {
		ev := sampleEvent()
		ev.Jail, ev.Lines = jail, []string{line, line}
		ev = ev.sanitize()
		for _, w := range []*webhookAction{a, tmpl} {
			b, err := w.body(ev)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Fatalf("invalid JSON %q", b)
			}
		}
		b, _ := tmpl.body(ev)
		var doc struct {
			J, L string
			Raw  []string
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.J != ev.Jail || doc.L != strings.Join(ev.Lines, "\n") || len(doc.Raw) != 2 || doc.Raw[0] != ev.Lines[0] {
			t.Fatalf("round trip: got %+v from %q/%q", doc, ev.Jail, ev.Lines)
		}
		if strings.ContainsAny(ev.Jail+ev.Lines[0], "\r\n\x00") {
			t.Fatalf("sanitize left a control character in %q", ev.Lines[0])
		}
	})
}

// FuzzBuild: any option text either builds or fails with one line
// wrapping ErrBadOption; it never panics.
func FuzzBuild(f *testing.F) {
	f.Add("mail", "to", "root@example.org", "relay", "localhost:25")
	f.Add("webhook", "url", "https://example.org/x", "template", `{"t": "{{.Addr}}"}`)
	f.Add("command", "path", "/bin/true", "args", "<addr> <jail>")
	f.Add("mail", "to", "a@b", "timeout", "99999999999999999999")
	f.Fuzz(func(t *testing.T, kind, k1, v1, k2, v2 string) {
		_, err := Build([]config.Action{{Kind: kind, Options: map[string]string{k1: v1, k2: v2}}})
		if err == nil {
			return
		}
		if strings.ContainsAny(err.Error(), "\n") && !strings.ContainsAny(v1+v2+k1+k2+kind, "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}
