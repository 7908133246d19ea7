package actions

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"
)

// smtpMsg is one message a test server accepted.
type smtpMsg struct {
	From string
	To   []string
	Data string
	TLS  bool
	Auth string // decoded AUTH PLAIN payload
}

// smtpServer is a small SMTP server on loopback speaking the real
// dialogue (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA with
// dot-unstuffing, RSET, QUIT), enough to check what a client sends.
type smtpServer struct {
	ln        net.Listener
	tls       *tls.Config // nil: no STARTTLS offered
	rejectTo  string      // RCPT of this address gets 550
	mu        sync.Mutex
	msgs      []smtpMsg
	wg        sync.WaitGroup
	connCount int
}

func newSMTPServer(t *testing.T, tlsCfg *tls.Config) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, tls: tlsCfg}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.connCount++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) messages() []smtpMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMsg(nil), s.msgs...)
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(l string) { w.WriteString(l + "\r\n"); w.Flush() }
	var cur smtpMsg
	say("220 test.example ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			w.WriteString("250-test.example\r\n")
			if s.tls != nil && !cur.TLS {
				w.WriteString("250-STARTTLS\r\n")
			}
			say("250 AUTH PLAIN")
		case "HELO":
			say("250 test.example")
		case "STARTTLS":
			if s.tls == nil {
				say("502 no")
				continue
			}
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
			r, w = bufio.NewReader(tc), bufio.NewWriter(tc)
			cur = smtpMsg{TLS: true}
		case "AUTH":
			mech, payload, _ := strings.Cut(arg, " ")
			if mech != "PLAIN" {
				say("504 mechanism")
				continue
			}
			b, err := base64.StdEncoding.DecodeString(payload)
			if err != nil {
				say("501 bad base64")
				continue
			}
			cur.Auth = string(b)
			say("235 ok")
		case "MAIL":
			cur.From = strings.Trim(strings.TrimPrefix(arg, "FROM:"), "<>")
			say("250 ok")
		case "RCPT":
			to := strings.Trim(arg[3:], "<>")
			if to == s.rejectTo {
				say("550 no such user")
				continue
			}
			cur.To = append(cur.To, to)
			say("250 ok")
		case "DATA":
			say("354 go")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.Data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			cur = smtpMsg{TLS: cur.TLS}
			say("250 queued")
		case "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("500 unknown")
		}
	}
}
