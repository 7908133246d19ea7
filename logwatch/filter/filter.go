package filter

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xdpban/xdpban/logwatch/pyre"
	"github.com/xdpban/xdpban/logwatch/source"
)

// MaxLineLen is the longest line a filter looks at; longer lines are
// Skipped (no log line worth banning on is that long, and a huge line
// must not cost a regex run).
const MaxLineLen = 64 << 10

// ErrFilter is wrapped by filter loading and compile errors.
var ErrFilter = errors.New("invalid filter")

// Filter is a compiled fail2ban filter. It is immutable and shared by all
// sources of a jail; per-source state lives in the Scanner.
type Filter struct {
	// Name is the filter's name ("sshd") or "regex" for CompileRegex.
	Name string
	// Source is the file it was read from ("embedded:filter.d/sshd.conf"
	// for shipped filters).
	Source string
	// FailRegex, IgnoreRegex and PrefRegex are the Python expressions
	// after tag expansion, as fail2ban would compile them.
	FailRegex   []string
	IgnoreRegex []string
	PrefRegex   string
	// MaxLines is the multi-line buffer size (1: single-line).
	MaxLines int
	// DatePattern is the datepattern as configured ("" = defaults).
	DatePattern string
	// JournalMatch lists the journalmatch lines (each one a set of
	// FIELD=value terms, "+" for OR), for the journal backend.
	JournalMatch []string

	pref    *pyre.Regex
	fails   []*pyre.Regex
	ignores []*pyre.Regex
	dates   *dateDetector
	// lits: when every failregex has a requirement, a single-line filter
	// rejects a line meeting none of them without running anything else.
	lits []pyre.Requirement
	// litIdx finds, in one pass, which failregexes' first requirement
	// (lits[i]) a line meets (at most 64 failregexes).
	litIdx *pyre.LitSet

	// slow: some expression runs on the backtracking engine, whose
	// searches share a per-line budget.
	slow     bool
	timeouts atomic.Uint64
}

// Timeouts counts the lines a backtracking regex gave up on (treated as
// misses).
func (f *Filter) Timeouts() uint64 { return f.timeouts.Load() }

// Backtracking lists the expressions that need the backtracking engine
// and why, for `xdpban regex` diagnostics.
func (f *Filter) Backtracking() []string {
	var out []string
	all := append(append([]*pyre.Regex{f.pref}, f.fails...), f.ignores...)
	for _, r := range all {
		if r != nil && r.UsesBacktracking() {
			out = append(out, r.Why()+": "+r.Source())
		}
	}
	return out
}

// filterSpec is everything a filter file resolves to.
type filterSpec struct {
	name, source string
	prefregex    string
	failregex    []string
	ignoreregex  []string
	maxlines     int
	datepattern  string
	journalmatch []string
	useDNS       bool
	// failPos is "file:line" of the failregex key when it comes from
	// the filter file, for errors.
	failPos string
}

func compileFilter(s filterSpec) (*Filter, error) {
	if len(s.failregex) == 0 {
		return nil, fmt.Errorf("%w %s (%s): no failregex: a filter needs at least one", ErrFilter, s.name, s.source)
	}
	if s.maxlines <= 0 {
		s.maxlines = 1
	}
	f := &Filter{
		Name: s.name, Source: s.source, MaxLines: s.maxlines,
		DatePattern: s.datepattern, JournalMatch: s.journalmatch,
	}
	multi := s.maxlines > 1
	var err error
	if strings.TrimSpace(s.prefregex) != "" {
		f.PrefRegex = expandTags(s.prefregex, s.useDNS)
		// fail2ban compiles prefregex without MULTILINE.
		if f.pref, err = pyre.Compile(f.PrefRegex, false); err != nil {
			return nil, fmt.Errorf("%w %s (%s): prefregex: %w", ErrFilter, s.name, s.source, err)
		}
	}
	allLits := true
	where := s.source
	if s.failPos != "" {
		where = s.failPos
	}
	for i, fr := range s.failregex {
		x := expandTags(fr, s.useDNS)
		r, err := pyre.Compile(x, multi)
		if err != nil {
			// A mistake in the operator's text fails the same way
			// before <HOST> is expanded: report it there, where the
			// offset points into what they wrote.
			if _, werr := pyre.Compile(fr, multi); x != fr && werr != nil {
				err = werr
			}
			return nil, fmt.Errorf("%w %s (%s): failregex %d: %w", ErrFilter, s.name, where, i+1, err)
		}
		if !hasFailureID(r) && (f.pref == nil || !hasFailureID(f.pref)) {
			return nil, fmt.Errorf("%w %s (%s): failregex %d %q has no <HOST>, <ADDR>, <F-ID> or <F-MLFID>: add one so xdpban knows whom to ban", ErrFilter, s.name, where, i+1, fr)
		}
		f.FailRegex = append(f.FailRegex, x)
		f.fails = append(f.fails, r)
		if len(r.Requirements()) == 0 {
			allLits = false
		} else {
			f.lits = append(f.lits, r.Requirements()[0])
		}
	}
	for i, ir := range s.ignoreregex {
		x := expandTags(ir, s.useDNS)
		r, err := pyre.Compile(x, false)
		if err != nil {
			return nil, fmt.Errorf("%w %s (%s): ignoreregex %d: %w", ErrFilter, s.name, s.source, i+1, err)
		}
		f.IgnoreRegex = append(f.IgnoreRegex, x)
		f.ignores = append(f.ignores, r)
	}
	if !allLits || multi {
		f.lits = nil
	} else if len(f.lits) <= 64 {
		var all []string
		var owners []uint64
		for i, q := range f.lits {
			for _, alt := range q {
				all = append(all, alt)
				owners = append(owners, 1<<i)
			}
		}
		f.litIdx = pyre.NewLitSet(all, owners)
	}
	f.slow = len(f.Backtracking()) > 0
	if f.dates, err = newDateDetector(s.datepattern); err != nil {
		return nil, fmt.Errorf("%w %s (%s): %w", ErrFilter, s.name, s.source, err)
	}
	return f, nil
}

func hasFailureID(r *pyre.Regex) bool {
	for _, g := range []string{"fid", "ip4", "ip6", "dns", "mlfid"} {
		if r.HasGroup(g) {
			return true
		}
	}
	return false
}

// CompileRegex compiles a bare failregex (Python syntax with fail2ban
// tags), as `xdpban regex LOG 'REGEX'` uses it. Dates are found with the
// default templates.
func CompileRegex(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("%w: empty regex: give a failregex containing <HOST>", ErrFilter)
	}
	return compileFilter(filterSpec{name: "regex", source: "command line", failregex: []string{expr}, useDNS: true})
}

// NewScanner returns per-source state for this filter.
func (f *Filter) NewScanner() Scanner {
	return &scanner{f: f, lastTemplate: -1}
}

type tupleLine struct{ pre, date, post string }

func (t tupleLine) text() string {
	if t.pre == "" {
		return t.post
	}
	return t.pre + t.post
}

// group values are "present" the way Python's truthiness sees them.
type groups map[string]string

func (g groups) truthy(k string) bool { return g[k] != "" }

// mlfEntry is the merged state of one multi-line failure id (fail2ban's
// mlfidCache entry); the map is shared on purpose, as in fail2ban.
type mlfEntry struct {
	g     groups
	users map[string]bool
}

type scanner struct {
	f            *Filter
	lastTemplate int
	buf          []tupleLine
	// lastDate is the last date seen, converted only when needed.
	lastDate     dateHit
	lastDateText string
	mlf          map[string]*mlfEntry
	mlfOrder     []string
	lineASCII    bool // the line being scanned has no byte above 0x7f
	// lineStart is when the line's scan began: its backtracking searches
	// share one DefaultMatchTimeout.
	lineStart    time.Time
	lineTimedOut bool
	timeouts     uint64
	one          [1]tupleLine
}

// result is one failregex hit, with what the sample suite checks.
type result struct {
	idx     int
	host    string // ip or hostname or failure id, as fail2ban's fid
	g       groups
	nofail  bool
	pending bool
	t       time.Time
}

func (s *scanner) Scan(line string, ref time.Time) (Verdict, []Match) {
	v, rs := s.scan(line, ref, false, nil)
	if v != Fail {
		return v, nil
	}
	var out []Match
	for _, r := range rs {
		if r.nofail || r.pending {
			continue
		}
		m := Match{User: r.g["user"], Time: r.t, Line: line}
		ip := cmp.Or(r.g["ip4"], r.g["ip6"])
		if ip != "" {
			m.Host, _ = netip.ParseAddr(ip)
		}
		m.Host = m.Host.Unmap()
		if !m.Host.IsValid() {
			// A hostname, or text the regex took for an address
			// that is not one (999.1.1.1, 192.030.0.6: octal or
			// decimal?): kept as written, as fail2ban records it, so
			// `xdpban regex` counts the failure; nobody is banned
			// for it. A bare failure id names nobody at all.
			m.HostName = r.g["dns"]
			if m.HostName == "" {
				m.HostName = ip
			}
			if m.HostName == "" {
				continue
			}
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return Miss, nil
	}
	return Fail, out
}

// scan is fail2ban's processLine + findFailure. checkAll runs every
// failregex (the sample suite needs it to detect double matches);
// journalDate, when non-nil, is the entry's time from the journal and no
// date is looked for in the line.
func (s *scanner) scan(line string, ref time.Time, checkAll bool, journalDate *time.Time) (Verdict, []result) {
	if len(line) > MaxLineLen {
		return Skipped, nil
	}
	// The common case, plain ASCII, is the one check: Intake would
	// scan it again to find nothing to do.
	if line = strings.TrimSuffix(line, "\r"); pyre.IsASCII(line) {
		s.lineASCII = true
	} else {
		line, _ = source.Intake(line)
		s.lineASCII = false
	}
	s.lineStart, s.lineTimedOut = time.Time{}, false
	if f := s.f; f.slow {
		s.lineStart = time.Now()
	}
	f := s.f
	var tl tupleLine
	// date is converted to a time only for a line that gets past the
	// literal check.
	var date dateHit
	if journalDate != nil {
		date.t = *journalDate
		tl = tupleLine{date: s.lastDateText, post: line}
	} else if h, ok := f.dates.find(line, ref, &s.lastTemplate); ok {
		tl = tupleLine{pre: line[:h.start], date: line[h.start:h.end], post: line[h.end:]}
		if h.start == h.end {
			// fail2ban: an empty (optional) date is the last one
			// seen if recent, else now.
			if last := s.lastDate.time(); !last.IsZero() && last.After(ref.Add(-time.Minute)) {
				tl, date.t = tupleLine{date: s.lastDateText, post: line}, last
			} else {
				date.t = ref
			}
		} else {
			date = h
			s.lastDate, s.lastDateText = h, tl.date
		}
	} else {
		tl = tupleLine{post: line}
	}
	// The cheap reject: the failregexes run on the line with its date cut
	// out, so that is where their literals are looked for.
	cand := allFails
	if f.lits != nil && tl.pre == "" && f.litIdx != nil {
		// Which failregexes can match at all: the others are not run.
		if cand = f.litIdx.Mask(tl.post); cand == 0 {
			return Miss, nil
		}
	} else if f.lits != nil {
		hit := false
	outer:
		for _, q := range f.lits {
			for _, l := range q {
				if containsSplit(tl.pre, tl.post, l) {
					hit = true
					break outer
				}
			}
		}
		if !hit {
			return Miss, nil
		}
	}
	return s.findFailure(tl, date.time(), checkAll, cand)
}

// allFails: no failregex is known not to match.
const allFails = ^uint64(0)

// findFailure runs the expressions on the line. A failregex i < 64 whose
// bit in cand is clear lacks its first requirement in the line (so in any
// part of it) and is skipped; one whose bit is set has it in tl.post.
func (s *scanner) findFailure(tl tupleLine, date time.Time, checkAll bool, cand uint64) (Verdict, []result) {
	f := s.f
	var org []tupleLine
	var buf string
	multi := f.MaxLines > 1
	if multi {
		s.buf = append(s.buf, tl)
		if len(s.buf) > f.MaxLines {
			s.buf = append([]tupleLine(nil), s.buf[len(s.buf)-f.MaxLines:]...)
		}
		org = s.buf
		buf = joinTuples(org)
	} else {
		// The scanner's own one-line buffer: a single-line filter
		// never reads s.buf from an earlier line.
		s.one[0] = tl
		org = s.one[:]
		s.buf = org
		buf = tl.text()
	}
	verdict := Miss
	// fail2ban checks ignoreregex first when there are clearly fewer of
	// them than failregexes.
	if len(f.ignores) > 0 && len(f.ignores) < len(f.fails)-2 {
		if s.ignored(buf, org, nil) {
			return Ignored, nil
		}
	}
	var pre groups
	if f.pref != nil {
		m, err := f.pref.SearchKnown(buf, false, false, s.lineStart)
		if err != nil {
			s.timedOut()
			return Miss, nil
		}
		if m == nil {
			return Miss, nil
		}
		pre = groups(m.Groups)
		if c, ok := pre["content"]; ok && c != "" {
			s.buf, buf = []tupleLine{{post: c}}, ""
			delete(pre, "content")
		} else if ok {
			delete(pre, "content")
		}
	}
	var out []result
	for i, fr := range f.fails {
		if i < 64 && cand&(1<<i) == 0 {
			continue
		}
		if buf == "" {
			buf = joinTuplesMaybe(s.buf, multi)
		}
		// The first requirement was seen in tl.post; when that is the
		// text searched, it need not be looked for again.
		known := cand != allFails && buf == tl.post && tl.pre == ""
		// A single-line buffer is a part of the line.
		m, err := fr.SearchKnown(buf, known, !multi && s.lineASCII, s.lineStart)
		if err != nil {
			s.timedOut()
			continue
		}
		if m == nil {
			continue
		}
		g := groups(m.Groups)
		matched, unmatched := matchedLines(buf, m, org, multi)
		if len(f.ignores) > 0 {
			ib, io := buf, org
			if multi {
				io = matched
				ib = joinTuples(matched)
			}
			if s.ignored(ib, io, nil) {
				if !checkAll || multi {
					s.buf = unmatched
				}
				buf = ""
				verdict = Ignored
				if !checkAll {
					break
				}
				continue
			}
		}
		if !checkAll || multi {
			s.buf, buf = unmatched, ""
		}
		if pre != nil {
			merged := make(groups, len(pre)+len(g))
			for k, v := range pre {
				merged[k] = v
			}
			for k, v := range g {
				merged[k] = v
			}
			g = merged
		}
		// Alternative names (F-ALT_USER, …) fill the plain name.
		for k, v := range g {
			if strings.HasPrefix(k, "alt_") && v != "" {
				n := strings.TrimPrefix(k, "alt_")
				if j := strings.LastIndexByte(n, '_'); j > 0 && isDigits(n[j+1:]) {
					n = n[:j]
				}
				if g[n] == "" {
					g[n] = v
				}
			}
		}
		r := result{idx: i, t: date}
		mlfid, hasMLF := g["mlfid"]
		if hasMLF {
			g = s.mergeFailure(mlfid, g)
			if g.truthy("nofail") {
				r.nofail = true
			}
		} else if g.truthy("nofail") {
			r.nofail = true
		}
		host := cmp.Or(g["ip4"], g["ip6"], g["dns"], g["fid"])
		if host == "" {
			if hasMLF {
				g["mlfpending"] = "1"
				r.pending = true
			} else {
				continue
			}
		}
		if hasMLF {
			cp := make(groups, len(g))
			for k, v := range g {
				cp[k] = v
			}
			g = cp
		}
		r.host, r.g = host, g
		out = append(out, r)
		if r.nofail && !checkAll && hasMLF {
			return Miss, nil
		}
		if !checkAll {
			break
		}
	}
	if len(out) > 0 {
		for _, r := range out {
			if !r.nofail && !r.pending {
				return Fail, out
			}
		}
		return Miss, out
	}
	return verdict, nil
}

// timedOut counts the line as timed out, once however many of its
// backtracking searches were given up on.
func (s *scanner) timedOut() {
	if s.lineTimedOut {
		return
	}
	s.lineTimedOut = true
	s.timeouts++
	s.f.timeouts.Add(1)
}

// Timeouts counts the lines this scanner gave up on (the engine logs and
// exports them per jail).
func (s *scanner) Timeouts() uint64 { return s.timeouts }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (s *scanner) ignored(buf string, org []tupleLine, _ *pyre.Regex) bool {
	for _, ir := range s.f.ignores {
		m, err := ir.SearchKnown(buf, false, false, s.lineStart)
		if err != nil {
			s.timedOut()
			continue
		}
		if m != nil {
			return true
		}
	}
	return false
}

// mergeFailure is fail2ban's _mergeFailure: lines sharing a multi-line
// failure id (a connection) pool their groups, so a later line without an
// address still counts for the address an earlier line named, and a
// successful login (F-MLFGAINED) or disconnect (F-MLFFORGET) settles it.
func (s *scanner) mergeFailure(mlfid string, g groups) groups {
	if s.mlf == nil {
		s.mlf = map[string]*mlfEntry{}
	}
	e := s.mlf[mlfid]
	var fl int
	if g.truthy("mlfgained") {
		fl |= 8 | 1
		if !g.truthy("nofail") {
			g["nofail"] = g["mlfgained"]
		}
	} else if g.truthy("nofail") {
		fl |= 1
	}
	if _, ok := g["mlfforget"]; ok {
		delete(g, "mlfforget")
		fl |= 2
	}
	var users map[string]bool
	if e != nil {
		if u := g["user"]; u != "" {
			if e.users == nil {
				e.users = map[string]bool{}
			}
			e.users[u] = true
		}
		users = e.users
		if e.g.truthy("nofail") {
			fl |= 4
		}
		delete(e.g, "nofail")
		if e.g.truthy("mlfgained") {
			fl |= 4
		}
		delete(e.g, "mlfgained")
		if fl&8 != 0 {
			delete(e.g, "mlfpending")
		}
		for k, v := range g {
			e.g[k] = v
		}
		g = e.g
		if fl&2 != 0 {
			delete(s.mlf, mlfid)
		}
	} else if fl&2 == 0 {
		e = &mlfEntry{g: g}
		if u := g["user"]; u != "" {
			e.users = map[string]bool{u: true}
		}
		users = e.users
		s.mlf[mlfid] = e
		s.mlfOrder = append(s.mlfOrder, mlfid)
		if len(s.mlfOrder) > 100 {
			// fail2ban's cache holds 100 ids; drop the oldest.
			old := s.mlfOrder[0]
			s.mlfOrder = s.mlfOrder[1:]
			if x, ok := s.mlf[old]; ok && x != e {
				delete(s.mlf, old)
			}
		}
	}
	pending := g.truthy("mlfpending")
	delete(g, "mlfpending")
	if pending || len(users) > 1 {
		delete(g, "nofail")
		delete(g, "mlfgained")
	}
	return g
}

func joinTuples(ts []tupleLine) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.pre)
		b.WriteString(t.post)
		b.WriteByte('\n')
	}
	return b.String()
}

func joinTuplesMaybe(ts []tupleLine, multi bool) string {
	if !multi && len(ts) == 1 {
		return ts[0].text()
	}
	return joinTuples(ts)
}

// matchedLines splits a multi-line buffer into the lines the match
// covered (minus <SKIPLINES>) and the rest, which stay buffered.
func matchedLines(buf string, m *pyre.Match, org []tupleLine, multi bool) (matched, unmatched []tupleLine) {
	if !multi || len(org) <= 1 {
		return org, nil
	}
	start := strings.LastIndexByte(buf[:min(m.Start+1, len(buf))], '\n') + 1
	if m.Start+1 > len(buf) {
		start = strings.LastIndexByte(buf, '\n') + 1
	}
	end := len(buf)
	if e := strings.IndexByte(buf[max(m.End-1, 0):], '\n'); e >= 0 {
		end = max(m.End-1, 0) + e + 1
	}
	n1 := strings.Count(buf[:start], "\n")
	n2 := strings.Count(buf[:end], "\n")
	n1, n2 = min(n1, len(org)), min(n2, len(org))
	matched = append([]tupleLine(nil), org[n1:n2]...)
	unmatched = append([]tupleLine(nil), org[:n1]...)
	var skipped []string
	for k := 0; ; k++ {
		v, ok := m.Groups[fmt.Sprintf("skiplines%d", k)]
		if !ok {
			if _, any := m.Groups[fmt.Sprintf("skiplines%d", k+1)]; !any {
				break
			}
			continue
		}
		skipped = append(skipped, strings.Split(strings.TrimSuffix(v, "\n"), "\n")...)
	}
	n := 0
	for _, sk := range skipped {
		if sk == "" {
			continue
		}
		for j := n; j < len(matched); j++ {
			if matched[j].text() == sk {
				unmatched = append(unmatched, matched[j])
				matched = append(matched[:j], matched[j+1:]...)
				n = j
				break
			}
		}
	}
	unmatched = append(unmatched, org[n2:]...)
	return matched, unmatched
}

// containsSplit reports whether pre+post contains lit without building
// pre+post.
func containsSplit(pre, post, lit string) bool {
	if strings.Contains(post, lit) {
		return true
	}
	if pre == "" {
		return false
	}
	if strings.Contains(pre, lit) {
		return true
	}
	// lit may straddle the seam.
	a := pre[max(0, len(pre)-len(lit)+1):]
	b := post[:min(len(post), len(lit)-1)]
	return strings.Contains(a+b, lit)
}

// LineIndependent reports whether a line's verdict depends on no other
// line except through the date cache (last template, last date), which
// a scanner primed with the lines just before gets right: a single-line
// filter without <F-MLFID> merging. Replay matches such a log on every
// core.
func (f *Filter) LineIndependent() bool {
	if f.MaxLines > 1 {
		return false
	}
	all := append(append([]*pyre.Regex{f.pref}, f.fails...), f.ignores...)
	for _, r := range all {
		if r != nil && r.HasGroup("mlfid") {
			return false
		}
	}
	return true
}
