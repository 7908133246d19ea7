package control

import (
	"errors"
	"fmt"
	"strings"
)

// ErrLineTooLong: a ban file's line is over BanFileLineMax bytes.
var ErrLineTooLong = errors.New("line too long")

// BanFileLineMax is the longest line a ban file may have.
const BanFileLineMax = 4096

// MaxBadLines bounds the bad lines of a ban file named in a BadLinesError.
const MaxBadLines = 20

// ScanBanText calls fn with every address of a ban file and its line
// number: one address or CIDR a line, '#' starts a comment, blank lines
// and a leading UTF-8 byte-order mark (editors on Windows write one) are
// skipped. The daemon reads its imports with it and the CLI its
// --from-file when it sends bans one by one, so both read a file the same
// way. The addresses fn gets are substrings of text, so a million lines
// cost no allocation. fn's error stops the scan and is returned; a line
// over BanFileLineMax is ErrLineTooLong, naming it.
func ScanBanText(text string, fn func(line int, addr string) error) error {
	text = strings.TrimPrefix(text, "\ufeff")
	line := 0
	for len(text) > 0 {
		line++
		s := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			s, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		if len(s) > BanFileLineMax {
			return fmt.Errorf("%w: line %d is over %d bytes: one address or CIDR a line", ErrLineTooLong, line, BanFileLineMax)
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
	return nil
}

// BadLinesError is a ban file refused for its bad lines: nothing of it
// was banned. Lines are the first MaxBadLines, each "line N: why".
type BadLinesError struct {
	Lines []string
	Total int
}

func (e *BadLinesError) Error() string {
	if e.Total == 1 && len(e.Lines) == 1 {
		return fmt.Sprintf("%s; nothing was banned: fix it and run again", e.Lines[0])
	}
	return e.Summary()
}

// Summary is the error without its lines, for after they were listed.
func (e *BadLinesError) Summary() string {
	if e.Total == 1 {
		return "1 bad line; nothing was banned: fix it and run again"
	}
	more := ""
	if e.Total > len(e.Lines) {
		more = fmt.Sprintf(" (first %d shown)", len(e.Lines))
	}
	return fmt.Sprintf("%d bad lines%s; nothing was banned: fix them and run again", e.Total, more)
}

func (e *BadLinesError) Unwrap() error { return ErrBadRequest }

// Add records a bad line.
func (e *BadLinesError) Add(line int, err error) {
	e.Total++
	if len(e.Lines) < MaxBadLines {
		e.Lines = append(e.Lines, fmt.Sprintf("line %d: %v", line, err))
	}
}
