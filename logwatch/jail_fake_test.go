package logwatch

import (
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/xdpban/xdpban/logwatch/filter"
)

// fakeScanner stands in for a compiled filter in unit tests of the
// runtime: "RFC3339-TIME fail from ADDR ..." is a failure, "... ignore
// from ADDR" is ignored, anything else a miss. End-to-end tests use the
// shipped sshd filter.
type fakeScanner struct{}

// The time is optional: journal lines carry theirs beside the line.
var fakeRe = regexp.MustCompile(`^(?:(\d{4}-\S+) )?.*?\b(fail|ignore) from (\S+)`)

func (fakeScanner) Scan(line string, ref time.Time) (filter.Verdict, []filter.Match) {
	m := fakeRe.FindStringSubmatch(line)
	if m == nil {
		return filter.Miss, nil
	}
	if m[2] == "ignore" {
		return filter.Ignored, nil
	}
	a, err := netip.ParseAddr(m[3])
	if err != nil {
		return filter.Miss, nil
	}
	t, _ := time.Parse(time.RFC3339Nano, m[1])
	return filter.Fail, []filter.Match{{Host: a.Unmap(), Time: t, Line: line}}
}

func newFake() filter.Scanner { return fakeScanner{} }

func failLine(t time.Time, addr string, seq int) string {
	return t.UTC().Format(time.RFC3339Nano) + " fail from " + addr + " seq=" + strconv.Itoa(seq)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
