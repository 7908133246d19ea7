package filter

import (
	"fmt"
	"sort"
	"strings"
)

// JournalSource is the set of journal fields one distribution's daemon
// logs with: what a journalmatch has to see.
type JournalSource struct {
	Where  string            // "Debian 13 (OpenSSH 10.0)"
	Fields map[string]string // _SYSTEMD_UNIT, _COMM, SYSLOG_IDENTIFIER
}

func (s JournalSource) String() string {
	var kv []string
	for k, v := range s.Fields {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return s.Where + ": " + strings.Join(kv, " ")
}

// journalSources are the field sets the daemons of the shipped filters
// log with, as recorded from the distributions' units (Debian and Ubuntu
// ship OpenSSH as ssh.service, the others as sshd.service) and OpenSSH's
// process names (sshd-session since 9.8 logs every connection's lines;
// its monitor relays sshd-auth's, 10.0).
var journalSources = map[string][]JournalSource{
	"sshd": {
		{"Debian 12, Ubuntu 22.04/24.04 (OpenSSH 9.2-9.6)", map[string]string{"_SYSTEMD_UNIT": "ssh.service", "_COMM": "sshd", "SYSLOG_IDENTIFIER": "sshd"}},
		{"Debian 13, Ubuntu 25.04+ (OpenSSH 9.9-10.x)", map[string]string{"_SYSTEMD_UNIT": "ssh.service", "_COMM": "sshd-session", "SYSLOG_IDENTIFIER": "sshd-session"}},
		{"RHEL 9, Fedora <= 40 (OpenSSH 8.7-9.6)", map[string]string{"_SYSTEMD_UNIT": "sshd.service", "_COMM": "sshd", "SYSLOG_IDENTIFIER": "sshd"}},
		{"RHEL 10, Fedora 41+, Arch (OpenSSH 9.8-10.x)", map[string]string{"_SYSTEMD_UNIT": "sshd.service", "_COMM": "sshd-session", "SYSLOG_IDENTIFIER": "sshd-session"}},
		{"per-connection units (sshd@.service socket activation)", map[string]string{"_SYSTEMD_UNIT": "sshd@7-203.0.113.1:22-192.0.2.1:41000.service", "_COMM": "sshd-session", "SYSLOG_IDENTIFIER": "sshd-session"}},
	},
}

// JournalSources lists the recorded field sets of filter's daemon (none
// for filters without a record).
func JournalSources(filter string) []JournalSource { return journalSources[filter] }

// JournalSees reports whether journalctl, given the journalmatch lines,
// shows an entry with these fields: "+" separates alternatives; within
// one, terms on the same field are alternatives and terms on different
// fields must all hold (systemd's sd_journal_add_match rules).
func JournalSees(matches []string, fields map[string]string) bool {
	var terms []string
	for _, m := range matches {
		terms = append(terms, strings.Fields(m)...)
	}
	group := map[string][]string{}
	groupOK := func() bool {
		if len(group) == 0 {
			return false
		}
		for k, vs := range group {
			v, ok := fields[k]
			if !ok || !contains(vs, v) {
				return false
			}
		}
		return true
	}
	for _, t := range append(terms, "+") {
		if t == "+" {
			if groupOK() {
				return true
			}
			group = map[string][]string{}
			continue
		}
		k, v, _ := strings.Cut(t, "=")
		group[k] = append(group[k], v)
	}
	return len(terms) == 0 // no match at all: journalctl shows everything
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// JournalBlindSpots says, one line each, which recorded sources of
// filter's daemon the journalmatch lines cannot see.
func JournalBlindSpots(filter string, matches []string) []string {
	var out []string
	for _, s := range JournalSources(filter) {
		if !JournalSees(matches, s.Fields) {
			out = append(out, fmt.Sprintf("journalmatch %q cannot see %s", strings.Join(matches, " "), s))
		}
	}
	return out
}
