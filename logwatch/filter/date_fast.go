package filter

import "time"

// Hand-written matchers for the templates nearly every log line hits.
// They only ever answer for lines whose date has the canonical shape, and
// for those the answer is provably the one the template's regex gives:
// the regex's highest-priority choice at every branch leads to a match,
// so that match is the one a leftmost-first engine returns. Anything else
// (a weekday, fractions, a year, a non-ASCII letter, a date running into
// a word) is left undecided and goes to the regex. TestFastDates checks
// the equivalence on generated and mutated lines.

// syslogPattern is fail2ban's default syslog template ("Nov 24 06:25:13").
const syslogPattern = `(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`

func fastDateFor(p string) func(string, time.Time) (dateHit, bool, bool) {
	switch p {
	case syslogPattern, lnBeg + syslogPattern:
		// Unanchored, the regex tries position 0 first, and a canonical
		// date there matches: same answer as anchored.
		return fastSyslog
	}
	return nil
}

// monthOf returns 1-12 for an ASCII month abbreviation in any case, 0
// otherwise.
func monthOf(s string) int {
	if len(s) < 3 {
		return 0
	}
	a, b, c := s[0]|0x20, s[1]|0x20, s[2]|0x20
	var m int
	switch a {
	case 'j':
		switch {
		case b == 'a' && c == 'n':
			m = 1
		case b == 'u' && c == 'n':
			m = 6
		case b == 'u' && c == 'l':
			m = 7
		}
	case 'f':
		if b == 'e' && c == 'b' {
			m = 2
		}
	case 'm':
		switch {
		case b == 'a' && c == 'r':
			m = 3
		case b == 'a' && c == 'y':
			m = 5
		}
	case 'a':
		switch {
		case b == 'p' && c == 'r':
			m = 4
		case b == 'u' && c == 'g':
			m = 8
		}
	case 's':
		if b == 'e' && c == 'p' {
			m = 9
		}
	case 'o':
		if b == 'c' && c == 't' {
			m = 10
		}
	case 'n':
		if b == 'o' && c == 'v' {
			m = 11
		}
	case 'd':
		if b == 'e' && c == 'c' {
			m = 12
		}
	}
	// |0x20 also folds bytes that are not letters ('@' to '`', …): the
	// original bytes must be letters.
	for i := 0; i < 3; i++ {
		if x := s[i] | 0x20; x < 'a' || x > 'z' {
			return 0
		}
	}
	return m
}

func digit(c byte) (int, bool) { return int(c - '0'), c >= '0' && c <= '9' }

// fastSyslog decides "Mmm dd HH:MM:SS" (day "dd", " d" or "0d") at the
// start of a line, followed by the end of the line or a space and
// anything but '2' (which could begin the optional year).
func fastSyslog(line string, ref time.Time) (dateHit, bool, bool) {
	const n = len("Nov 24 06:25:13")
	if len(line) < n || line[3] != ' ' || line[6] != ' ' || line[9] != ':' || line[12] != ':' {
		return dateHit{}, false, false
	}
	if len(line) > n && (line[n] != ' ' || len(line) > n+1 && line[n+1] == '2') {
		return dateHit{}, false, false
	}
	month := monthOf(line)
	if month == 0 {
		return dateHit{}, false, false
	}
	var day int
	d0, d1 := line[4], line[5]
	switch {
	case (d0 == '1' || d0 == '2') && d1 >= '0' && d1 <= '9':
		day = int(d0-'0')*10 + int(d1-'0')
	case (d0 == ' ' || d0 == '0') && d1 >= '1' && d1 <= '9':
		day = int(d1 - '0')
	default:
		// 30 and 31 are reached by backtracking: leave them to the
		// regex.
		return dateHit{}, false, false
	}
	h0, ok0 := digit(line[7])
	h1, ok1 := digit(line[8])
	m0, ok2 := digit(line[10])
	m1, ok3 := digit(line[11])
	s0, ok4 := digit(line[13])
	s1, ok5 := digit(line[14])
	if !(ok0 && ok1 && ok2 && ok3 && ok4 && ok5) || h0 > 2 || m0 > 5 || s0 > 5 {
		return dateHit{}, false, false
	}
	hour := h0*10 + h1
	if hour > 23 {
		return dateHit{}, false, false
	}
	// Month 1-12, day 1-29, hour 0-23, minute and second 0-59: the
	// conversion cannot fail, so it can wait until the time is needed.
	lz := lazyDate{set: true, month: int8(month), day: int8(day), hour: int8(hour), minute: int8(m0*10 + m1), sec: int8(s0*10 + s1), ref: ref}
	return dateHit{start: 0, end: n, lazy: lz}, true, true
}

// lazyDate is a year-less, zone-less date whose fields are in range.
type lazyDate struct {
	set                           bool
	month, day, hour, minute, sec int8
	ref                           time.Time
}

func (d lazyDate) time() time.Time {
	t, _ := civilDate(d.ref.Year(), int(d.month), int(d.day), int(d.hour), int(d.minute), int(d.sec), 0, false, false, d.ref.Location(), d.ref)
	return t
}
