// Package actions runs a jail's notification actions (mail, webhook,
// command) when an address is banned or unbanned: what fail2ban's
// sendmail-whois or a custom action.d script gave, without ever letting a
// slow or dead endpoint delay enforcement.
//
// A jail's `action = KIND[opt=value, …]` lines arrive as config.Action;
// Build validates them once (one error line per bad option) and returns
// Actions. A Runner owns per-kind bounded queues and workers: Notify never
// blocks, a full queue drops the event and counts it, each attempt has a
// timeout and failures are retried with exponential backoff.
//
// # Options
//
// Common to every kind:
//
//	on       ban | unban | both (default both): which events run the action
//	timeout  per attempt, Go duration or seconds (default 10s, max 10m)
//	retries  extra attempts after a failure (default 2; command: 0, since a
//	         script may not be safe to run twice)
//
// mail (SMTP, plain text, UTF-8):
//
//	to        recipients, required; separated by spaces or ';' (or ','
//	          when the value is quoted)
//	from      envelope and header sender (default xdpban@HOSTNAME)
//	relay     host:port of the SMTP relay (default localhost:25)
//	starttls  yes | no (default no); yes refuses to send unencrypted
//	cafile    PEM bundle to verify the relay's certificate (default: system
//	          roots)
//	user      SMTP AUTH PLAIN user (needs starttls=yes unless the relay is
//	          loopback); password  its password
//	helo      name sent in EHLO (default the host name)
//	lines     how many matched log lines the body carries (default 20)
//
// webhook (HTTP POST):
//
//	url           http:// or https:// URL, required
//	template      Go text/template for the body; every string field is
//	              JSON-escaped (without quotes), so
//	              template = '{"text": "{{.Jail}} banned {{.Addr}}"}'
//	              is valid JSON whatever the log said. Fields: .Event .Jail
//	              .Addr .Prefix .Failures .BanTime (seconds, -1 permanent)
//	              .Time (RFC 3339) .Lines (joined by \n) and the function
//	              json (e.g. {{json .Raw.Lines}} yields a JSON array).
//	              Default body: {"event","jail","addr","prefix","failures",
//	              "bantime","time","lines"}.
//	content_type  default application/json (the template must then yield
//	              valid JSON, checked at load time)
//	header        one extra request header "Name: value" (e.g. an
//	              Authorization bearer token)
//
// A 2xx status is success; 408, 429 and 5xx and network errors are
// retried; other statuses fail at once.
//
// command (an executable, run directly: never through a shell):
//
//	path  absolute path of an executable file, required
//	args  arguments separated by spaces; the tags <event> <jail> <addr>
//	      <prefix> <failures> <bantime> are replaced inside each argument
//	      after splitting, so a value can never become several arguments.
//	      Default: "<event> <jail> <addr>".
//
// The command gets a minimal environment: PATH, XDPBAN_EVENT, XDPBAN_JAIL,
// XDPBAN_ADDR, XDPBAN_PREFIX, XDPBAN_FAILURES, XDPBAN_BANTIME (seconds, -1
// permanent), XDPBAN_TIME (RFC 3339), XDPBAN_LINES (matched lines joined by
// newlines); the matched lines are also written to its standard input. A
// non-zero exit is a failure; output is logged (truncated) on failure.
package actions
