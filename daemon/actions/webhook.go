package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"text/template"
	"time"
)

type webhookAction struct {
	policy
	url         string
	tmpl        *template.Template // nil: the default Document
	contentType string
	header      [2]string // name, value; name empty when none
	client      *http.Client
}

func (*webhookAction) Kind() string { return "webhook" }

// tmplData is what a webhook template sees. String fields are already
// JSON-escaped (without the quotes) so a template written as JSON stays
// JSON whatever an attacker put in a log line.
type tmplData struct {
	Event, Jail, Addr, Prefix, Time, Lines string
	Failures                               int
	BanTime                                int64
	// Raw is the unescaped document, for {{json .Raw.Lines}}.
	Raw Document
}

var tmplFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

func newWebhook(o *opts) (*webhookAction, error) {
	p, err := o.policy(2)
	if err != nil {
		return nil, err
	}
	w := &webhookAction{policy: p}
	raw, ok := o.get("url")
	if !ok {
		return nil, fmt.Errorf("%w: url is missing: give the endpoint, e.g. webhook[url=https://hooks.example.org/xdpban]", ErrBadOption)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: url %q: want an http:// or https:// URL with a host", ErrBadOption, raw)
	}
	w.url = u.String()
	w.contentType = o.str("content_type", "application/json")
	if strings.ContainsAny(w.contentType, "\r\n") {
		return nil, fmt.Errorf("%w: content_type %q: want a media type such as application/json", ErrBadOption, w.contentType)
	}
	if h, ok := o.get("header"); ok {
		name, val, found := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !found || name == "" || strings.ContainsAny(h, "\r\n") || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("%w: header %q: want \"Name: value\", e.g. \"Authorization: Bearer TOKEN\"", ErrBadOption, h)
		}
		w.header = [2]string{name, strings.TrimSpace(val)}
	}
	if t, ok := o.get("template"); ok {
		w.tmpl, err = template.New("webhook").Funcs(tmplFuncs).Option("missingkey=error").Parse(t)
		if err != nil {
			return nil, fmt.Errorf("%w: template: %w", ErrBadOption, err)
		}
		// Catch a template that cannot execute or is not JSON now, not at
		// the first ban.
		sample := Event{Kind: Ban, Jail: `sample "jail"`, Addr: netip.MustParseAddr("192.0.2.1"),
			Failures: 3, BanTime: time.Hour, Time: time.Unix(0, 0),
			Lines: []string{`a "quoted" line with \ and {braces}`, "second\tline"}}.sanitize()
		body, err := w.body(sample)
		if err != nil {
			return nil, fmt.Errorf("%w: template: %w", ErrBadOption, err)
		}
		if isJSON(w.contentType) && !json.Valid(body) {
			return nil, fmt.Errorf("%w: template does not yield valid JSON (got %.80q): fix the template or set content_type", ErrBadOption, body)
		}
	}
	// Redirects are not followed: a POST must not turn into a GET of
	// somewhere else. Proxies from the environment are honoured.
	w.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return w, nil
}

func isJSON(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "application/json") || strings.Contains(ct, "+json")
}

func (w *webhookAction) body(ev Event) ([]byte, error) {
	doc := ev.Document()
	if w.tmpl == nil {
		return json.Marshal(doc)
	}
	d := tmplData{Event: jsonEscape(doc.Event), Jail: jsonEscape(doc.Jail), Addr: jsonEscape(doc.Addr),
		Prefix: jsonEscape(doc.Prefix), Time: jsonEscape(doc.Time),
		Lines: jsonEscape(strings.Join(doc.Lines, "\n")), Failures: doc.Failures, BanTime: doc.BanTime, Raw: doc}
	var b bytes.Buffer
	if err := w.tmpl.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Run posts one event.
func (w *webhookAction) Run(ctx context.Context, ev Event) error {
	body, err := w.body(ev)
	if err != nil {
		return fmt.Errorf("webhook: template: %w (%w)", err, ErrPermanent)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w (%w)", err, ErrPermanent)
	}
	req.Header.Set("Content-Type", w.contentType)
	req.Header.Set("User-Agent", "xdpban")
	if w.header[0] != "" {
		req.Header.Set(w.header[0], w.header[1])
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the secret-bearing URL
		}
		return fmt.Errorf("webhook: post to %s: %w", redact(w.url), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("webhook: %s answered %s", redact(w.url), resp.Status)
	default:
		return fmt.Errorf("webhook: %s answered %s: %w", redact(w.url), resp.Status, ErrPermanent)
	}
}

// redact drops a URL's query and credentials from logs: Slack-style hook
// URLs carry their secret in the path, so keep only scheme and host.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "webhook"
	}
	return u.Scheme + "://" + u.Host + "/…"
}
