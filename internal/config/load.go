package config

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xdpban/xdpban/internal/config/ini"
)

// DefaultDir is xdpban's configuration directory.
const DefaultDir = "/etc/xdpban"

// DefaultFail2banDir is where fail2ban's configuration lives.
const DefaultFail2banDir = "/etc/fail2ban"

// ErrInvalid is wrapped by every refused value.
var ErrInvalid = errors.New("invalid configuration")

// defaultsFS holds the shipped xdpban.conf and jail.conf: the base layer
// under the operator's files, and what `make install` copies.
//
//go:embed defaults/xdpban.conf defaults/jail.conf
var defaultsFS embed.FS

// authLog decides the default sshd jail's source: this file when it
// exists, the journal otherwise. A variable so tests can point it away.
var authLog = "/var/log/auth.log"

// ValueError is one refused value: where it was read and why.
type ValueError struct {
	Pos     ini.Pos
	Section string
	Key     string
	Value   string
	Reason  string
	// Via is the key set at Pos when it is not Key: one Key's value
	// interpolates (%(mode)s), set in a later file than Key itself.
	Via, ViaValue string
}

func (e *ValueError) Error() string {
	clip := func(v string) string {
		if len(v) > 80 {
			return v[:77] + "..."
		}
		return v
	}
	// One line whatever the reason quotes.
	r := strings.ReplaceAll(e.Reason, "\n", `\n`)
	if e.Via != "" {
		return fmt.Sprintf("%s: [%s] %s = %q, used in %s = %q: %s", e.Pos, e.Section, e.Via, clip(e.ViaValue), e.Key, clip(e.Value), r)
	}
	return fmt.Sprintf("%s: [%s] %s = %q: %s", e.Pos, e.Section, e.Key, clip(e.Value), r)
}

func (e *ValueError) Unwrap() error { return ErrInvalid }

// Load reads xdpban's own configuration from dir: xdpban.conf (+ .local,
// xdpban.d/) for the daemon and jail.conf, jail.d/*.conf, jail.local,
// jail.d/*.local for the jails. A file absent from dir falls back to the
// shipped one (so a directory holding only jail.local works). dir == ""
// means the shipped defaults alone. Any bad value fails the whole load
// with a "file:line: [section] key = value: reason" error.
func Load(dir string) (*Config, error) {
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("configuration directory %s: %w: create it or pass --config", dir, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("configuration directory %s is not a directory: %w", dir, ErrInvalid)
		}
	}
	c := &Config{}
	df, err := loadTree(dir, "xdpban", nil)
	if err != nil {
		return nil, err
	}
	c.Files = append(c.Files, df.Files()...)
	if c.Daemon, err = parseDaemon(df); err != nil {
		return nil, err
	}
	banlog := c.Daemon.BanLog
	if banlog == "" || banlog == "none" {
		// No ban log is written; recidive, if enabled, reads the
		// default place (where an earlier configuration wrote).
		banlog = "/var/log/xdpban/xdpban.log"
	}
	extra := map[string]string{"xdpban_log": banlog}
	// auto, not journal, even without an auth.log: a jail.local that
	// points sshd at another file must read that file. A jail whose
	// files are all missing turns to the journal when it resolves.
	extra["sshd_log"], extra["sshd_backend"] = authLog, "auto"
	jf, err := loadTree(dir, "jail", extra)
	if err != nil {
		return nil, err
	}
	c.Files = append(c.Files, jf.Files()...)
	r := jailReader{f: jf, own: true}
	if dir != "" {
		r.filterDir = filepath.Join(dir, "filter.d")
	}
	for _, name := range jf.Sections() {
		if name == ini.Includes {
			continue
		}
		j, err := r.jail(name)
		if err != nil {
			return nil, err
		}
		c.Jails = append(c.Jails, j)
	}
	if dir != "" {
		c.FilterDirs = []string{filepath.Join(dir, "filter.d")}
	}
	return c, nil
}

// LoadDaemon reads only the daemon settings of xdpban's configuration in
// dir ("" for the shipped defaults); for use with LoadFail2ban, whose tree
// has no [xdpban] section.
func LoadDaemon(dir string) (Daemon, error) {
	df, err := loadTree(dir, "xdpban", nil)
	if err != nil {
		return Daemon{}, err
	}
	return parseDaemon(df)
}

// notRegular says what the paths are when none is a regular file
// ("directory", "device", "named pipe", "socket"), "" otherwise.
func notRegular(paths []string) string {
	kind := ""
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || st.Mode().IsRegular() || p == os.DevNull {
			// /dev/null: a jail that reads nothing (tests, a
			// placeholder); harmless.
			return ""
		}
		switch t := st.Mode().Type(); {
		case t&os.ModeDir != 0:
			kind = "directory"
		case t&os.ModeNamedPipe != 0:
			kind = "named pipe"
		case t&os.ModeSocket != 0:
			kind = "socket"
		default:
			kind = "device"
		}
	}
	return kind
}

// checkFileKinds refuses a directory where base.conf, base.local or a
// base.d/*.conf|*.local file is expected, and a base.d that is not a
// directory: read as "no such file", the operator's settings would be
// silently left out (a jail.local made with mkdir by mistake).
func checkFileKinds(base string) error {
	files := []string{base + ".conf", base + ".local"}
	if st, err := os.Stat(base + ".d"); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s.d is a file, not a directory: move it aside (files in it are read as %s.d/*.conf and *.local): %w", base, filepath.Base(base), ErrInvalid)
		}
		ents, err := os.ReadDir(base + ".d")
		if err != nil {
			return fmt.Errorf("read %s.d: %w", base, err)
		}
		for _, e := range ents {
			if n := e.Name(); !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".conf") || strings.HasSuffix(n, ".local")) {
				files = append(files, filepath.Join(base+".d", n))
			}
		}
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err == nil && st.IsDir() {
			return fmt.Errorf("%s is a directory where a configuration file is expected: remove or rename it: %w", f, ErrInvalid)
		}
		if err != nil {
			// A dangling symlink (its target on a filesystem not
			// mounted) would read as "no such file" and the shipped
			// defaults would run instead of the operator's jails.
			if target, lerr := os.Readlink(f); lerr == nil {
				return fmt.Errorf("%s links to %s, which cannot be read (%w): restore it or remove the link: %w", f, target, err, ErrInvalid)
			}
		}
	}
	return nil
}

// loadTree layers dir/base.{conf,d,local} over the shipped base.conf
// (used only when dir has no base.conf). extra are [DEFAULT] values set
// below everything, for the shipped files' %(name)s references.
func loadTree(dir, base string, extra map[string]string) (*ini.File, error) {
	f := ini.New()
	for k, v := range extra {
		f.Set(ini.Default, k, v, ini.Pos{File: "(xdpban)"})
	}
	var files []string
	if dir != "" {
		if err := checkFileKinds(filepath.Join(dir, base)); err != nil {
			return nil, err
		}
		files = ini.BaseFiles(filepath.Join(dir, base))
	}
	if dir == "" || len(files) == 0 || files[0] != filepath.Join(dir, base+".conf") {
		emb, err := defaultsFS.ReadFile("defaults/" + base + ".conf")
		if err != nil {
			return nil, fmt.Errorf("shipped %s.conf: %w", base, err)
		}
		p, err := ini.Parse("(built-in)/"+base+".conf", emb)
		if err != nil {
			return nil, fmt.Errorf("shipped %s.conf: %w", base, err)
		}
		f.Merge(p)
	}
	if len(files) > 0 {
		g, err := ini.Load(files...)
		if err != nil {
			return nil, err
		}
		f.Merge(g)
	}
	return f, nil
}

// LoadFail2ban reads fail2ban's own tree (dir, normally /etc/fail2ban) as
// fail2ban does: jail.conf with its [INCLUDES] (paths-*.conf), jail.d/,
// jail.local, %(known/…)s. Enabled jails are translated; their
// banaction/action lines go to Jail.Replaced, never executed. A jail that
// cannot be translated goes to Config.Broken and the others load, as
// fail2ban skips a broken jail and starts the rest. The daemon settings
// are xdpban's defaults with fail2ban.conf's dbpurgeage; use LoadDaemon
// to take them from xdpban's own directory instead.
func LoadFail2ban(dir string) (*Config, error) {
	if _, err := os.Stat(filepath.Join(dir, "jail.conf")); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, "jail.local")); err2 != nil {
			return nil, fmt.Errorf("fail2ban configuration %s: no jail.conf or jail.local: %w", dir, err)
		}
	}
	c := &Config{FilterDirs: []string{filepath.Join(dir, "filter.d")}}
	var err error
	if c.Daemon, err = LoadDaemon(""); err != nil {
		return nil, err
	}
	fail2banLog := "/var/log/fail2ban.log"
	if ff, err := ini.LoadBase(filepath.Join(dir, "fail2ban")); err == nil {
		c.Files = append(c.Files, ff.Files()...)
		if v, err := ff.Get("Definition", "logtarget"); err == nil && filepath.IsAbs(strings.TrimSpace(v)) {
			fail2banLog = strings.TrimSpace(v)
		}
		if v, ok := ff.Raw("Definition", "dbpurgeage"); ok {
			s, err := ff.Get("Definition", "dbpurgeage")
			if err != nil {
				return nil, err
			}
			d, err := ParseDuration(s)
			if err != nil || d < 0 {
				return nil, &ValueError{Pos: v.Pos, Section: "Definition", Key: "dbpurgeage", Value: s, Reason: "want a duration such as 1d"}
			}
			c.Daemon.DBPurgeAge = d
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	jf := ini.New()
	// What fail2ban's JailReader adds before interpolating.
	jf.Set(ini.Default, "fail2ban_version", "xdpban", ini.Pos{File: "(xdpban)"})
	jf.Set(ini.Default, "fail2ban_confpath", dir, ini.Pos{File: "(xdpban)"})
	g, err := ini.LoadBase(filepath.Join(dir, "jail"))
	if err != nil {
		return nil, err
	}
	jf.Merge(g)
	c.Files = append(c.Files, jf.Files()...)
	r := jailReader{f: jf, own: false, filterDir: filepath.Join(dir, "filter.d")}
	for _, name := range jf.Sections() {
		if name == ini.Includes {
			continue
		}
		src := jf.SectionPos(name).String()
		en, err := r.boolean(name, "enabled", false)
		if err != nil {
			c.Broken = append(c.Broken, BrokenJail{Name: name, Source: src, Err: err})
			continue
		}
		if !en {
			// fail2ban reads nothing more of a disabled jail.
			c.Jails = append(c.Jails, Jail{Name: name, Source: src})
			continue
		}
		j, err := r.jail(name)
		if err != nil {
			c.Broken = append(c.Broken, BrokenJail{Name: name, Enabled: true, Source: src, Err: err})
			continue
		}
		redirectRecidive(&j, fail2banLog, c.Daemon.BanLog)
		if ch := r.jailChain(&j); ch != "" && !contains(c.jailChains, ch) {
			c.jailChains = append(c.jailChains, ch)
		}
		c.Jails = append(c.Jails, j)
	}
	c.addJailChains()
	return c, nil
}

// addJailChains adds the chains fail2ban jails named to the daemon's.
func (c *Config) addJailChains() {
	for _, ch := range c.jailChains {
		if !contains(c.Daemon.Chains, ch) {
			c.Daemon.Chains = append(c.Daemon.Chains, ch)
		}
	}
}

// redirectRecidive points a recidive jail reading fail2ban's own log at
// xdpban's ban log (same line format): once xdpban replaces fail2ban,
// nothing writes Ban lines to fail2ban.log any more.
func redirectRecidive(j *Jail, f2bLog, banLog string) {
	if j.FilterName != "recidive" || banLog == "" || banLog == "none" || f2bLog == "" {
		return
	}
	for i, p := range j.LogPaths {
		if filepath.Clean(p) == filepath.Clean(f2bLog) {
			j.LogPaths[i] = banLog
			j.Notes = append(j.Notes, fmt.Sprintf("%s: logpath: %s is fail2ban's log: reading xdpban's ban log %s instead (same line format)", j.Source, p, banLog))
		}
	}
}

// SetDaemon replaces the daemon settings (e.g. LoadDaemon's, over
// LoadFail2ban's defaults), keeping the chains fail2ban jails named and
// moving recidive jails that read the old ban log to the new one.
func (c *Config) SetDaemon(d Daemon) {
	old := c.Daemon.BanLog
	c.Daemon = d
	c.Daemon.Chains = append([]string(nil), d.Chains...)
	c.addJailChains()
	if old == "" || old == "none" || d.BanLog == "" || d.BanLog == "none" || old == d.BanLog {
		return
	}
	for i := range c.Jails {
		j := &c.Jails[i]
		if j.FilterName != "recidive" {
			continue
		}
		for k, p := range j.LogPaths {
			if p == old {
				j.LogPaths[k] = d.BanLog
			}
		}
	}
}

// Enabled returns the enabled jails.
func (c *Config) Enabled() []Jail {
	var out []Jail
	for _, j := range c.Jails {
		if j.Enabled {
			out = append(out, j)
		}
	}
	return out
}

// Jail returns the named jail.
func (c *Config) Jail(name string) (Jail, bool) {
	for _, j := range c.Jails {
		if j.Name == name {
			return j, true
		}
	}
	return Jail{}, false
}

// --- values ---------------------------------------------------------------

// --- daemon -----------------------------------------------------------------

// --- jails ------------------------------------------------------------------
