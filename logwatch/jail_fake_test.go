package logwatch

import (
	"net/netip"
	"regexp"
	"strconv"
	"time"
)

// fakeScanner stands in for a compiled filter in unit tests of the
// runtime: "RFC3339-TIME fail from ADDR ..." is a failure, "... ignore
// from ADDR" is ignored, anything else a miss. End-to-end tests use the
// shipped sshd filter.
type fakeScanner struct{}

// The time is optional: journal lines carry theirs beside the line.
var fakeRe = regexp.MustCompile(`^(?:(\d{4}-\S+) )?.*?\b(fail|ignore) from (\S+)`)

func (fakeScanner) Scan(line string, ref time.Time) (Verdict, []Match) {
	m := fakeRe.FindStringSubmatch(line)
	if m == nil {
		return Miss, nil
	}
	if m[2] == "ignore" {
		return Ignored, nil
	}
	a, err := netip.ParseAddr(m[3])
	if err != nil {
		return Miss, nil
	}
	t, _ := time.Parse(time.RFC3339Nano, m[1])
	return Fail, []Match{{Host: a.Unmap(), Time: t, Line: line}}
}

func newFake() Scanner { return fakeScanner{} }

func failLine(t time.Time, addr string, seq int) string {
	return t.UTC().Format(time.RFC3339Nano) + " fail from " + addr + " seq=" + strconv.Itoa(seq)
}
