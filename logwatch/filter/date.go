package filter

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xdpban/xdpban/logwatch/pyre"
)

// Timestamp detection follows fail2ban's datedetector: a list of
// templates (strftime-like patterns turned into regexes), the one that
// matched last tried first, the date text cut out of the line before the
// failregexes run (so they never see it), and missing parts (the year,
// the day) inferred from a reference time.

// ErrDatePattern is wrapped by every invalid datepattern error.
var ErrDatePattern = errors.New("invalid datepattern")

// dateTemplate finds and converts one date format.
type dateTemplate struct {
	name string
	re   *pyre.Regex
	// lineBegin: the template can only match at the start of a line, so
	// a match ends the search.
	lineBegin bool
	// sepCheck: "(?P=_sep)" was rewritten as a second group "_sepb" for
	// RE2; a match is valid only when both separators are equal.
	sepCheck bool
	epoch    int // 0: strptime fields; 1: epoch; 2: long epoch; 3: TAI64N
	// fast is an optional hand-written matcher for a hot format (syslog,
	// ISO 8601) that gives the same answers as re, much faster.
	// decided false sends the line to re.
	fast func(line string, ref time.Time) (h dateHit, ok, decided bool)
}

// dateHit is one date found in a line: the span of the date text and the
// instant.
type dateHit struct {
	start, end int
	t          time.Time
	// lazy, when set, holds fields whose conversion cannot fail, done
	// by time() (most lines are never matched: their date is never
	// needed).
	lazy lazyDate
}

// time returns the instant of the hit.
func (h *dateHit) time() time.Time {
	if h.lazy.set {
		return h.lazy.time()
	}
	return h.t
}

// Python's strptime directives as fail2ban overrides them.
var timeRE = map[string]string{
	"a":   `(?P<a>mon|tue|wed|thu|fri|sat|sun)`,
	"A":   `(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)`,
	"b":   `(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)`,
	"B":   `(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)`,
	"f":   `(?P<f>[0-9]{1,6})`,
	"I":   `(?P<I>1[0-2]|0[1-9]|[1-9])`,
	"j":   `(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])`,
	"p":   `(?P<p>am|pm)`,
	"y":   `(?P<y>\d\d)`,
	"U":   `(?P<U>5[0-3]|[0-4]\d|\d)`,
	"W":   `(?P<W>5[0-3]|[0-4]\d|\d)`,
	"w":   `(?P<w>[0-6])`,
	"k":   ` ?(?P<H>[0-2]?\d)`,
	"l":   ` ?(?P<I>1?\d)`,
	"Z":   `(?P<Z>Z|[A-Z]{3,5})`,
	"z":   `(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)`,
	"ExZ": `(?P<Z>[A-Z](?:[A-Z]{2,4})?)`,
	"Exz": `(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)`,
	"d":   `(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])`,
	"m":   `(?P<m>0?[1-9]|1[0-2])`,
	"Y":   `(?P<Y>\d{4})`,
	"H":   `(?P<H>[0-1]?\d|2[0-3])`,
	"M":   `(?P<M>[0-5]?\d)`,
	"S":   `(?P<S>[0-5]?\d|6[0-1])`,
	"Exd": `(?P<d>[1-2]\d|0[1-9]|3[0-1])`,
	"Exm": `(?P<m>0[1-9]|1[0-2])`,
	"ExH": `(?P<H>[0-1]\d|2[0-3])`,
	"Exk": ` ?(?P<H>[0-1]?\d|2[0-3])`,
	"Exl": ` ?(?P<I>1[0-2]|\d)`,
	"ExM": `(?P<M>[0-5]\d)`,
	"ExS": `(?P<S>[0-5]\d|6[0-1])`,
	"Exy": `(?P<y>\d{2})`,
	"%":   `%`,
}

func init() {
	// %ExY accepts the years fail2ban accepts: from 2000 to a few years
	// ahead, so that a 4-digit number in a message is not taken for a
	// year.
	last := time.Now().Year() + 3
	var decades []string
	for d := 200; d <= last/10; d++ {
		decades = append(decades, strconv.Itoa(d))
	}
	timeRE["ExY"] = `(?P<Y>(?:` + strings.Join(decades, "|") + `)\d)`
}

var (
	directiveRE = regexp.MustCompile(`%(Ex[a-zA-Z]|[a-zA-Z%])`)
	alphaDirRE  = regexp.MustCompile(`%[aAbBp]`)
)

// The default templates, as fail2ban lists them.
var defaultDatePatterns = []string{
	`%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?`,
	`(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?`,
	`%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S`,
	`%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?`,
	`%m/%d/%ExY:%H:%M:%S`,
	`%m-%d-%ExY %k:%M:%S(?:\.%f)?`,
	`EPOCH`,
	`{^LN-BEG}%H:%M:%S`,
	`^<%m/%d/%Exy@%H:%M:%S>`,
	`%Exy%Exm%Exd  ?%H:%M:%S`,
	`%b %d, %ExY %I:%M:%S %p`,
	`^%b-%d-%Exy %k:%M:%S`,
	`%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?`,
	`(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`TAI64N`,
}

const lnBeg = "{^LN-BEG}"

// defaultTemplates returns fail2ban's default list: a line-begin anchored
// copy of every unanchored template first (dates at the start of a line
// are preferred), then the templates themselves.
func defaultTemplates() ([]*dateTemplate, error) {
	var anchored, plain []*dateTemplate
	for _, p := range defaultDatePatterns {
		t, err := newDateTemplate(p)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(p, lnBeg) && !strings.HasPrefix(p, "^") {
			a, err := newDateTemplate(lnBeg + p)
			if err != nil {
				return nil, err
			}
			anchored = append(anchored, a)
		}
		plain = append(plain, t)
	}
	return append(anchored, plain...), nil
}

// unboundPattern strips the boundary markers fail2ban strips when a
// default template is put in place of {DATE}.
func unboundPattern(p string) string {
	p = strings.TrimPrefix(p, "{UNB}")
	p = strings.TrimPrefix(p, lnBeg)
	return p
}

// newDateDetector builds the template list for a filter's datepattern
// (several patterns may be given, one per line). An empty pattern means
// the defaults.
func newDateDetector(pattern string) (*dateDetector, error) {
	d := &dateDetector{}
	var pats []string
	for _, l := range strings.Split(pattern, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			pats = append(pats, l)
		}
	}
	if len(pats) == 0 {
		pats = []string{"{DEFAULT}"}
	}
	seen := map[string]bool{}
	add := func(t *dateTemplate) {
		if !seen[t.name] {
			seen[t.name] = true
			d.templates = append(d.templates, t)
		}
	}
	for _, p := range pats {
		key := p
		if !strings.Contains(p, "%") {
			key = strings.ToUpper(p)
		}
		switch {
		case key == lnBeg || key == "{DEFAULT}":
			all, err := defaultTemplates()
			if err != nil {
				return nil, err
			}
			for _, t := range all {
				if key == lnBeg && !t.lineBegin {
					continue
				}
				add(t)
			}
		case strings.Contains(key, "{DATE}"):
			for _, dp := range defaultDatePatterns {
				if dp == "EPOCH" || dp == "TAI64N" {
					continue
				}
				t, err := newDateTemplate(strings.ReplaceAll(p, "{DATE}", unboundPattern(dp)))
				if err != nil {
					return nil, err
				}
				add(t)
			}
		case key == "{NONE}":
			d.none = true
		default:
			t, err := newDateTemplate(p)
			if err != nil {
				return nil, err
			}
			add(t)
		}
	}
	return d, nil
}

var (
	noWordBoundBeg = regexp.MustCompile(`^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)`)
	noWordBoundEnd = regexp.MustCompile(`(?:\$\)?|\\b|\\s|\*\*\)*)$`)
	lineBoundBeg   = regexp.MustCompile(`^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^[^|])`)
	epochTagRE     = regexp.MustCompile(`(?i)\{L?EPOCH\}`)
	starsBegRE     = regexp.MustCompile(`^\(*(?:\(\?\w+\))?\(*\*\*`)
	starsEndRE     = regexp.MustCompile(`\*\*\)*$`)
)

const (
	epochRE     = `\d{10,11}\b(?:\.\d{3,6})?`
	longEpochRE = `\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?`
)

// newDateTemplate compiles one pattern: "EPOCH", "LEPOCH", "TAI64N"
// (optionally "{^LN-BEG}"-prefixed), "{UNB}…" (no word boundaries), or
// a regex with strftime directives (%Y, %ExY, %b, …).
func newDateTemplate(p string) (*dateTemplate, error) {
	// Templates are immutable: every filter using the defaults shares one
	// compiled copy.
	if t, ok := templateCache.Load(p); ok {
		return t.(*dateTemplate), nil
	}
	t, err := compileDateTemplate(p)
	if err != nil {
		return nil, err
	}
	templateCache.Store(p, t)
	return t, nil
}

var templateCache sync.Map

func compileDateTemplate(p string) (*dateTemplate, error) {
	up := strings.ToUpper(p)
	t := &dateTemplate{name: p}
	var expr string
	wordBegin, wordEnd := "word", true
	switch {
	case up == "EPOCH" || up == "LEPOCH":
		t.epoch = 1
		re := epochRE
		if up == "LEPOCH" {
			t.epoch, re = 2, longEpochRE
		}
		// At line start, inside [..] at line start, or in SELinux's
		// audit(EPOCH:serial).
		expr = `(?:^\[(?P<_d1>` + re + `)\]|\baudit\((?P<_d2>` + re + `):\d+\)|^(?P<_d3>` + re + `))`
		wordBegin = ""
	case up == lnBeg+"EPOCH" || up == "^EPOCH" || up == lnBeg+"LEPOCH" || up == "^LEPOCH":
		t.epoch = 1
		re := epochRE
		if strings.HasSuffix(up, "LEPOCH") {
			t.epoch, re = 2, longEpochRE
		}
		expr = `(?P<_d1>` + re + `)`
		wordBegin = "start"
	case up == "TAI64N" || up == lnBeg+"TAI64N" || up == "^TAI64N":
		t.epoch = 3
		expr = `(?P<_d1>@[0-9a-f]{24})`
		if up != "TAI64N" {
			wordBegin = "start"
		} else {
			wordBegin = ""
		}
	case epochTagRE.MatchString(p):
		t.epoch = 1
		re := epochRE
		if strings.Contains(up, "LEPOCH") {
			t.epoch, re = 2, longEpochRE
		}
		expr = epochTagRE.ReplaceAllLiteralString(p, `(?P<_d1>`+re+`)`)
		if strings.HasPrefix(expr, lnBeg) {
			expr = strings.TrimPrefix(expr, lnBeg)
			wordBegin = "start"
		}
	default:
		pat := p
		if strings.HasPrefix(pat, "{UNB}") {
			pat = pat[len("{UNB}"):]
			wordBegin, wordEnd = "", false
		}
		if strings.HasPrefix(pat, lnBeg) {
			pat = pat[len(lnBeg):]
			if wordBegin != "" {
				wordBegin = "start"
			}
		}
		var bad string
		expr = directiveRE.ReplaceAllStringFunc(pat, func(d string) string {
			r, ok := timeRE[d[1:]]
			if !ok {
				bad = d
				return d
			}
			return r
		})
		if bad != "" {
			return nil, fmt.Errorf("%w %q: unknown directive %s: use %%Y %%m %%d %%H %%M %%S %%b %%z %%f %%ExY … (write %%%% for a literal %%)", ErrDatePattern, p, bad)
		}
		if alphaDirRE.MatchString(pat) {
			expr = "(?i)" + expr
		}
		// (?P=_sep) is a backreference RE2 lacks; match a second
		// separator and compare after the match instead.
		if i := strings.Index(expr, "(?P<_sep>"); i >= 0 && strings.Contains(expr, "(?P=_sep)") {
			j := strings.IndexByte(expr[i:], ')')
			class := expr[i+len("(?P<_sep>") : i+j]
			expr = strings.Replace(expr, "(?P=_sep)", "(?P<_sepb>"+class+")", 1)
			t.sepCheck = true
		}
	}
	// "**" at either end turns the boundary off (fail2ban's RE_DEL_WRD_BOUNDS).
	if m := starsBegRE.FindStringIndex(expr); m != nil {
		wordBegin = ""
		expr = expr[:m[0]] + strings.Replace(expr[m[0]:m[1]], "**", "", 1) + expr[m[1]:]
	}
	if m := starsEndRE.FindStringIndex(expr); m != nil {
		wordEnd = false
		expr = expr[:m[0]] + strings.Replace(expr[m[0]:m[1]], "**", "", 1) + expr[m[1]:]
	}
	// fail2ban's word boundaries: a date must not start or end inside a
	// word. (?=^|\b|\W) is only false between two word characters, which
	// \b expresses exactly when the date begins with a word character.
	if wordBegin != "" && noWordBoundBeg.MatchString(expr) {
		wordBegin = ""
	}
	if wordEnd && noWordBoundEnd.MatchString(expr) {
		wordEnd = false
	}
	if !hasPlainGroup(expr) && t.epoch == 0 {
		// The whole expression is the date (minus ^ and $ anchors).
		flags := ""
		if strings.HasPrefix(expr, "(?i)") {
			flags, expr = "(?i)", expr[4:]
		}
		caret, dollar := "", ""
		if strings.HasPrefix(expr, "^") {
			caret, expr = "^", expr[1:]
		}
		if strings.HasSuffix(expr, "$") && !strings.HasSuffix(expr, `\$`) {
			dollar, expr = "$", expr[:len(expr)-1]
		}
		expr = flags + caret + "(?P<_date>" + expr + ")" + dollar
	}
	flags := ""
	if strings.HasPrefix(expr, "(?i)") {
		flags, expr = "(?i)", expr[4:]
	}
	switch wordBegin {
	case "start":
		expr = `^(?:\W{0,2})?` + expr
		t.lineBegin = true
		if !strings.HasPrefix(t.name, lnBeg) {
			t.name = lnBeg + t.name
		}
	case "word":
		expr = `(?:^|\b|(?:\W))` + expr
		// The non-word alternative consumed a character; the date span
		// comes from the group, so that is harmless.
	}
	if wordEnd {
		expr += `(?:\b|$|\W)`
	}
	if lineBoundBeg.MatchString(expr) {
		t.lineBegin = true
	}
	expr = flags + expr
	re, err := pyre.Compile(expr, false)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrDatePattern, p, err)
	}
	t.re = re
	t.fast = fastDateFor(p)
	return t, nil
}

// match finds the template's date in line.
func (t *dateTemplate) match(line string, ref time.Time) (dateHit, bool) {
	if t.fast != nil {
		if h, ok, decided := t.fast(line, ref); decided {
			return h, ok
		}
	}
	m, err := t.re.Search(line)
	if err != nil || m == nil {
		return dateHit{}, false
	}
	start, end := -1, -1
	for _, g := range []string{"_date", "_d1", "_d2", "_d3", ""} {
		if g == "" {
			if m.G1 >= 0 {
				start, end = m.G1, m.G1End
			}
			break
		}
		if a, b, ok := m.Span(g); ok {
			start, end = a, b
			break
		}
	}
	if start < 0 {
		return dateHit{}, false
	}
	if t.sepCheck && m.Groups["_sep"] != m.Groups["_sepb"] {
		return dateHit{}, false
	}
	if start == end {
		// An optional date that is absent: the caller decides.
		return dateHit{start: start, end: end}, true
	}
	var tm time.Time
	var ok bool
	switch t.epoch {
	case 0:
		tm, ok = strptimeGroups(m.Groups, ref)
	case 1, 2:
		tm, ok = parseEpoch(line[start:end], t.epoch == 2)
	case 3:
		tm, ok = parseTAI64N(line[start:end])
	}
	if !ok {
		return dateHit{}, false
	}
	return dateHit{start: start, end: end, t: tm}, true
}

func parseEpoch(s string, long bool) (time.Time, bool) {
	if long && len(s) >= 13 {
		if len(s) >= 16 && !strings.Contains(s, ".") {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.UnixMicro(n), true
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.UnixMicro(int64(f * 1000)), true
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	ns := int64(0)
	if frac != "" {
		for len(frac) < 9 {
			frac += "0"
		}
		ns, _ = strconv.ParseInt(frac[:9], 10, 64)
	}
	return time.Unix(n, ns), true
}

func parseTAI64N(s string) (time.Time, bool) {
	if len(s) < 17 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(s[2:17], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

var monthAbbr = map[string]time.Month{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}

var monthFull = map[string]time.Month{
	"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
	"july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}

// strptimeGroups builds the instant from strftime fields, as fail2ban's
// reGroupDictStrptime: a missing year is ref's (last year's when that
// would put the date more than a day after ref: a December line read in
// January), a missing day is ref's (yesterday if that is in the future);
// no zone means ref's location.
func strptimeGroups(g map[string]string, ref time.Time) (time.Time, bool) {
	atoi := func(k string) (int, bool) {
		v, ok := g[k]
		if !ok {
			return 0, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, err == nil
	}
	year, hasYear := atoi("Y")
	if y, ok := atoi("y"); ok && !hasYear {
		year, hasYear = y+2000, true
	}
	month, hasMonth := 0, false
	if m, ok := atoi("m"); ok {
		month, hasMonth = m, true
	} else if b, ok := g["b"]; ok {
		mm, ok := monthAbbr[strings.ToLower(b)]
		if !ok {
			return time.Time{}, false
		}
		month, hasMonth = int(mm), true
	} else if b, ok := g["B"]; ok {
		mm, ok := monthFull[strings.ToLower(b)]
		if !ok {
			return time.Time{}, false
		}
		month, hasMonth = int(mm), true
	}
	day, hasDay := atoi("d")
	hour, _ := atoi("H")
	if h, ok := atoi("I"); ok {
		hour = h
		switch strings.ToLower(g["p"]) {
		case "", "am":
			if hour == 12 {
				hour = 0
			}
		case "pm":
			if hour != 12 {
				hour += 12
			}
		}
	}
	minute, _ := atoi("M")
	sec, _ := atoi("S")
	nsec := 0
	if f, ok := g["f"]; ok && f != "" {
		for len(f) < 9 {
			f += "0"
		}
		nsec, _ = strconv.Atoi(f[:9])
	}
	loc := ref.Location()
	if z, ok := g["z"]; ok && z != "" {
		off, ok := zoneOffset(z)
		if !ok {
			return time.Time{}, false
		}
		loc = time.FixedZone("", off*60)
	} else if z, ok := g["Z"]; ok && z != "" {
		off, ok := zoneOffset(z)
		if !ok {
			return time.Time{}, false
		}
		loc = time.FixedZone(z, off*60)
	}
	refIn := ref.In(loc)
	if !hasYear {
		year = refIn.Year()
	}
	if j, ok := atoi("j"); ok && (!hasMonth || !hasDay) {
		d := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, j-1)
		month, day, hasMonth, hasDay = int(d.Month()), d.Day(), true, true
	}
	assumeToday := false
	if !hasMonth && !hasDay {
		month, day = int(refIn.Month()), refIn.Day()
		hasMonth, hasDay, assumeToday = true, true, true
	}
	if !hasMonth || !hasDay {
		return time.Time{}, false
	}
	return civilDate(year, month, day, hour, minute, sec, nsec, hasYear, assumeToday, loc, ref)
}

// civilDate checks the fields and builds the instant. A date without a
// year that would lie more than a day after ref is last year's; a
// time-only date (assumeToday) in the future is yesterday's.
func civilDate(year, month, day, hour, minute, sec, nsec int, hasYear, assumeToday bool, loc *time.Location, ref time.Time) (time.Time, bool) {
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 61 {
		return time.Time{}, false
	}
	// Reject days a month does not have (time.Date would normalise
	// Feb 30 to March 2).
	if hasYear && day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if assumeToday && t.After(ref) {
		t = t.AddDate(0, 0, -1)
	}
	if !hasYear && t.After(ref.Add(24*time.Hour)) {
		t = time.Date(year-1, time.Month(month), day, hour, minute, sec, nsec, loc)
	}
	return t, true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// zoneOffset converts "Z", "UTC", "+0100", "-05:00", "CET", "CET+1" to
// minutes east of UTC.
func zoneOffset(z string) (int, bool) {
	switch z {
	case "Z", "UTC", "GMT":
		return 0, true
	}
	i := strings.IndexAny(z, "+-")
	abbr, num := z, ""
	if i >= 0 {
		abbr, num = z[:i], z[i:]
	}
	base := 0
	if abbr != "" {
		b, ok := tzAbbr[abbr]
		if !ok {
			return 0, false
		}
		base = b
	}
	if num == "" {
		return base, true
	}
	sign := 1
	if num[0] == '-' {
		sign = -1
	}
	digits := strings.ReplaceAll(num[1:], ":", "")
	if len(digits) < 2 {
		return 0, false
	}
	h, err := strconv.Atoi(digits[:2])
	if err != nil {
		return 0, false
	}
	m := 0
	if len(digits) >= 4 {
		m, err = strconv.Atoi(digits[2:4])
		if err != nil {
			return 0, false
		}
	}
	return base + sign*(h*60+m), true
}

// tzAbbr maps the zone abbreviations fail2ban knows to minutes east of
// UTC (fixed offsets: CET never turns into CEST by itself).
var tzAbbr = func() map[string]int {
	table := map[float64]string{
		-12: "Y", -11: "X NUT SST", -10: "W CKT HAST HST TAHT TKT",
		-9: "V AKST GAMT GIT HADT HNY", -8: "U AKDT CIST HAY HNP PST PT",
		-7: "T HAP HNR MST PDT", -6: "S CST EAST GALT HAR HNC MDT",
		-5: "R CDT COT EASST ECT EST ET HAC HNE PET",
		-4: "Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT",
		-3: "P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT",
		-2: "O BRST FNT PMDT UYST WGST", -1: "N AZOT CVT EGT",
		0: "Z EGST GMT UTC WET WT", 1: "A CET DFT WAT WEDT WEST",
		2: "B CAT CEDT CEST EET SAST WAST", 3: "C EAT EEDT EEST IDT MSK",
		4:  "D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT",
		5:  "E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT",
		6:  "F ALMT BIOT BTT IOT KGT NOVT OMST YEKST",
		7:  "G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB",
		8:  "H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST",
		9:  "I AWDT IRKST JST KST PWT TLT WDT WIT YAKT",
		10: "K AEST ChST PGT VLAT YAKST YAPT", 11: "L AEDT LHDT MAGT NCT PONT SBT VLAST VUT",
		12: "M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT", 13: "FJST NZDT",
		11.5: "NFT", 10.5: "ACDT LHST", 9.5: "ACST", 6.5: "CCT MMT", 5.75: "NPT",
		5.5: "SLT", 4.5: "AFT IRDT", 3.5: "IRST", -2.5: "HAT NDT", -3.5: "HNT NST NT",
		-4.5: "HLV VET", -9.5: "MART MIT",
	}
	out := map[string]int{}
	for off, names := range table {
		for _, n := range strings.Fields(names) {
			out[n] = int(off * 60)
		}
	}
	return out
}()

// dateDetector is the per-filter template list; each Scanner keeps its
// own "last template" so concurrent sources don't disturb each other.
type dateDetector struct {
	templates []*dateTemplate
	none      bool // {NONE}: lines carry no date
}

// find locates the date in line: the last template that worked first,
// then every template; a line-begin template that matches wins at once,
// otherwise the match nearest the start of the line does.
func (d *dateDetector) find(line string, ref time.Time, last *int) (dateHit, bool) {
	if d.none || len(d.templates) == 0 {
		return dateHit{}, false
	}
	if i := *last; i >= 0 && i < len(d.templates) {
		t := d.templates[i]
		if h, ok := t.match(line, ref); ok && (t.lineBegin || h.start == 0 || len(d.templates) == 1) {
			return h, true
		}
	}
	best, bestIdx := dateHit{start: -1}, -1
	for i, t := range d.templates {
		h, ok := t.match(line, ref)
		if !ok {
			continue
		}
		if t.lineBegin || h.start == 0 {
			best, bestIdx = h, i
			break
		}
		if bestIdx < 0 || h.start < best.start {
			best, bestIdx = h, i
		}
	}
	if bestIdx < 0 {
		return dateHit{}, false
	}
	*last = bestIdx
	return best, true
}

// hasPlainGroup reports whether expr has a capturing group without a name
// (fail2ban's RE_GROUPED): then group 1 is the date.
func hasPlainGroup(expr string) bool {
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '\\':
			i++
		case '(':
			if i+1 < len(expr) && expr[i+1] == '?' {
				continue
			}
			if i >= 2 && expr[i-2:i] == "(?" {
				continue
			}
			return true
		}
	}
	return false
}
