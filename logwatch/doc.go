// Package logwatch is the fail2ban job: it follows logs (logwatch/source:
// files with its own inotify follower, or the systemd journal), matches
// each line against a jail's filter (logwatch/filter, whose expressions
// logwatch/pyre translates from Python's re), counts failures per address
// in a sliding window, and emits ban decisions.
//
// The rooms:
//   - pyre/: the Python-re compiler: translation to RE2 or regexp2, the
//     literals every match needs, cuts at literals and DFAs for the
//     capture-free pieces. It imports nothing of the module.
//   - filter/: filter.d loading, <HOST> tags, prefregex/failregex/
//     ignoreregex compiled once per filter, date detection, journalmatch,
//     and the Scanner a jail runs per source.
//   - source/: the file follower, the journal reader, persisted positions,
//     and Intake, the one way a raw log line becomes text.
//   - here: window.go / jail.go (per-jail counting, the engine and its ban
//     decisions), commitgate.go (positions saved only behind decisions
//     taken), replay.go (`xdpban regex`, the fail2ban-regex of xdpban).
//
// The common line costs little and gets the same answer as the plain
// path, each shortcut checked against it in filter/fastpath_test.go: a
// hand-written matcher for syslog dates (filter/date_fast.go), converted
// to a time only for lines that get past one pass over the failregexes'
// required literals (pyre/literal.go), which also says which failregexes
// can match at all; ASCII spellings of the Unicode classes for ASCII
// lines; and failregexes cut at literals that occur once in the line, the
// capture-free pieces walked by a DFA (pyre/split.go, pyre/dfa.go).
// BenchmarkAuthLog (make bench-logwatch) measures it on loggen's log.
package logwatch
