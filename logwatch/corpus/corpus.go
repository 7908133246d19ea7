// Package corpus reads the filter corpus (logwatch/filter/testdata/corpus): log
// lines composed from the format strings the daemons print, each with the
// source it was built from and what every mode of a shipped filter must
// make of it. Render writes a corpus out with the prefixes real logs
// carry (syslog, RFC 3339, journal, nginx's own), so one entry is checked
// under each of them.
//
// The file format, one entry a line:
//
//	# filter: sshd                     the shipped filter (also fail2ban's name)
//	# modes: normal ddos extra aggressive
//	# kind: syslog                     syslog | nginx | banlog | apache | vsftpd
//	# ref: openssh-portable auth.c auth_log() "Failed %s for ..." 6.6-10.x
//	normal,aggressive 192.0.2.4 | sshd[1201]: Failed password for root from 192.0.2.4 port 22 ssh2
//
// The first field lists the modes that must count the line ("*" all of
// them, "-" none); the second is the address they must capture ("-" when
// none). An optional third field holds comma-separated flags: f2b-wrong
// marks a line fail2ban's stock filter counts although it must not be
// counted (the server's fault, not the client's, or an address the client
// planted, which fail2ban takes); self=ADDR names the
// server's own address, which the other modes may capture instead (never
// banned: ignoreself). A "# ref:" line applies to the
// entries below it until the next one.
package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Entry is one corpus line.
type Entry struct {
	File     string
	LineNo   int
	Ref      string
	Modes    []string // modes that count the line
	Host     netip.Addr
	F2BWrong bool
	// Self is the server's own address, which a mode that does not count
	// the entry may still capture: ignoreself never bans it.
	Self netip.Addr
	Text string // "ident[pid]: message" (syslog), the line after nginx's date (nginx), after the logger name (banlog)
}

// Counts reports whether mode counts the entry.
func (e Entry) Counts(mode string) bool { return slices.Contains(e.Modes, mode) }

// File is one corpus file.
type File struct {
	Path    string
	Filter  string
	Modes   []string
	Kind    string
	Entries []Entry
}

// Load reads every *.corpus file of dir.
func Load(dir string) ([]*File, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.corpus"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("corpus %s: no *.corpus files", dir)
	}
	var out []*File
	for _, n := range names {
		f, err := Read(n)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Read parses one corpus file.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, Kind: "syslog"}
	ref := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.TrimSpace(k) {
			case "filter":
				f.Filter = v
			case "modes":
				f.Modes = strings.Fields(v)
			case "kind":
				f.Kind = v
			case "ref":
				ref = v
			}
			continue
		}
		head, text, ok := strings.Cut(line, " | ")
		if !ok {
			return nil, bad("want MODES HOST [FLAGS] | LINE")
		}
		fl := strings.Fields(head)
		if len(fl) < 2 || len(fl) > 3 {
			return nil, bad("want MODES HOST [FLAGS] before ' | '")
		}
		if ref == "" {
			return nil, bad("entry without a # ref: line above it")
		}
		e := Entry{File: filepath.Base(path), LineNo: n, Ref: ref, Text: text}
		switch fl[0] {
		case "*":
			e.Modes = f.Modes
		case "-":
		default:
			e.Modes = strings.Split(fl[0], ",")
			for _, m := range e.Modes {
				if !slices.Contains(f.Modes, m) {
					return nil, bad("mode %q is not in # modes: %v", m, f.Modes)
				}
			}
		}
		if fl[1] != "-" {
			a, err := netip.ParseAddr(fl[1])
			if err != nil {
				return nil, bad("host %q: %v", fl[1], err)
			}
			e.Host = a
		}
		if (len(e.Modes) == 0) != !e.Host.IsValid() {
			return nil, bad("an entry counted in some mode needs an address, and one counted in none has none")
		}
		if len(fl) == 3 {
			for _, flag := range strings.Split(fl[2], ",") {
				switch k, v, _ := strings.Cut(flag, "="); k {
				case "f2b-wrong":
					e.F2BWrong = true
				case "self":
					a, err := netip.ParseAddr(v)
					if err != nil {
						return nil, bad("self=%q: %v", v, err)
					}
					e.Self = a
				default:
					return nil, bad("unknown flag %q: want f2b-wrong or self=ADDR", flag)
				}
			}
		}
		f.Entries = append(f.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Filter == "" || len(f.Modes) == 0 {
		return nil, fmt.Errorf("%s: needs # filter: and # modes: lines", path)
	}
	switch f.Kind {
	case "syslog", "nginx", "banlog", "apache", "vsftpd":
	default:
		return nil, fmt.Errorf("%s: kind %q: want syslog, nginx, banlog, apache or vsftpd", path, f.Kind)
	}
	return f, nil
}

// Base is the time of a rendered file's first line; line i is i seconds
// later, so a match's time names its line.
var Base = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// Variants lists the prefixes a kind is rendered with.
func Variants(kind string) []string {
	switch kind {
	case "nginx":
		return []string{"nginx", "syslog", "rfc3339"}
	case "banlog":
		return []string{"banlog", "fail2ban"}
	case "apache":
		return []string{"apache"}
	case "vsftpd":
		return []string{"vsftpd"}
	}
	return []string{"syslog", "rfc3339", "journal"}
}

// Render writes the entries as the lines of one log in a variant:
//
//	syslog   "Mar  1 10:00:01 bastion sshd[1201]: ..." (nginx: "... web nginx: 2025/03/01 10:00:01 [error] ...")
//	rfc3339  "2025-03-01T10:00:01.000001+00:00 bastion sshd[1201]: ..." (rsyslog's file format)
//	journal  the line xdpban's journal backend makes of the entry's fields
//	nginx    nginx's error_log: "2025/03/01 10:00:01 [error] ..."
//	banlog   xdpban's ban log: "2025-03-01 10:00:01,000 fail2ban.actions [4242]: NOTICE  [sshd] Ban ..."
//	fail2ban fail2ban's own log, with its padded logger name
//	apache   Apache httpd's error_log: "[Sat Mar 01 10:00:01.000000 2025] [auth_basic:error] ..."
//	vsftpd   vsftpd.log: "Sat Mar  1 10:00:01 2025 [pid 1234] [user] FAIL LOGIN: ..."
//
// Line i of the result is entry i, dated Base + i seconds.
func (f *File) Render(variant string, journal func(entryJSON []byte) (string, bool)) ([]string, error) {
	out := make([]string, 0, len(f.Entries))
	for i, e := range f.Entries {
		t := Base.Add(time.Duration(i) * time.Second)
		nginxDate := t.Format("2006/01/02 15:04:05")
		var l string
		switch {
		case variant == "syslog" && f.Kind == "nginx":
			l = t.Format(time.Stamp) + " web nginx: " + nginxDate + " " + e.Text
		case variant == "rfc3339" && f.Kind == "nginx":
			l = t.Format("2006-01-02T15:04:05.000000-07:00") + " web nginx: " + nginxDate + " " + e.Text
		case variant == "nginx":
			l = nginxDate + " " + e.Text
		case variant == "syslog":
			l = t.Format(time.Stamp) + " bastion " + e.Text
		case variant == "rfc3339":
			l = t.Add(time.Microsecond).Format("2006-01-02T15:04:05.000000-07:00") + " bastion " + e.Text
		case variant == "journal":
			ident, msg, ok := strings.Cut(e.Text, ": ")
			if !ok {
				return nil, fmt.Errorf("%s:%d: no 'ident: ' in %q", e.File, e.LineNo, e.Text)
			}
			fields := map[string]string{
				"__REALTIME_TIMESTAMP": strconv.FormatInt(t.UnixMicro(), 10),
				"_HOSTNAME":            "bastion",
				"MESSAGE":              msg,
			}
			if name, pid, ok := strings.Cut(strings.TrimSuffix(ident, "]"), "["); ok {
				fields["SYSLOG_IDENTIFIER"], fields["SYSLOG_PID"] = name, pid
			} else {
				fields["SYSLOG_IDENTIFIER"] = ident
			}
			raw, _ := json.Marshal(fields)
			if l, ok = journal(raw); !ok {
				return nil, fmt.Errorf("%s:%d: journal formatting refused %s", e.File, e.LineNo, raw)
			}
		case variant == "banlog":
			l = t.Format("2006-01-02 15:04:05,000") + " fail2ban.actions [4242]: " + e.Text
		case variant == "apache":
			l = t.Format("[Mon Jan 02 15:04:05.000000 2006] ") + e.Text
		case variant == "vsftpd":
			l = t.Format("Mon Jan _2 15:04:05 2006 ") + e.Text
		case variant == "fail2ban":
			l = t.Format("2006-01-02 15:04:05,000") + " fail2ban.actions        [4242]: " + e.Text
		default:
			return nil, fmt.Errorf("variant %q does not apply to kind %s", variant, f.Kind)
		}
		out = append(out, l)
	}
	return out, nil
}
