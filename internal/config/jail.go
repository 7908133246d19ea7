package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/bans"
	"github.com/xdpban/xdpban/internal/config/ini"
)

type jailReader struct {
	f *ini.File
	// own: xdpban's configuration (strict); otherwise fail2ban's tree
	// (fail2ban-only settings become Notes).
	own       bool
	filterDir string
}

func (r jailReader) boolean(sec, key string, def bool) (bool, error) {
	return getter{r.f}.boolean(sec, key, def)
}

// jailKeys are the keys a jail section may set that xdpban reads.
var jailKeys = map[string]bool{
	"enabled": true, "filter": true, "logpath": true, "backend": true, "journalmatch": true,
	"maxretry": true, "findtime": true, "bantime": true, "bantime.increment": true,
	"bantime.factor": true, "bantime.maxtime": true, "bantime.rndtime": true,
	"ignoreip": true, "ignoreself": true, "port": true, "protocol": true, "action": true,
	"ratelimit": true, "ratelimit.banafter": true, "mode": true,
	"banaction": true, "banaction_allports": true, "maxtracked": true,
	"banscope": true,
}

// filterKeys may be set in a jail to override the filter's.
var filterKeys = []string{"failregex", "ignoreregex", "prefregex", "datepattern", "maxlines"}

// fail2banOnly are fail2ban settings xdpban reads but does not act on,
// with why; "" means silently fine (purely fail2ban plumbing).
var fail2banOnly = map[string]string{
	"bantime.formula":      "not supported: bantime.factor and bantime.maxtime are used",
	"bantime.multipliers":  "not supported: bantime.factor and bantime.maxtime are used",
	"bantime.overalljails": "not supported: ban counts are per jail",
	"ignorecommand":        "not run: xdpban never runs ignore commands; list addresses in ignoreip",
	"ignorecache":          "not used (no ignorecommand)",
	"usedns":               "",
	"logencoding":          "",
	"logtimezone":          "not supported: times are read as the local zone unless the line has one",
	"maxmatches":           "",
	"chain":                "",
	"mta":                  "",
	"destemail":            "",
	"sender":               "",
	"fail2ban_agent":       "",
}

var (
	portNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._+-]*$`)
	portNumRE  = regexp.MustCompile(`^[0-9]{1,5}$`)
)

var portRangeRE = regexp.MustCompile(`^([0-9]{1,5})[:-]([0-9]{1,5})$`)

// validPort checks a port scope: comma-separated numbers, service names
// and N:M (or N-M) ranges.
func validPort(p string) error {
	if p == "" {
		return nil
	}
	for _, e := range strings.Split(p, ",") {
		if m := portRangeRE.FindStringSubmatch(e); m != nil {
			lo, _ := strconv.Atoi(m[1])
			hi, _ := strconv.Atoi(m[2])
			if hi > 65535 || lo > hi {
				return fmt.Errorf("range %q: want N:M with N <= M <= 65535", e)
			}
			continue
		}
		if portNumRE.MatchString(e) {
			if n, _ := strconv.Atoi(e); n > 65535 {
				return fmt.Errorf("port %s above 65535", e)
			}
			continue
		}
		if portNameRE.MatchString(e) {
			continue
		}
		return fmt.Errorf("%q is not a port, service name or range N:M", e)
	}
	return nil
}

// filterWhere is Jail.FilterWhere: of the filter line and the jail's
// filter settings (failregex = … in the jail), the one set in the latest
// file, the filter on a tie, as a ValueError cites it.
func filterWhere(f *ini.File, name string, j Jail) string {
	rank := func(p ini.Pos) int { return slices.Index(f.Files(), p.File) }
	var best *ValueError
	bestRank := -2
	for _, k := range append([]string{"filter"}, filterKeys...) {
		val, ok := j.FilterOptions[k]
		if k == "filter" {
			val, ok = j.Filter, true
		}
		if !ok {
			continue
		}
		o, via, ok := f.Origin(name, k)
		if !ok || rank(o.Pos) <= bestRank {
			continue
		}
		e := &ValueError{Pos: o.Pos, Section: name, Key: k, Value: val}
		if via != k {
			e.Via, e.ViaValue = via, o.Text
		}
		best, bestRank = e, rank(o.Pos)
	}
	if best == nil {
		return ""
	}
	return strings.TrimSuffix(best.Error(), ": ")
}

func (r jailReader) note(j *Jail, pos ini.Pos, key, msg string) {
	j.Notes = append(j.Notes, fmt.Sprintf("%s: %s: %s", pos, key, msg))
}

// jail reads one jail section, a step for each group of settings. On an
// error the jail read so far is returned with it.
func (r jailReader) jail(name string) (Jail, error) {
	j := Jail{Name: name, Source: r.f.SectionPos(name).String()}
	r.noteKeys(name, &j)
	var err error
	if j.Enabled, err = r.boolean(name, "enabled", false); err != nil {
		return j, err
	}
	filterPos, err := r.filter(name, &j)
	if err != nil {
		return j, err
	}
	if err := r.sources(name, &j, filterPos); err != nil {
		return j, err
	}
	if err := r.counting(name, &j); err != nil {
		return j, err
	}
	if err := r.neverBanned(name, &j); err != nil {
		return j, err
	}
	if err := r.ports(name, &j); err != nil {
		return j, err
	}
	if err := r.actions(name, &j); err != nil {
		return j, err
	}
	if err := r.rateLimit(name, &j); err != nil {
		return j, err
	}
	return j, nil
}

// noteKeys notes the keys xdpban does not use. Unknown keys are reported,
// not refused: fail2ban configurations define helper values for
// %(name)s references in sections too.
func (r jailReader) noteKeys(name string, j *Jail) {
	g := getter{r.f}
	for _, k := range r.f.Keys(name) {
		if jailKeys[k] || strings.HasPrefix(k, "known/") || contains(filterKeys, k) {
			continue
		}
		v, _ := r.f.Own(name, k)
		if why, ok := fail2banOnly[k]; ok {
			if why != "" && strings.TrimSpace(v.Text) != "" {
				r.note(j, v.Pos, k, why)
			}
			continue
		}
		if r.own {
			r.note(j, v.Pos, k, "not an xdpban setting: ignored (a typo?)")
		}
	}
	if !r.own {
		for _, k := range []string{"bantime.formula", "bantime.multipliers", "ignorecommand"} {
			if v, pos, ok, _ := g.get(name, k); ok && strings.TrimSpace(v) != "" && !ownKey(r.f, name, k) {
				r.note(j, pos, k, fail2banOnly[k])
			}
		}
		if v, pos, ok, _ := g.get(name, "bantime.overalljails"); ok {
			if b, _ := parseBool(v); b {
				r.note(j, pos, "bantime.overalljails", fail2banOnly["bantime.overalljails"])
			}
		}
		if v, pos, ok, _ := g.get(name, "usedns"); ok && strings.EqualFold(strings.TrimSpace(v), "yes") {
			r.note(j, pos, "usedns", "xdpban never resolves host names: lines naming a host instead of an address are not counted")
		}
	}
}

// filter reads the filter line and the jail's filter settings; it
// returns where the filter line is, for the sources' errors.
func (r jailReader) filter(name string, j *Jail) (ini.Pos, error) {
	g := getter{r.f}
	fv, fpos, err := g.str(name, "filter", "")
	if err != nil {
		return fpos, err
	}
	j.Filter = strings.TrimSpace(fv)
	if j.Filter == "" {
		return fpos, g.bad(name, "filter", fv, fpos, "no filter: set filter = NAME (a file filter.d/NAME.conf)")
	}
	if j.FilterName, j.FilterArgs, err = ini.ParseSpec(j.Filter); err != nil {
		return fpos, g.bad(name, "filter", fv, fpos, "%v", err)
	}
	if strings.ContainsAny(j.FilterName, "/\\") || strings.HasPrefix(j.FilterName, ".") {
		return fpos, g.bad(name, "filter", fv, fpos, "filter name %q must be a plain name from filter.d, not a path", j.FilterName)
	}
	if !r.own {
		if len(ini.BaseFiles(filepath.Join(r.filterDir, j.FilterName))) == 0 {
			return fpos, g.bad(name, "filter", fv, fpos, "no %s.conf in %s", j.FilterName, r.filterDir)
		}
	}
	for _, k := range filterKeys {
		v, _, ok, err := g.get(name, k)
		if err != nil {
			return fpos, err
		}
		if ok {
			if j.FilterOptions == nil {
				j.FilterOptions = map[string]string{}
			}
			j.FilterOptions[k] = v
		}
	}
	j.FilterWhere = filterWhere(r.f, name, *j)
	if v, pos, ok, err := g.get(name, "maxlines"); err != nil {
		return fpos, err
	} else if ok && strings.TrimSpace(v) != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 1 || n > 1000 {
			return fpos, g.bad(name, "maxlines", v, pos, "want a whole number from 1 to 1000")
		}
	}
	return fpos, nil
}

// logPaths reads logpath: its paths, without fail2ban's head/tail suffix;
// a relative one is refused in xdpban's own configuration, noted in
// fail2ban's. It returns logpath as written, for the sources' errors.
func (r jailReader) logPaths(name string, j *Jail) (string, error) {
	g := getter{r.f}
	lp, _, err := g.str(name, "logpath", "")
	if err != nil {
		return lp, err
	}
	for _, l := range strings.Split(lp, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		// fail2ban's "PATH tail|head" suffix.
		if i := strings.LastIndexAny(l, " \t"); i > 0 {
			if w := l[i+1:]; w == "head" || w == "tail" {
				l = strings.TrimSpace(l[:i])
			}
		}
		if !filepath.IsAbs(l) {
			// The daemon's working directory is no place to look
			// for logs; fail2ban's tree is read as it is.
			v, _ := r.f.Raw(name, "logpath")
			if r.own {
				return lp, g.bad(name, "logpath", lp, v.Pos, "%q is not an absolute path: write e.g. /var/log/auth.log (globs allowed)", l)
			}
			r.note(j, v.Pos, "logpath", fmt.Sprintf("%s is relative: read from the daemon's working directory", l))
		}
		j.LogPaths = append(j.LogPaths, l)
	}
	return lp, nil
}

// sources reads logpath, backend and journalmatch, and settles which
// backend reads the jail's logs (fpos: the filter line, cited when the
// jail names no source at all).
func (r jailReader) sources(name string, j *Jail, fpos ini.Pos) error {
	g := getter{r.f}
	lp, err := r.logPaths(name, j)
	if err != nil {
		return err
	}
	bv, bpos, err := g.str(name, "backend", "auto")
	if err != nil {
		return err
	}
	bname, bargs, err := ini.ParseSpec(bv)
	if strings.TrimSpace(bv) == "" {
		bname, err = "auto", nil
	}
	if err != nil {
		return g.bad(name, "backend", bv, bpos, "%v", err)
	}
	switch strings.ToLower(bname) {
	case "auto":
		j.Backend = "auto"
	case "file", "polling", "pyinotify", "inotify", "gamin":
		j.Backend = "file"
	case "journal", "systemd":
		j.Backend = "journal"
		if len(bargs) > 0 {
			r.note(j, bpos, "backend", fmt.Sprintf("%s arguments not supported: the local journal is read with journalctl", bname))
		}
	default:
		return g.bad(name, "backend", bv, bpos, "want auto, file or journal (fail2ban's systemd is journal, polling/pyinotify are file)")
	}
	jm, jpos, err := g.str(name, "journalmatch", "")
	if err != nil {
		return err
	}
	j.JournalMatch = journalLines(jm)
	if err := validJournalMatch(j.JournalMatch); err != nil {
		return g.bad(name, "journalmatch", jm, jpos, "%v", err)
	}
	if len(j.JournalMatch) == 0 && j.Backend == "journal" && r.filterDir != "" &&
		len(ini.BaseFiles(filepath.Join(r.filterDir, j.FilterName))) > 0 {
		if j.JournalMatch, err = r.filterJournalMatch(*j); err != nil {
			return err
		}
	}
	switch {
	case j.Backend == "journal" && len(j.JournalMatch) == 0:
		return g.bad(name, "backend", bv, bpos, "the journal needs journalmatch (e.g. _SYSTEMD_UNIT=sshd.service + _COMM=sshd) in the jail or its filter")
	case j.Backend == "file" && len(j.LogPaths) == 0:
		return g.bad(name, "logpath", lp, bpos, "backend %s needs logpath", bv)
	case j.Backend == "auto" && len(j.LogPaths) == 0 && len(j.JournalMatch) == 0:
		return g.bad(name, "logpath", lp, fpos, "no logpath and no journalmatch: set one of them")
	}
	if j.Backend != "journal" {
		return r.logFiles(name, j, lp)
	}
	return nil
}

// logFiles checks the files a file backend follows: a directory or a
// device is refused; when none exists yet the jail is noted, or, for a
// distribution default (%(sshd_log)s) with a journalmatch, read from the
// journal instead.
func (r jailReader) logFiles(name string, j *Jail, lp string) error {
	g := getter{r.f}
	var err error
	var missing []string
	for _, l := range j.LogPaths {
		m, _ := filepath.Glob(l)
		if len(m) == 0 {
			missing = append(missing, l)
			continue
		}
		// Followed, a directory yields no line: the jail would
		// look alive and never see a failure. A device or pipe
		// cannot be followed by position (and /dev/zero never
		// ends).
		switch kind := notRegular(m); kind {
		case "":
		case "directory":
			v, _ := r.f.Raw(name, "logpath")
			return g.bad(name, "logpath", lp, v.Pos, "%s is a directory: name the log files in it, e.g. %s", l, filepath.Join(l, "*.log"))
		default:
			v, _ := r.f.Raw(name, "logpath")
			return g.bad(name, "logpath", lp, v.Pos, "%s is a %s, not a log file: name the file the service writes", l, kind)
		}
	}
	if len(j.JournalMatch) == 0 && len(ini.BaseFiles(filepath.Join(r.filterDir, j.FilterName))) > 0 {
		if j.JournalMatch, err = r.filterJournalMatch(*j); err != nil {
			return err
		}
	}
	v, _ := r.f.Raw(name, "logpath")
	switch {
	case len(missing) == 0:
	case len(missing) == len(j.LogPaths) && j.Backend == "auto" && len(j.JournalMatch) > 0 && strings.Contains(v.Text, "%("):
		// A distribution default (%(sshd_log)s) names no file
		// here: fail2ban would refuse the jail; the journal is
		// where such a host logs. A path the operator wrote is
		// followed instead (below), even before it exists.
		j.Backend = "journal"
		// Our own embedded sshd jail does this by design: no note.
		if !r.own {
			r.note(j, v.Pos, "logpath", fmt.Sprintf("no file matches %s: reading the journal (%s) instead", strings.Join(missing, " "), strings.Join(j.JournalMatch, " ")))
		}
	case strings.Contains(v.Text, "%(xdpban_log)s"):
		// xdpban's own ban log (recidive): the daemon creates it.
	default:
		r.note(j, v.Pos, "logpath", fmt.Sprintf("no file matches %s yet (fail2ban would refuse the jail; xdpban watches for it to appear)", strings.Join(missing, " ")))
	}
	return nil
}

// counting reads maxretry, findtime, maxtracked and bantime with its
// increment.
func (r jailReader) counting(name string, j *Jail) error {
	g := getter{r.f}
	var err error
	if j.MaxRetry, err = g.integer(name, "maxretry", 5, 1, 1_000_000); err != nil {
		return err
	}
	if j.FindTime, err = g.duration(name, "findtime", 10*time.Minute, false, false); err != nil {
		return err
	}
	if j.MaxTracked, err = g.integer(name, "maxtracked", DefaultMaxTracked, 1, 100_000_000); err != nil {
		return err
	}
	if j.BanTime, err = g.duration(name, "bantime", 10*time.Minute, true, false); err != nil {
		return err
	}
	if j.BanTime < 0 {
		j.BanTime = -1
	}
	if j.Increment.Enabled, err = g.boolean(name, "bantime.increment", false); err != nil {
		return err
	}
	j.Increment.Factor = 1
	if v, pos, ok, err := g.get(name, "bantime.factor"); err != nil {
		return err
	} else if ok && strings.TrimSpace(v) != "" {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f > 0) || f > 1e6 {
			return g.bad(name, "bantime.factor", v, pos, "want a number above 0 such as 1 or 2.5")
		}
		j.Increment.Factor = f
	}
	if j.Increment.MaxTime, err = g.duration(name, "bantime.maxtime", 0, false, true); err != nil {
		return err
	}
	if j.Increment.RndTime, err = g.duration(name, "bantime.rndtime", 0, false, true); err != nil {
		return err
	}
	return nil
}

// neverBanned reads ignoreip and ignoreself.
func (r jailReader) neverBanned(name string, j *Jail) error {
	g := getter{r.f}
	var err error
	iv, ipos, err := g.str(name, "ignoreip", "")
	if err != nil {
		return err
	}
	for _, w := range splitWords(iv) {
		p, err := parseIgnore(w)
		if err != nil {
			if r.own {
				return g.bad(name, "ignoreip", iv, ipos, "%v", err)
			}
			r.note(j, ipos, "ignoreip", fmt.Sprintf("%q not used: %v", w, err))
			continue
		}
		j.IgnoreIP = append(j.IgnoreIP, p)
	}
	if j.IgnoreSelf, err = g.boolean(name, "ignoreself", true); err != nil {
		return err
	}
	return nil
}

// ports reads port and protocol (actions may narrow or widen the port).
func (r jailReader) ports(name string, j *Jail) error {
	g := getter{r.f}
	pv, ppos, err := g.str(name, "port", "")
	if err != nil {
		return err
	}
	j.Port = strings.Join(strings.Fields(pv), "")
	if err := validPort(j.Port); err != nil {
		return g.bad(name, "port", pv, ppos, "%v", err)
	}
	prv, prpos, err := g.str(name, "protocol", "tcp")
	if err != nil {
		return err
	}
	switch p := strings.ToLower(strings.TrimSpace(prv)); p {
	case "tcp", "udp", "all":
		j.Protocol = p
	case "":
		j.Protocol = "tcp"
	default:
		if r.own {
			return g.bad(name, "protocol", prv, prpos, "want tcp, udp or all")
		}
		r.note(j, prpos, "protocol", fmt.Sprintf("%s not supported: all protocols are banned", p))
		j.Protocol = "all"
	}
	return nil
}

// actions reads action: xdpban's own (mail, webhook, command) are kept,
// fail2ban's are replaced by enforcement, their ports taken as the ban's;
// then the ban scope.
func (r jailReader) actions(name string, j *Jail) error {
	g := getter{r.f}
	av, apos, err := g.str(name, "action", "")
	if err != nil {
		return err
	}
	allPorts := false
	var actPorts []string
	for _, spec := range ini.SplitSpecs(av) {
		kind, args, err := ini.ParseSpec(spec)
		if err != nil {
			return g.bad(name, "action", av, apos, "%v", err)
		}
		switch strings.ToLower(kind) {
		case "mail", "webhook", "command":
			if !r.own {
				// fail2ban has no such actions; a name clash with an
				// action.d file is still fail2ban's action.
				j.Replaced = append(j.Replaced, oneLine(spec))
				continue
			}
			j.Actions = append(j.Actions, Action{Kind: strings.ToLower(kind), Options: args})
			continue
		}
		j.Replaced = append(j.Replaced, oneLine(spec))
		if strings.Contains(kind, "allports") || args["type"] == "allports" {
			allPorts = true
		}
		if p, ok := args["port"]; ok {
			actPorts = append(actPorts, strings.Join(strings.Fields(p), ""))
		}
	}
	if len(j.Replaced) > 0 {
		r.note(j, apos, "action", fmt.Sprintf("replaced by xdpban's enforcement, not executed: %s", strings.Join(j.Replaced, "; ")))
	}
	switch {
	case allPorts:
		j.Port = ""
	case len(actPorts) > 0 && validPort(actPorts[0]) == nil && allSame(actPorts):
		j.Port = actPorts[0]
	}
	if j.Port == "0:65535" {
		j.Port = ""
	}
	if err := r.banScope(j, allPorts); err != nil {
		return err
	}
	return nil
}

// rateLimit reads ratelimit and ratelimit.banafter.
func (r jailReader) rateLimit(name string, j *Jail) error {
	g := getter{r.f}
	var err error
	rv, rpos, err := g.str(name, "ratelimit", "")
	if err != nil {
		return err
	}
	if strings.TrimSpace(rv) != "" {
		if j.RateLimit, err = parseRateLimit(rv); err != nil {
			return g.bad(name, "ratelimit", rv, rpos, "%v", err)
		}
		if j.RateLimit.BanAfter, err = g.duration(name, "ratelimit.banafter", 0, false, true); err != nil {
			return err
		}
	} else if v, pos, ok, _ := g.get(name, "ratelimit.banafter"); ok && strings.TrimSpace(v) != "" {
		return g.bad(name, "ratelimit.banafter", v, pos, "needs ratelimit = N/period to be set")
	}
	return nil
}

// banScope sets j.BanScope and j.Scope. An explicit banscope wins; else
// xdpban's own configuration bans all traffic, and a fail2ban jail keeps
// the scope its firewall action had: an *-allports action (banaction, or
// one named in action) every port, a multiport one only the jail's ports.
func (r jailReader) banScope(j *Jail, allPortsAction bool) error {
	g := getter{r.f}
	v, pos, ok, err := g.get(j.Name, "banscope")
	if err != nil {
		return err
	}
	switch mode := strings.ToLower(strings.TrimSpace(v)); {
	case ok && (mode == "all" || mode == "port"):
		j.BanScope = mode
	case ok && mode != "":
		return g.bad(j.Name, "banscope", v, pos, "want all (every packet of a banned address) or port (only the jail's port and protocol)")
	case r.own:
		j.BanScope = "all"
	default:
		j.BanScope = "port"
		if allPortsAction || isAllPortsAction(g, j.Name) {
			j.BanScope = "all"
		}
	}
	if j.BanScope == "all" {
		j.Scope = bans.Scope{}
		return nil
	}
	sc, err := bans.ParseScope(j.Protocol, j.Port)
	if err != nil {
		if r.own {
			return g.bad(j.Name, "port", j.Port, pos, "banscope = port: %v", err)
		}
		// fail2ban would have failed the ban action; banning all of the
		// address is the safe side of a scope that cannot be read.
		r.note(j, pos, "port", fmt.Sprintf("%v: banning all traffic of banned addresses", err))
		j.BanScope, j.Scope = "all", bans.Scope{}
		return nil
	}
	j.Scope = sc
	if sc.All() {
		j.Scope = bans.Scope{}
	}
	return nil
}

// isAllPortsAction reports whether a fail2ban jail's banaction is an
// all-ports action: iptables-allports, or nftables[type=allports].
func isAllPortsAction(g getter, jail string) bool {
	v, _, ok, err := g.get(jail, "banaction")
	if !ok || err != nil {
		return false
	}
	for _, spec := range ini.SplitSpecs(v) {
		kind, args, err := ini.ParseSpec(spec)
		if err != nil {
			continue
		}
		if strings.HasSuffix(strings.ToLower(kind), "-allports") || args["type"] == "allports" {
			return true
		}
	}
	return false
}

func ownKey(f *ini.File, sec, key string) bool {
	_, ok := f.Own(sec, key)
	return ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func allSame(l []string) bool {
	for _, x := range l {
		if x != l[0] {
			return false
		}
	}
	return true
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// journalField is a journal field name as journalctl takes it in a match.
var journalField = regexp.MustCompile(`^[A-Z0-9_]+=`)

// validJournalMatch checks journalmatch terms: FIELD=value, "+" for OR.
func validJournalMatch(lines []string) error {
	for _, l := range lines {
		for _, t := range strings.Fields(l) {
			if t != "+" && !journalField.MatchString(t) {
				return fmt.Errorf("%q is not a journal match: write FIELD=value terms (upper-case field names such as _SYSTEMD_UNIT=sshd.service), + between alternatives", t)
			}
		}
	}
	return nil
}

func journalLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// filterJournalMatch is the journalmatch fail2ban would use for a jail
// without its own: the filter arguments, then the filter's [Init], then
// its [Definition].
func (r jailReader) filterJournalMatch(j Jail) ([]string, error) {
	if v, ok := j.FilterArgs["journalmatch"]; ok {
		return journalLines(v), nil
	}
	ff, err := ini.LoadBase(filepath.Join(r.filterDir, j.FilterName))
	if err != nil {
		return nil, fmt.Errorf("jail %s: filter %s: %w", j.Name, j.FilterName, err)
	}
	for _, sec := range []string{"Init", "Definition"} {
		if _, ok := ff.Own(sec, "journalmatch"); !ok {
			continue
		}
		v, err := ff.GetVars(sec, "journalmatch", j.FilterArgs)
		if err != nil {
			return nil, fmt.Errorf("jail %s: filter %s: %w", j.Name, j.FilterName, err)
		}
		if err := validJournalMatch(journalLines(v)); err != nil {
			pos, _ := ff.Raw(sec, "journalmatch")
			return nil, fmt.Errorf("%s: filter %s journalmatch: %w", pos.Pos, j.FilterName, err)
		}
		return journalLines(v), nil
	}
	return nil, nil
}

// parseIgnore reads one ignoreip entry: an address (a single host) or a
// CIDR; IPv4-mapped IPv6 is unmapped.
func parseIgnore(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: write e.g. 192.0.2.0/24 or 2001:db8::/32", s)
		}
		a, bits := p.Addr(), p.Bits()
		if a.Is4In6() {
			a, bits = a.Unmap(), max(bits-96, 0)
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR (xdpban never resolves host names): write e.g. 192.0.2.7 or 2001:db8::/64", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// jailChain is the netfilter chain a fail2ban jail bans in when it names
// one of its own (chain = DOCKER-USER protects containers); "" for the
// actions' default (<known/chain>, INPUT).
func (r jailReader) jailChain(j *Jail) string {
	v, pos, ok, err := getter{r.f}.get(j.Name, "chain")
	v = strings.TrimSpace(v)
	if !ok || err != nil || v == "" || strings.ContainsAny(v, "<>") || v == "INPUT" || !chainRE.MatchString(v) {
		return ""
	}
	r.note(j, pos, "chain", fmt.Sprintf("xdpban's iptables backend bans in daemon-wide chains: %s added to them (XDP drops before any chain)", v))
	return v
}
