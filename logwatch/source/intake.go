package source

import (
	"strings"
	"unicode/utf8"
)

// Intake is the one way a log line becomes the text a filter sees,
// for every source (the file follower, the journal, `xdpban regex`) and
// inside a filter's Scan itself, so the daemon and `xdpban regex` cannot disagree on
// a line.
//
// It follows fail2ban's FileContainer.decode_line: the line is decoded as
// UTF-8 (logencoding's usual value) and, when that fails, decoded again
// with errors='replace', so each byte that is not UTF-8 becomes U+FFFD and
// the line is still matched. Control characters (NUL included) are kept,
// as Python keeps them. Skipping such lines let an attacker hide a
// failure behind one raw byte in a field it controls (an nginx basic-auth
// user name, an SSH user name). bad reports that bytes were replaced (the
// follower logs it once per file, as fail2ban does).
//
// Python replaces a truncated multi-byte sequence with one U+FFFD where
// this replaces each of its bytes; no filter counts replacement
// characters.
func Intake(raw string) (line string, bad bool) {
	raw = strings.TrimSuffix(raw, "\r")
	if utf8.ValidString(raw) {
		return raw, false
	}
	var b strings.Builder
	b.Grow(len(raw) + 8)
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRuneInString(raw[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(raw[i : i+n])
		}
		i += n
	}
	return b.String(), true
}
