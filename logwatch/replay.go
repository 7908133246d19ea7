package logwatch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config"
	"github.com/xdpban/xdpban/logwatch/filter"
	"github.com/xdpban/xdpban/logwatch/source"
)

// ReplayOptions configures Replay.
type ReplayOptions struct {
	// Jail, when set, replays the log through the jail's maxretry,
	// findtime, bantime(.increment) and ignoreip, on the log's own clock,
	// and reports the bans it would have made.
	Jail  *config.Jail
	Widen bans.Widen
	// Ref is the reference time for dates without a year (default now).
	Ref time.Time
	// MaxLine caps a line (default DefaultMaxLine); longer is skipped.
	MaxLine int
	// NewScanner, with Workers > 1, lets Replay match the log on that
	// many goroutines, each with a scanner of its own primed with the
	// lines before its batch. Only for a filter whose lines are
	// independent (Filter.LineIndependent); the result is the same as
	// the sequential one, in the same order.
	NewScanner func() filter.Scanner
	Workers    int
	// CountOnly leaves Matches empty: a report of counts and addresses
	// needs no list of every match (300,000 in the benchmark's log).
	CountOnly bool
}

// ReplayMatch is one failure found, in file order.
type ReplayMatch struct {
	Line int    `json:"line"` // 1-based
	Host string `json:"host"`
	Time string `json:"time"` // RFC 3339, "" when the line has no date
}

// HostCount is the number of failures of one host.
type HostCount struct {
	Host    string `json:"host"`
	Matches int    `json:"matches"`
}

// ReplayBan is a ban the jail would have made.
type ReplayBan struct {
	Addr     string        `json:"addr"`   // the address whose failure crossed maxretry
	Prefix   string        `json:"prefix"` // what is banned (IPv6 widened)
	At       time.Time     `json:"at"`
	BanTime  time.Duration `json:"-"`
	BanSecs  float64       `json:"bantime_s"` // < 0: permanent
	Until    time.Time     `json:"until,omitzero"`
	Failures int           `json:"failures"`
	Line     int           `json:"line"`
}

// ReplayResult is what `xdpban regex` prints. Its JSON form is the
// contract of `xdpban regex --json`.
type ReplayResult struct {
	Lines   int `json:"lines"`
	Matched int `json:"matched"`
	Missed  int `json:"missed"`
	Ignored int `json:"ignored"`
	Skipped int `json:"skipped"`
	// Timeouts counts the lines the filter gave up on after its
	// per-line backtracking budget (counted as missed; the caller sets
	// it from the filter).
	Timeouts uint64        `json:"timeouts,omitempty"`
	ElapsedS float64       `json:"elapsed_s"`
	Matches  []ReplayMatch `json:"matches"`
	Hosts    []HostCount   `json:"hosts"`
	Bans     []ReplayBan   `json:"bans,omitempty"`
	Elapsed  time.Duration `json:"-"`
}

// LinesPerSecond is the replay throughput.
func (r *ReplayResult) LinesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Lines) / r.Elapsed.Seconds()
}

// Replay runs every line of r through sc, like fail2ban-regex, and with
// opt.Jail through the jail's counting as if the log were being followed
// when it was written.
func Replay(r io.Reader, sc filter.Scanner, opt ReplayOptions) (*ReplayResult, error) {
	if opt.Ref.IsZero() {
		opt.Ref = time.Now()
	}
	if opt.MaxLine <= 0 {
		opt.MaxLine = source.DefaultMaxLine
	}
	res := &ReplayResult{Matches: []ReplayMatch{}, Hosts: []HostCount{}}
	var sim *replayJail
	if opt.Jail != nil {
		var err error
		if sim, err = newReplayJail(*opt.Jail, opt.Widen); err != nil {
			return nil, err
		}
	}
	// Per-address tallies keyed by the address: one String() per
	// address rather than per match. Names (no address) count apart.
	type tally struct {
		host string
		n    int
		id   int32 // index in hosts
	}
	byAddr := map[netip.Addr]*tally{}
	byName := map[string]*tally{}
	var hosts []string
	// Consecutive matches often share their second: format it once.
	var lastT time.Time
	times := []string{""} // 0: no date
	lastTS := int32(0)
	// Matches are kept as indexes until the end: a slice without
	// pointers is not scanned by every GC cycle, and a log with a
	// million failures makes many.
	type rawMatch struct {
		line       int
		host, time int32
	}
	var raw []rawMatch
	start := time.Now()
	// tallyLine counts one scanned line; lines are given in file order.
	tallyLine := func(v filter.Verdict, ms []filter.Match) {
		res.Lines++
		switch v {
		case filter.Fail:
			res.Matched++
			for _, m := range ms {
				var tl *tally
				if m.Host.IsValid() {
					if tl = byAddr[m.Host]; tl == nil {
						tl = &tally{host: m.Host.String(), id: int32(len(hosts))}
						hosts = append(hosts, tl.host)
						byAddr[m.Host] = tl
					}
				} else if tl = byName[m.HostName]; tl == nil {
					tl = &tally{host: m.HostName, id: int32(len(hosts))}
					hosts = append(hosts, tl.host)
					byName[m.HostName] = tl
				}
				tl.n++
				if opt.CountOnly {
					if sim != nil && m.Host.IsValid() {
						sim.failure(m, res.Lines)
					}
					continue
				}
				ts := int32(0)
				if !m.Time.IsZero() {
					// == (not Equal): the same instant in another
					// location formats differently.
					if m.Time != lastT || lastTS == 0 {
						lastT, lastTS = m.Time, int32(len(times))
						times = append(times, m.Time.Format(time.RFC3339))
					}
					ts = lastTS
				}
				raw = append(raw, rawMatch{line: res.Lines, host: tl.id, time: ts})
				if sim != nil && m.Host.IsValid() {
					sim.failure(m, res.Lines)
				}
			}
		case filter.Ignored:
			res.Ignored++
		case filter.Skipped:
			res.Skipped++
		default:
			res.Missed++
		}
	}
	var err error
	if opt.Workers > 1 && opt.NewScanner != nil {
		err = replayParallel(r, opt, tallyLine)
	} else {
		err = eachLine(r, opt.MaxLine, func(line string, tooLong bool) {
			if tooLong {
				tallyLine(filter.Skipped, nil)
				return
			}
			// Scan takes the line in through Intake itself.
			tallyLine(sc.Scan(line, opt.Ref))
		})
	}
	if err != nil {
		return nil, fmt.Errorf("read log at line %d: %w", res.Lines+1, err)
	}
	res.Matches = make([]ReplayMatch, len(raw))
	for i, m := range raw {
		res.Matches[i] = ReplayMatch{Line: m.line, Host: hosts[m.host], Time: times[m.time]}
	}
	res.Elapsed = time.Since(start)
	res.ElapsedS = res.Elapsed.Seconds()
	// A name that reads like an address counts with that address, as
	// when both were counted by their text.
	counts := make(map[string]int, len(byAddr)+len(byName))
	for _, tl := range byAddr {
		counts[tl.host] += tl.n
	}
	for _, tl := range byName {
		counts[tl.host] += tl.n
	}
	res.Hosts = make([]HostCount, 0, len(counts))
	for h, n := range counts {
		res.Hosts = append(res.Hosts, HostCount{Host: h, Matches: n})
	}
	sort.Slice(res.Hosts, func(i, j int) bool {
		if res.Hosts[i].Matches != res.Hosts[j].Matches {
			return res.Hosts[i].Matches > res.Hosts[j].Matches
		}
		return res.Hosts[i].Host < res.Hosts[j].Host
	})
	if sim != nil {
		res.Bans = sim.bans
	}
	return res, nil
}

// replayJail is a jail on the log's clock: "now" is the newest line time
// seen, and a banned address's later failures are not counted (the ban
// would have dropped its traffic).
type replayJail struct {
	j      config.Jail
	widen  bans.Widen
	win    *Window
	ignore *bans.IgnoreList
	hist   *MemHistory
	now    time.Time
	banned map[netip.Prefix]time.Time // prefix -> until (zero: permanent)
	bans   []ReplayBan
}

func newReplayJail(j config.Jail, w bans.Widen) (*replayJail, error) {
	if j.MaxRetry < 1 {
		return nil, fmt.Errorf("jail %s: maxretry %d: must be at least 1", j.Name, j.MaxRetry)
	}
	if j.FindTime <= 0 {
		return nil, fmt.Errorf("jail %s: findtime %s: must be positive", j.Name, j.FindTime)
	}
	ign, err := bans.NewIgnoreList(j.IgnoreIP, j.IgnoreSelf)
	if err != nil {
		return nil, fmt.Errorf("jail %s: %w", j.Name, err)
	}
	win := NewWindow(j.MaxRetry, j.FindTime, j.MaxTracked)
	win.KeepLines(false) // a replay notifies nobody
	return &replayJail{
		j: j, widen: w, win: win, ignore: ign,
		hist: NewMemHistory(), banned: map[netip.Prefix]time.Time{},
	}, nil
}

func (s *replayJail) failure(m filter.Match, line int) {
	if m.Time.IsZero() {
		return // no clock to replay on
	}
	if m.Time.After(s.now) {
		s.now = m.Time
	}
	a := m.Host.Unmap()
	if s.ignore.Ignored(a) {
		return
	}
	key, _ := s.ignore.Narrow(s.widen.Addr(a), a)
	if until, ok := s.banned[key]; ok {
		if until.IsZero() || m.Time.Before(until) {
			return
		}
		delete(s.banned, key)
	}
	h := s.win.Add(key, m.Time, s.now, "")
	if h == nil {
		return
	}
	n, _ := s.hist.BanCount(s.j.Name, key)
	bt := IncrementBanTime(s.j.BanTime, s.j.Increment, n, func() float64 { return 0 })
	s.hist.Record(s.j.Name, key)
	b := ReplayBan{Addr: a.String(), Prefix: key.String(), At: m.Time, BanTime: bt, Failures: h.Failures, Line: line}
	if bt < 0 {
		b.BanSecs = -1
		s.banned[key] = time.Time{}
	} else {
		b.BanSecs = bt.Seconds()
		b.Until = m.Time.Add(bt)
		s.banned[key] = b.Until
	}
	s.bans = append(s.bans, b)
}

// lineChunk bounds the text converted to one string at a time: lines
// are substrings of it (no copy per line), and a scanner keeping one of
// them (the last date seen) keeps no more than this alive.
const lineChunk = 64 << 10

// eachLine calls fn for every line of r (without its "\n"; a last line
// without one counts), with tooLong set and no text for a line longer
// than maxLine bytes.
func eachLine(r io.Reader, maxLine int, fn func(line string, tooLong bool)) error {
	buf := make([]byte, 0, max(1<<20, 2*(maxLine+1)))
	skipping := false // inside a line already known to be too long
	emit := func(text string) {
		for len(text) > 0 {
			i := strings.IndexByte(text, '\n')
			line := text
			if i >= 0 {
				line, text = text[:i], text[i+1:]
			} else {
				text = ""
			}
			switch {
			case skipping:
				skipping = false
				fn("", true)
			case len(line) > maxLine:
				fn("", true)
			default:
				fn(line, false)
			}
		}
	}
	for eof := false; !eof; {
		old := len(buf)
		n, err := r.Read(buf[old:cap(buf)])
		buf = buf[:old+n]
		if errors.Is(err, io.EOF) {
			eof = true
		} else if err != nil {
			return err
		}
		// What was kept from before has no newline: look in the new
		// bytes only.
		end := 0
		if i := bytes.LastIndexByte(buf[old:], '\n'); i >= 0 {
			end = old + i + 1
		}
		if eof {
			end = len(buf)
		}
		for done := 0; done < end; {
			cut := done + bytes.LastIndexByte(buf[done:min(end, done+lineChunk)], '\n') + 1
			if cut == done {
				// A line longer than a chunk: it is a chunk of its own.
				cut = end
				if i := bytes.IndexByte(buf[done:end], '\n'); i >= 0 {
					cut = done + i + 1
				}
			}
			emit(string(buf[done:cut]))
			done = cut
		}
		buf = buf[:copy(buf, buf[end:])]
		if len(buf) > maxLine {
			// The unfinished line is already too long: drop what there
			// is and the rest up to its end.
			skipping, buf = true, buf[:0]
		}
	}
	if skipping {
		fn("", true)
	}
	return nil
}

// replayBatch is a run of consecutive lines matched by one worker.
type replayBatch struct {
	lines   []string // "" with tooLong set for a skipped long line
	tooLong []bool
	// prime are the lines just before the batch: scanned first (and
	// not counted) so the worker's date cache is where a sequential
	// scan would have it.
	prime []string
	// Filled by the worker.
	verdicts []filter.Verdict
	matches  [][]filter.Match
	done     chan struct{}
}

// replayBatchLines balances the hand-off cost against the lines a slow
// batch holds back the merge.
const (
	replayBatchLines = 8192
	replayPrimeLines = 4
)

// replayParallel reads r into batches, matches them on opt.Workers
// goroutines and hands every line's result to tally in file order.
func replayParallel(r io.Reader, opt ReplayOptions, tally func(filter.Verdict, []filter.Match)) error {
	work := make(chan *replayBatch, opt.Workers)
	// order holds the batches in file order; its capacity bounds how far
	// reading runs ahead of the merge (memory).
	order := make(chan *replayBatch, 4*opt.Workers)
	for range opt.Workers {
		go func() {
			sc := opt.NewScanner()
			for b := range work {
				for _, l := range b.prime {
					sc.Scan(l, opt.Ref)
				}
				b.verdicts = make([]filter.Verdict, len(b.lines))
				b.matches = make([][]filter.Match, len(b.lines))
				for i, l := range b.lines {
					if b.tooLong[i] {
						b.verdicts[i] = filter.Skipped
						continue
					}
					b.verdicts[i], b.matches[i] = sc.Scan(l, opt.Ref)
				}
				close(b.done)
			}
		}()
	}
	merged := make(chan struct{})
	go func() {
		defer close(merged)
		for b := range order {
			<-b.done
			for i := range b.lines {
				tally(b.verdicts[i], b.matches[i])
			}
		}
	}()
	cur := &replayBatch{done: make(chan struct{})}
	var recent []string // the last lines read, for the next batch's prime
	flush := func() {
		if len(cur.lines) == 0 {
			return
		}
		order <- cur
		work <- cur
		n := len(cur.lines)
		recent = append(recent[:0], cur.lines[max(0, n-replayPrimeLines):]...)
		cur = &replayBatch{done: make(chan struct{}), prime: slices.Clone(recent)}
	}
	err := eachLine(r, opt.MaxLine, func(line string, tooLong bool) {
		cur.lines = append(cur.lines, line)
		cur.tooLong = append(cur.tooLong, tooLong)
		if len(cur.lines) == replayBatchLines {
			flush()
		}
	})
	flush()
	close(work)
	close(order)
	<-merged
	return err
}
