package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/actions"
	"github.com/xdpban/xdpban/internal/nspair/nspairtest"
)

// A jail's webhook action fires on ban and on unban through a running
// daemon, and the notification counters reach the metrics endpoint.
func TestActionsThroughDaemon(t *testing.T) {
	w := newWorld(t)
	w.p.Host.Run(t, "ip", "link", "set", "lo", "up")
	// The hook listens in the host namespace, where the daemon runs.
	var ln net.Listener
	if err := w.p.Host.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []actions.Document
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var d actions.Document
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			rw.WriteHeader(400)
			return
		}
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	writeTestConfig(t, w.config, "metrics_listen = 127.0.0.1:9798\n")
	jail := fmt.Sprintf("[sshd]\nenabled = false\naction = webhook[url=\"http://%s/hook\"]\n", ln.Addr())
	if err := os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(jail), 0o644); err != nil {
		t.Fatal(err)
	}
	w.start(t)
	a := nspairtest.AttackerV4
	w.mustCLI(t, "ban", a.String(), "--jail", "sshd", "--for", "1h")
	w.mustCLI(t, "unban", a.String())

	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Event != "ban" || got[1].Event != "unban" {
		t.Fatalf("hook received %+v, want a ban then an unban", got)
	}
	for _, d := range got {
		if d.Jail != "sshd" || d.Addr != "192.0.2.2" || d.Prefix != "192.0.2.2/32" {
			t.Errorf("document %+v: want jail sshd addr 192.0.2.2", d)
		}
	}
	if got[0].BanTime < 3590 || got[0].BanTime > 3600 {
		t.Errorf("ban document bantime %d, want about 3600", got[0].BanTime)
	}

	body := scrapeMetrics(t, w)
	if want := `xdpban_notifications_total{action="webhook",result="sent"} 2`; !strings.Contains(body, want) {
		t.Errorf("metrics lack %q", want)
	}
}

// From a log line to a command: an sshd line whose user name is a shell
// payload bans its source, and the jail's command action gets the line
// verbatim without any shell running the payload.
func TestCommandActionFromLogLine(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	pwned, out := filepath.Join(dir, "pwned"), filepath.Join(dir, "out")
	script := filepath.Join(dir, "on-ban")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s|%s|%s\\n' \"$1\" \"$XDPBAN_ADDR\" \"$XDPBAN_LINES\" >> "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	jail := fmt.Sprintf("[sshd]\nenabled = true\nlogpath = %s\nmaxretry = 2\nfindtime = 10m\nbantime = 1h\n"+
		"action = command[path=%s, args=\"<event>\", on=ban]\n", logf, script)
	if err := os.WriteFile(filepath.Join(w.config, "jail.local"), []byte(jail), 0o644); err != nil {
		t.Fatal(err)
	}
	w.start(t)
	now := time.Now().Format(time.Stamp)
	payload := "$(touch " + pwned + ");`touch " + pwned + "`|x"
	line := now + " host sshd[4242]: Invalid user " + payload + " from 192.0.2.2 port 40000"
	f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, line)
	fmt.Fprintln(f, line)
	f.Close()

	var got string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(out)
		if got = string(b); strings.Count(got, "ban|") >= 1 && strings.HasSuffix(got, "\n") {
			break
		}
	}
	want := "ban|192.0.2.2|" + line + "\n" + line + "\n"
	if got != want {
		t.Fatalf("command recorded\n%q\nwant\n%q", got, want)
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Fatalf("%s exists: a shell ran the log line", pwned)
	}
	if _, ok := w.list(t)["192.0.2.2/32"]; !ok {
		t.Fatal("source not banned")
	}
}
