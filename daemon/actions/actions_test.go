package actions

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpban/xdpban/internal/config"
)

func build1(t *testing.T, kind string, o map[string]string) Action {
	t.Helper()
	as, err := Build([]config.Action{{Kind: kind, Options: o}})
	if err != nil {
		t.Fatalf("Build %s %v: %v", kind, o, err)
	}
	return as[0]
}

func sampleEvent() Event {
	return Event{Kind: Ban, Jail: "sshd", Addr: netip.MustParseAddr("192.0.2.2"), Failures: 5,
		BanTime: 10 * time.Minute, Time: time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC),
		Lines: []string{
			"Nov 24 17:00:00 host sshd[1]: Failed password for root from 192.0.2.2 port 40000 ssh2",
			"Nov 24 17:00:01 host sshd[1]: Invalid user $(touch /tmp/pwned) from 192.0.2.2",
		}}.sanitize()
}

func TestBuildRejectsBadOptions(t *testing.T) {
	exe := writeScript(t, "#!/bin/sh\nexit 0\n")
	noexec := filepath.Join(t.TempDir(), "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	cases := []struct {
		kind string
		o    map[string]string
		want string // must appear in the error
	}{
		{"sms", nil, `unknown action "sms"`},
		{"mail", map[string]string{}, "to is missing"},
		{"mail", map[string]string{"to": "not an address"}, `to "not"`},
		{"mail", map[string]string{"to": "a@example.org", "relay": "example.org"}, `relay "example.org"`},
		{"mail", map[string]string{"to": "a@example.org", "relay": "example.org:99999"}, `relay "example.org:99999"`},
		{"mail", map[string]string{"to": "a@example.org", "starttls": "maybe"}, `starttls "maybe"`},
		{"mail", map[string]string{"to": "a@example.org", "relay": "mx.example.org:25", "user": "u"}, "starttls is off"},
		{"mail", map[string]string{"to": "a@example.org", "rely": "x"}, `unknown option "rely"`},
		{"mail", map[string]string{"to": "a@example.org", "cafile": "/nonexistent/ca.pem"}, "cafile"},
		{"mail", map[string]string{"to": "a@example.org", "timeout": "soon"}, `timeout "soon"`},
		{"mail", map[string]string{"to": "a@example.org", "timeout": "-1s"}, `timeout "-1s"`},
		{"mail", map[string]string{"to": "a@example.org", "retries": "100"}, `retries "100"`},
		{"mail", map[string]string{"to": "a@example.org", "on": "always"}, `on "always"`},
		{"webhook", map[string]string{}, "url is missing"},
		{"webhook", map[string]string{"url": "ftp://example.org/x"}, `url "ftp://example.org/x"`},
		{"webhook", map[string]string{"url": "https://example.org", "template": "{{.Nope}}"}, "template"},
		{"webhook", map[string]string{"url": "https://example.org", "template": "{{.Jail"}, "template"},
		{"webhook", map[string]string{"url": "https://example.org", "template": `{"text": {{.Jail}}}`}, "valid JSON"},
		{"webhook", map[string]string{"url": "https://example.org", "header": "NoColon"}, `header "NoColon"`},
		{"command", map[string]string{}, "path is missing"},
		{"command", map[string]string{"path": "on-ban.sh"}, "not absolute"},
		{"command", map[string]string{"path": "/nonexistent/on-ban"}, "no such file"},
		{"command", map[string]string{"path": t.TempDir()}, "not a regular file"},
		{"command", map[string]string{"path": noexec}, "not executable"},
		{"command", map[string]string{"path": exe, "args": "<ip>"}, "unknown tag"},
	}
	for _, c := range cases {
		_, err := Build([]config.Action{{Kind: "mail", Options: map[string]string{"to": "ok@example.org"}}, {Kind: c.kind, Options: c.o}})
		if err == nil {
			t.Errorf("%s %v: no error, want one containing %q", c.kind, c.o, c.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "action 2 ("+c.kind+")") || strings.Contains(msg, "\n") {
			t.Errorf("%s %v: error %q: want one line starting \"action 2 (%s)\" containing %q", c.kind, c.o, msg, c.kind, c.want)
		}
		if !errors.Is(err, ErrBadOption) {
			t.Errorf("%s %v: error %q does not wrap ErrBadOption", c.kind, c.o, msg)
		}
	}
}

func TestBuildAcceptsDocumentedOptions(t *testing.T) {
	exe := writeScript(t, "#!/bin/sh\nexit 0\n")
	as, err := Build([]config.Action{
		{Kind: "mail", Options: map[string]string{"to": "a@example.org b@example.org", "from": "x@example.org",
			"relay": "[::1]:25", "starttls": "no", "user": "u", "password": "p", "helo": "h.example.org",
			"lines": "5", "on": "ban", "timeout": "30", "retries": "1"}},
		{Kind: "Webhook", Options: map[string]string{"url": "https://hooks.example.org/T/B", "template": `{"text": "{{.Jail}} banned {{.Addr}}", "lines": {{json .Raw.Lines}}}`,
			"header": "Authorization: Bearer x", "on": "unban"}},
		{Kind: "command", Options: map[string]string{"path": exe, "args": "--addr=<addr> <jail> <bantime>"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !as[0].Runs(Ban) || as[0].Runs(Unban) || as[1].Runs(Ban) || !as[1].Runs(Unban) || !as[2].Runs(Ban) || !as[2].Runs(Unban) {
		t.Errorf("on= not honoured")
	}
	if p := as[0].limits(); p.timeout != 30*time.Second || p.retries != 1 {
		t.Errorf("mail limits %+v, want timeout 30s retries 1", p)
	}
	if p := as[2].limits(); p.retries != 0 {
		t.Errorf("command default retries %d, want 0", p.retries)
	}
}

// decodeMail splits a message into headers and decoded body.
func decodeMail(t *testing.T, data string) (map[string]string, string) {
	t.Helper()
	head, body, ok := strings.Cut(data, "\r\n\r\n")
	if !ok {
		t.Fatalf("no header/body separator in %q", data)
	}
	h := map[string]string{}
	for _, l := range strings.Split(head, "\r\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("bad header line %q", l)
		}
		h[k] = v
	}
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	return h, string(b)
}

func TestMailDeliversToSMTPServer(t *testing.T) {
	srv := newSMTPServer(t, nil)
	a := build1(t, "mail", map[string]string{"to": "root@example.org admin@example.org", "from": "xdpban@example.org", "relay": srv.addr()})
	ev := sampleEvent()
	ev.Lines = append(ev.Lines, ".leading dot", "héllo wörld", "inject\r\nBcc: victim@example.org")
	ev = ev.sanitize()
	if err := a.Run(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "xdpban@example.org" || strings.Join(m.To, ",") != "root@example.org,admin@example.org" {
		t.Errorf("envelope from %q to %q", m.From, m.To)
	}
	h, body := decodeMail(t, m.Data)
	subj, _ := new(mime.WordDecoder).DecodeHeader(h["Subject"])
	if subj != "[xdpban] sshd: banned 192.0.2.2" {
		t.Errorf("subject %q", subj)
	}
	if _, ok := h["Bcc"]; ok {
		t.Errorf("a log line injected a Bcc header: %v", h)
	}
	for _, want := range []string{"banned 192.0.2.2 in jail sshd after 5 failures, for 10m0s.",
		"Banned prefix: 192.0.2.2/32", ev.Lines[0], "Invalid user $(touch /tmp/pwned) from 192.0.2.2",
		"  .leading dot", "héllo wörld", "inject\uFFFD\uFFFDBcc: victim@example.org"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	ev.Kind = Unban
	if err := a.Run(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	h, body = decodeMail(t, srv.messages()[1].Data)
	if subj, _ := new(mime.WordDecoder).DecodeHeader(h["Subject"]); subj != "[xdpban] sshd: unbanned 192.0.2.2" || !strings.Contains(body, "unbanned 192.0.2.2 (jail sshd)") {
		t.Errorf("unban mail: subject %q body %q", subj, body)
	}
}

func TestMailRejectedRecipientIsPermanent(t *testing.T) {
	srv := newSMTPServer(t, nil)
	srv.rejectTo = "nobody@example.org"
	a := build1(t, "mail", map[string]string{"to": "nobody@example.org", "relay": srv.addr()})
	err := a.Run(context.Background(), sampleEvent())
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "550") {
		t.Fatalf("err %v, want a permanent 550 error", err)
	}
	if len(srv.messages()) != 0 {
		t.Fatal("message delivered despite rejected recipient")
	}
}

// testCA writes a self-signed certificate for 127.0.0.1 and returns the
// server config and the PEM path a client trusts.
func testCA(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, path
}

func TestMailStartTLSAndAuth(t *testing.T) {
	srvTLS, ca := testCA(t)
	srv := newSMTPServer(t, srvTLS)
	a := build1(t, "mail", map[string]string{"to": "root@example.org", "relay": srv.addr(),
		"starttls": "yes", "cafile": ca, "user": "alice", "password": "s3cret"})
	if err := a.Run(context.Background(), sampleEvent()); err != nil {
		t.Fatal(err)
	}
	m := srv.messages()
	if len(m) != 1 || !m[0].TLS || m[0].Auth != "\x00alice\x00s3cret" {
		t.Fatalf("messages %+v: want one, over TLS, with AUTH PLAIN alice", m)
	}

	// A relay without STARTTLS must not get the message in clear.
	plain := newSMTPServer(t, nil)
	a = build1(t, "mail", map[string]string{"to": "root@example.org", "relay": plain.addr(), "starttls": "yes"})
	if err := a.Run(context.Background(), sampleEvent()); !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v, want permanent: relay offers no STARTTLS", err)
	}
	if len(plain.messages()) != 0 {
		t.Fatal("sent in clear although starttls=yes")
	}
}

func TestMailDeadRelayTimesOut(t *testing.T) {
	// A relay that accepts the connection and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	a := build1(t, "mail", map[string]string{"to": "root@example.org", "relay": ln.Addr().String()})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, sampleEvent()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("silent relay: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run ignored its context deadline against a silent relay")
	}
}

func TestWebhookDefaultDocument(t *testing.T) {
	var got Document
	var ct, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct, auth = r.Header.Get("Content-Type"), r.Header.Get("Authorization")
		if r.Method != http.MethodPost {
			w.WriteHeader(405)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	a := build1(t, "webhook", map[string]string{"url": srv.URL + "/hook", "header": "Authorization: Bearer tok"})
	ev := sampleEvent()
	ev.Addr = netip.MustParseAddr("2001:db8::2")
	ev.Prefix = netip.Prefix{}
	ev.BanTime = -1
	ev = ev.sanitize()
	if err := a.Run(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	want := Document{Event: "ban", Jail: "sshd", Addr: "2001:db8::2", Prefix: "2001:db8::/64", Failures: 5,
		BanTime: -1, Time: "2026-11-24T17:00:00Z", Lines: ev.Lines}
	if got.Event != want.Event || got.Jail != want.Jail || got.Addr != want.Addr || got.Prefix != want.Prefix ||
		got.Failures != want.Failures || got.BanTime != want.BanTime || got.Time != want.Time ||
		strings.Join(got.Lines, "|") != strings.Join(want.Lines, "|") {
		t.Errorf("document\n got %+v\nwant %+v", got, want)
	}
	if ct != "application/json" || auth != "Bearer tok" {
		t.Errorf("content-type %q authorization %q", ct, auth)
	}
}

func TestWebhookTemplateEscapesValues(t *testing.T) {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	a := build1(t, "webhook", map[string]string{"url": srv.URL,
		"template": `{"text": "{{.Jail}} banned {{.Addr}} after {{.Failures}}: {{.Lines}}"}`})
	ev := sampleEvent()
	ev.Jail = `we"ird\jail`
	ev.Lines = []string{`user "x\"}, "evil": true, {"` + "\x00", "</script>&"}
	ev = ev.sanitize()
	if err := a.Run(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	want := `we"ird\jail banned 192.0.2.2 after 5: user "x\"}, "evil": true, {"` + "\uFFFD\n</script>&"
	if len(doc) != 1 || doc["text"] != want {
		t.Errorf("doc %q\nwant text %q", doc, want)
	}
}

func TestWebhookClientErrorIsPermanent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	defer srv.Close()
	a := build1(t, "webhook", map[string]string{"url": srv.URL + "/secret-token-path"})
	err := a.Run(context.Background(), sampleEvent())
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v, want permanent", err)
	}
	if strings.Contains(err.Error(), "secret-token-path") {
		t.Errorf("error %q leaks the hook URL path", err)
	}
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "action.sh")
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommandPassesValuesVerbatim(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	out := filepath.Join(dir, "out")
	// The script records argv, environment and stdin, one item a line,
	// NUL-separated where values may hold newlines.
	script := writeScript(t, "#!/bin/sh\n"+
		"{ for a in \"$@\"; do printf 'arg=%s\\0' \"$a\"; done\n"+
		"  printf 'addr=%s\\0jail=%s\\0event=%s\\0failures=%s\\0bantime=%s\\0prefix=%s\\0lines=%s\\0' \"$XDPBAN_ADDR\" \"$XDPBAN_JAIL\" \"$XDPBAN_EVENT\" \"$XDPBAN_FAILURES\" \"$XDPBAN_BANTIME\" \"$XDPBAN_PREFIX\" \"$XDPBAN_LINES\"\n"+
		"  printf 'stdin=%s\\0' \"$(cat)\"\n} > "+out+"\n")
	a := build1(t, "command", map[string]string{"path": script, "args": "<event> --jail=<jail> <addr> <failures>"})
	evil := []string{
		"Invalid user $(touch " + pwned + ") from 192.0.2.2",
		"Invalid user `touch " + pwned + "` from 192.0.2.2",
		"Invalid user a;touch " + pwned + " from 192.0.2.2",
		"Invalid user a|touch " + pwned + " from 192.0.2.2",
		"Invalid user a&&touch " + pwned + "&' \" * ? from 192.0.2.2",
	}
	// The classic payload too, checked only if the file is not already
	// there (from something else).
	_, err := os.Stat("/tmp/pwned")
	classic := os.IsNotExist(err)
	evil = append(evil, "Invalid user $(touch /tmp/pwned) from 192.0.2.2")
	ev := sampleEvent()
	ev.Jail = "ssh d;$(touch " + pwned + ")"
	ev.Lines = evil
	ev = ev.sanitize()
	if err := a.Run(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Fatalf("%s exists: log text was interpreted by a shell", pwned)
	}
	if _, err := os.Stat("/tmp/pwned"); classic && !os.IsNotExist(err) {
		t.Fatal("/tmp/pwned exists: log text was interpreted by a shell")
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	lines := strings.Join(evil, "\n")
	want := []string{"arg=ban", "arg=--jail=" + ev.Jail, "arg=192.0.2.2", "arg=5",
		"addr=192.0.2.2", "jail=" + ev.Jail, "event=ban", "failures=5", "bantime=600", "prefix=192.0.2.2/32",
		"lines=" + lines, "stdin=" + lines}
	if strings.Join(got, "\n--\n") != strings.Join(want, "\n--\n") {
		t.Errorf("command saw\n%q\nwant\n%q", got, want)
	}
}

func TestCommandFailureAndTimeout(t *testing.T) {
	a := build1(t, "command", map[string]string{"path": writeScript(t, "#!/bin/sh\necho boom >&2\nexit 3\n")})
	err := a.Run(context.Background(), sampleEvent())
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err %v, want exit status 3 with its stderr", err)
	}

	// A script forking a sleeper: the whole group dies at the deadline.
	pidFile := filepath.Join(t.TempDir(), "pid")
	a = build1(t, "command", map[string]string{"path": writeScript(t, "#!/bin/sh\nsleep 60 &\necho $! > "+pidFile+"\nwait\n")})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = a.Run(ctx, sampleEvent())
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err %v, want a timeout", err)
	}
	pid, _ := os.ReadFile(pidFile)
	if p := strings.TrimSpace(string(pid)); p != "" {
		for range 50 { // the kill is asynchronous; give it up to 5s
			if _, err := os.Stat("/proc/" + p); os.IsNotExist(err) {
				return
			}
			st, _ := os.ReadFile("/proc/" + p + "/stat")
			if strings.Contains(string(st), ") Z ") {
				return // killed, not yet reaped by its (dead) parent's reaper
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("forked sleeper %s survived the timeout", p)
	}
}

func TestRunnerRetriesThenDeliversOnce(t *testing.T) {
	var hits, ok atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			w.WriteHeader(503)
			return
		}
		ok.Add(1)
	}))
	defer srv.Close()
	r := NewRunner(Options{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	r.SetJail("sshd", []Action{build1(t, "webhook", map[string]string{"url": srv.URL})})
	r.Start(context.Background())
	r.Notify(sampleEvent())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()["webhook"]
	if hits.Load() != 3 || ok.Load() != 1 || st.Sent != 1 || st.Retried != 2 || st.Failed != 0 || st.Dropped != 0 {
		t.Fatalf("hits %d delivered %d stats %+v: want 3 attempts, 1 delivery, sent 1 retried 2", hits.Load(), ok.Load(), st)
	}
}

func TestRunnerGivesUpAfterRetries(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	r := NewRunner(Options{Backoff: time.Millisecond})
	r.SetJail("sshd", []Action{build1(t, "webhook", map[string]string{"url": srv.URL, "retries": "1"})})
	r.Start(context.Background())
	r.Notify(sampleEvent())
	r.Close(context.Background())
	if st := r.Stats()["webhook"]; hits.Load() != 2 || st.Failed != 1 || st.Sent != 0 {
		t.Fatalf("hits %d stats %+v: want 2 attempts and 1 failure", hits.Load(), st)
	}
}

func TestRunnerRoutesByJailAndKind(t *testing.T) {
	var bans, unbans atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d Document
		json.NewDecoder(r.Body).Decode(&d)
		if d.Event == "ban" {
			bans.Add(1)
		} else {
			unbans.Add(1)
		}
	}))
	defer srv.Close()
	r := NewRunner(Options{})
	r.SetJail("sshd", []Action{build1(t, "webhook", map[string]string{"url": srv.URL, "on": "ban"})})
	r.Start(context.Background())
	ev := sampleEvent()
	r.Notify(ev) // sshd ban: sent
	ev.Kind = Unban
	r.Notify(ev) // sshd unban: not wanted
	ev.Kind, ev.Jail = Ban, "nginx"
	r.Notify(ev) // no actions for nginx
	r.Close(context.Background())
	if bans.Load() != 1 || unbans.Load() != 0 {
		t.Fatalf("bans %d unbans %d, want 1 and 0", bans.Load(), unbans.Load())
	}
}

// A webhook that never answers and 10k bans: Notify must not wait, memory
// must stay bounded by the queue and the overflow must be counted.
func TestRunnerQueueBoundedUnderHangingWebhook(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
	}))
	defer srv.Close()
	defer close(release)
	const queue, workers, events = 100, 2, 10000
	r := NewRunner(Options{QueueSize: queue, Workers: workers})
	r.SetJail("sshd", []Action{build1(t, "webhook", map[string]string{"url": srv.URL, "timeout": "10m"})})
	r.Start(context.Background())

	big := make([]string, 200) // more than MaxLines, each longer than MaxLineLen
	for i := range big {
		big[i] = strings.Repeat("x", 4000)
	}
	var before, after runtimeMem
	before.read()
	ev := sampleEvent()
	ev.Lines = big
	for i := range events {
		ev.Addr = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		r.Notify(ev)
	}
	after.read()
	// All 10k returned while the hook still hangs: nothing waited on it.
	if n := arrived.Load(); n > workers {
		t.Fatalf("%d requests reached the hook, at most %d workers should", n, workers)
	}
	st := r.Stats()["webhook"]
	if st.Queued > queue || st.Dropped < events-queue-workers || st.Sent != 0 {
		t.Fatalf("stats %+v: want ≤%d queued and ≥%d dropped", st, queue, events-queue-workers)
	}
	if uint64(st.Queued)+st.Dropped+uint64(workers) < events {
		t.Fatalf("stats %+v do not account for %d events", st, events)
	}
	// Unbounded, 10k events × 200 lines × 4 KB would be 8 GB; bounded it
	// is at most (queue+workers) × MaxLines × MaxLineLen ≈ 5 MB.
	if grew := int64(after.heap) - int64(before.heap); grew > 64<<20 {
		t.Fatalf("heap grew %d MB for a %d-event queue", grew>>20, queue)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a hanging hook: %v, want deadline exceeded", err)
	}
	if st := r.Stats()["webhook"]; st.Dropped+st.Failed != events || st.Queued != 0 {
		t.Fatalf("after Close: %+v, want every event dropped or failed", st)
	}
}

func TestRunnerNotifyAfterCloseIsDropped(t *testing.T) {
	r := NewRunner(Options{})
	r.SetJail("sshd", []Action{build1(t, "mail", map[string]string{"to": "a@example.org", "relay": "127.0.0.1:1"})})
	r.Close(context.Background())
	r.Notify(sampleEvent())
	if st := r.Stats()["mail"]; st.Dropped != 1 {
		t.Fatalf("stats %+v, want 1 dropped", st)
	}
}

func TestRunnerCloseCountsLeftovers(t *testing.T) {
	r := NewRunner(Options{Logger: discard})
	r.SetJail("sshd", []Action{nop()})
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	cancel() // the daemon's context ended: workers stop
	time.Sleep(10 * time.Millisecond)
	for range 5 {
		r.Notify(sampleEvent())
	}
	r.Close(context.Background())
	if st := r.Stats()["webhook"]; st.Sent+st.Dropped+st.Failed != 5 || st.Queued != 0 {
		t.Fatalf("stats %+v: 5 events not all accounted for", st)
	}
}
