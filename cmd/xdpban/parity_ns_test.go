package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/xdpban/xdpban/daemon/control"
)

// fail2ban-client parity, against a running daemon: ping, list ADDR with
// its exit code, list --jail, and the jail's timings in status JAIL.
func TestCLIParityWithFail2banClient(t *testing.T) {
	w := newWorld(t)
	w.jailLog(t, 3)
	if code, _, _ := w.cli(t, "ping"); code != exitFailure {
		t.Fatalf("ping with no daemon: exit %d, want %d", code, exitFailure)
	}
	w.start(t)
	if out := w.mustCLI(t, "ping"); !strings.HasPrefix(out, "pong from "+w.socket) {
		t.Errorf("ping: %q", out)
	}
	w.mustCLI(t, "ban", "192.0.2.7", "--for", "1h")
	w.mustCLI(t, "ban", "198.51.100.0/24", "--jail", "testjail")

	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"list", "192.0.2.7"}, exitOK, []string{"192.0.2.7/32"}},
		{[]string{"list", "198.51.100.9"}, exitOK, []string{"198.51.100.0/24"}},
		{[]string{"list", "192.0.2.8"}, exitFailure, nil},
		{[]string{"list", "--jail", "testjail"}, exitOK, []string{"198.51.100.0/24"}},
		{[]string{"list", "192.0.2.7", "--jail", "testjail"}, exitFailure, nil},
	} {
		code, out, errs := w.cli(t, c.args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, code, c.code, errs)
		}
		for _, want := range c.want {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %s:\n%s", c.args, want, out)
			}
		}
		if c.code == exitFailure && !strings.Contains(errs, "is not banned") {
			t.Errorf("%v: stderr %q does not say it is not banned", c.args, errs)
		}
	}
	// --json keeps the exit code and prints [] for "not banned".
	code, out, _ := w.cli(t, "list", "192.0.2.8", "--json")
	if code != exitFailure || strings.TrimSpace(out) != "[]" {
		t.Errorf("list 192.0.2.8 --json: exit %d %q", code, out)
	}
	if out := w.mustCLI(t, "list", "--jail", "testjail"); strings.Contains(out, "192.0.2.7") {
		t.Errorf("list --jail testjail shows the manual ban:\n%s", out)
	}

	out = w.mustCLI(t, "status", "testjail")
	for _, want := range []string{"|- Timings", "maxretry:\t3", "findtime:\t1h", "bantime:\t1h"} {
		if !strings.Contains(out, want) {
			t.Errorf("status testjail lacks %q:\n%s", want, out)
		}
	}
	var js control.JailStatus
	if err := json.Unmarshal([]byte(w.mustCLI(t, "status", "testjail", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	if js.Timings == nil || js.Timings.MaxRetry != 3 || js.Timings.FindTime != "1h0m0s" {
		t.Errorf("status --json timings = %+v", js.Timings)
	}
}
