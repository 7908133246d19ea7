package actions

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

type mailAction struct {
	policy
	from     string
	to       []string
	relay    string // host:port
	host     string
	starttls bool
	tls      *tls.Config
	user     string
	password string
	helo     string
	lines    int
}

func (*mailAction) Kind() string { return "mail" }

func newMail(o *opts) (*mailAction, error) {
	p, err := o.policy(2)
	if err != nil {
		return nil, err
	}
	m := &mailAction{policy: p}
	host, _ := os.Hostname()
	host = cmp.Or(host, "localhost")
	to, ok := o.get("to")
	if !ok {
		return nil, fmt.Errorf("%w: to is missing: give the recipient, e.g. mail[to=root@example.org]", ErrBadOption)
	}
	for _, r := range strings.FieldsFunc(to, func(r rune) bool { return r == ' ' || r == ';' || r == ',' }) {
		a, err := mail.ParseAddress(r)
		if err != nil {
			return nil, fmt.Errorf("%w: to %q: want mail addresses such as root@example.org separated by spaces", ErrBadOption, r)
		}
		m.to = append(m.to, a.Address)
	}
	from := o.str("from", "xdpban@"+host)
	a, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("%w: from %q: want one mail address such as xdpban@example.org", ErrBadOption, from)
	}
	m.from = a.Address
	m.relay = o.str("relay", "localhost:25")
	h, port, err := net.SplitHostPort(m.relay)
	if n, perr := strconv.Atoi(port); err != nil || h == "" || perr != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("%w: relay %q: want host:port, e.g. localhost:25 or [2001:db8::25]:587", ErrBadOption, m.relay)
	}
	m.host = h
	if m.starttls, err = o.bool("starttls", false); err != nil {
		return nil, err
	}
	m.tls = &tls.Config{ServerName: h, MinVersion: tls.VersionTLS12}
	if f, ok := o.get("cafile"); ok {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w: cafile: %w", ErrBadOption, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: cafile %q: no PEM certificate in it", ErrBadOption, f)
		}
		m.tls.RootCAs = pool
	}
	m.user = o.str("user", "")
	m.password = o.str("password", "")
	if m.user != "" && !m.starttls && !isLoopback(h) {
		return nil, fmt.Errorf("%w: user is set but starttls is off: set starttls=yes (credentials are never sent in clear to %s)", ErrBadOption, h)
	}
	m.helo = o.str("helo", host)
	if strings.ContainsAny(m.helo, " \r\n") {
		return nil, fmt.Errorf("%w: helo %q: want a host name", ErrBadOption, m.helo)
	}
	if m.lines, err = o.int("lines", 20, 0, MaxLines); err != nil {
		return nil, err
	}
	return m, nil
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// Run sends one message. The whole SMTP dialogue is bounded by ctx: the
// connection is closed when it ends, which unblocks any read.
func (m *mailAction) Run(ctx context.Context, ev Event) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.relay)
	if err != nil {
		return fmt.Errorf("mail: connect to relay %s: %w", m.relay, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		return m.fail("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(m.helo); err != nil {
		return m.fail("EHLO", err)
	}
	if m.starttls {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("mail: relay %s does not offer STARTTLS and starttls=yes: %w", m.relay, ErrPermanent)
		}
		if err := c.StartTLS(m.tls); err != nil {
			return m.fail("STARTTLS", err)
		}
	}
	if m.user != "" {
		if err := c.Auth(smtp.PlainAuth("", m.user, m.password, m.host)); err != nil {
			return m.fail("AUTH", err)
		}
	}
	if err := c.Mail(m.from); err != nil {
		return m.fail("MAIL FROM", err)
	}
	for _, r := range m.to {
		if err := c.Rcpt(r); err != nil {
			return m.fail("RCPT TO "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return m.fail("DATA", err)
	}
	if _, err := w.Write(m.message(ev)); err != nil {
		return m.fail("DATA", err)
	}
	if err := w.Close(); err != nil {
		return m.fail("end of DATA", err)
	}
	if err := c.Quit(); err != nil {
		// The message was accepted at end of DATA; a lost QUIT reply
		// must not send it twice.
		return nil
	}
	return nil
}

// fail wraps an SMTP error; 5xx replies are permanent.
func (m *mailAction) fail(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return fmt.Errorf("mail: relay %s refused %s: %w (%w)", m.relay, step, err, ErrPermanent)
	}
	return fmt.Errorf("mail: relay %s at %s: %w", m.relay, step, err)
}

// message builds the RFC 5322 message. The body is quoted-printable so it
// is 7-bit clean whatever the relay supports; header values are cleaned
// of control characters by Event.sanitize and Q-encoded when not ASCII.
func (m *mailAction) message(ev Event) []byte {
	var subj string
	if ev.Kind == Unban {
		subj = fmt.Sprintf("[xdpban] %s: unbanned %s", ev.Jail, ev.AddrString())
	} else {
		subj = fmt.Sprintf("[xdpban] %s: banned %s", ev.Jail, ev.AddrString())
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", m.from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(m.to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subj))
	fmt.Fprintf(&b, "Date: %s\r\n", ev.Time.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%s.%s@%s>\r\n", time.Now().UnixNano(), ev.Kind, strings.NewReplacer(":", "-", "/", "-").Replace(ev.AddrString()), m.helo)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	var body strings.Builder
	if ev.Kind == Unban {
		fmt.Fprintf(&body, "xdpban unbanned %s (jail %s).\n", ev.AddrString(), ev.Jail)
	} else {
		fmt.Fprintf(&body, "xdpban banned %s in jail %s after %d failures", ev.AddrString(), ev.Jail, ev.Failures)
		if ev.BanTime < 0 {
			body.WriteString(", permanently.\n")
		} else {
			fmt.Fprintf(&body, ", for %s.\n", ev.BanTime)
		}
	}
	if ev.Prefix.IsValid() {
		fmt.Fprintf(&body, "Banned prefix: %s\n", ev.Prefix)
	}
	fmt.Fprintf(&body, "Time: %s\n", ev.Time.UTC().Format(time.RFC3339))
	lines := ev.Lines
	if len(lines) > m.lines {
		lines = lines[len(lines)-m.lines:]
	}
	if len(lines) > 0 {
		body.WriteString("\nMatched log lines:\n")
		for _, l := range lines {
			body.WriteString("  " + l + "\n")
		}
	}
	qp.Write([]byte(strings.ReplaceAll(body.String(), "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}
