package actions

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/xdpban/xdpban/internal/config"
)

// The option names documented here are the ones an operator writes in
// jail.local: load a real config and deliver through what it built.
func TestActionsFromJailLocal(t *testing.T) {
	var got map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
	}))
	defer hook.Close()
	srv := newSMTPServer(t, nil)
	dir := t.TempDir()
	jail := "[sshd]\nenabled = true\nlogpath = /dev/null\n" +
		"action = mail[to=\"root@example.org, ops@example.org\", relay=" + srv.addr() + ", on=ban]\n" +
		"         webhook[url=\"" + hook.URL + "/hook\", template='{\"text\": \"{{.Jail}} banned {{.Addr}}\"}', timeout=5s]\n"
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(jail), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, ok := cfg.Jail("sshd")
	if !ok {
		t.Fatal("no sshd jail")
	}
	acts, err := Build(j.Actions)
	if err != nil {
		t.Fatalf("Build(%+v): %v", j.Actions, err)
	}
	r := NewRunner(Options{})
	r.SetJail("sshd", acts)
	r.Start(context.Background())
	r.Notify(sampleEvent())
	r.Close(context.Background())
	if got["text"] != "sshd banned 192.0.2.2" {
		t.Errorf("webhook got %v", got)
	}
	m := srv.messages()
	if len(m) != 1 || len(m[0].To) != 2 || m[0].To[1] != "ops@example.org" {
		t.Errorf("mail %+v, want one message to both recipients", m)
	}
}
