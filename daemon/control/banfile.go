package control

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrLineTooLong: a ban file's line is over BanFileLineMax bytes.
var ErrLineTooLong = errors.New("line too long")

// BanFileLineMax is the longest line a ban file may have.
const BanFileLineMax = 4096

// ScanBanFile calls fn with every address of a ban file and its line
// number: one address or CIDR a line, '#' starts a comment, blank lines
// and a leading UTF-8 byte-order mark (editors on Windows write one) are
// skipped. The CLI reads its --from-file and the daemon its import with
// it, so both read a file the same way. fn's error stops the scan and is
// returned; a line over BanFileLineMax is ErrLineTooLong, naming it.
func ScanBanFile(r io.Reader, fn func(line int, addr string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, BanFileLineMax), BanFileLineMax)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if line == 1 {
			s = strings.TrimPrefix(s, "\ufeff")
		}
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if err := fn(line, s); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: line %d is over %d bytes: one address or CIDR a line", ErrLineTooLong, line+1, BanFileLineMax)
		}
		return err
	}
	return nil
}
