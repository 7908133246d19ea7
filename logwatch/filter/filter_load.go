package filter

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/xdpban/xdpban/internal/config/ini"
)

// shipped holds xdpban's own filters, searched after the configured
// directories so that an operator's filter.d always wins.
//
//go:embed filter.d
var shipped embed.FS

// ErrNotFound: no directory (nor the shipped set) has the named filter.
var ErrNotFound = errors.New("filter not found")

// Shipped lists the names of the embedded filters.
func Shipped() []string {
	ents, _ := fs.ReadDir(shipped, "filter.d")
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".conf") && n != "common.conf" {
			out = append(out, strings.TrimSuffix(n, ".conf"))
		}
	}
	return out
}

// Load reads a filter the way fail2ban's FilterReader does. spec is
// "name", "name[mode=aggressive, key=value]" or a path to a filter file
// (optionally with [args]). dirs are configuration roots (holding
// filter.d/) or filter.d directories themselves, searched in order;
// the shipped filters come last. vars are options the jail passes (e.g.
// logtype); the spec's own arguments override them.
func Load(dirs []string, spec string, vars map[string]string) (*Filter, error) {
	name, args, err := ini.ParseSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFilter, err)
	}
	opts := map[string]string{}
	for k, v := range vars {
		opts[strings.ToLower(k)] = v
	}
	for k, v := range args {
		opts[strings.ToLower(k)] = v
	}
	file, source, err := readFilterFile(dirs, name)
	if err != nil {
		return nil, err
	}
	fname := strings.TrimSuffix(filepath.Base(name), ".conf")
	fs, err := resolveFilter(file, fname, source, opts)
	if err != nil {
		return nil, err
	}
	return compileFilter(fs)
}

func readFilterFile(dirs []string, name string) (*ini.File, string, error) {
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".local") {
		base := strings.TrimSuffix(strings.TrimSuffix(name, ".conf"), ".local")
		f, err := ini.LoadBase(base)
		if err != nil {
			return nil, "", fmt.Errorf("%w: filter file %s: %w", ErrNotFound, name, err)
		}
		return f, base + ".conf", nil
	}
	if strings.ContainsAny(name, `\ `) || name == "." || name == ".." {
		return nil, "", fmt.Errorf("%w: bad filter name %q: use a name from filter.d (e.g. sshd) or a path to a .conf file", ErrFilter, name)
	}
	for _, d := range dirs {
		for _, base := range []string{filepath.Join(d, "filter.d", name), filepath.Join(d, name)} {
			// A directory in the file's place would otherwise be
			// passed over for the shipped filter of the same name.
			for _, p := range []string{base + ".conf", base + ".local"} {
				st, err := os.Stat(p)
				if err == nil && st.IsDir() {
					return nil, "", fmt.Errorf("%w %s: %s is a directory where the filter file is expected: remove or rename it", ErrFilter, name, p)
				}
				if target, lerr := os.Readlink(p); err != nil && lerr == nil {
					return nil, "", fmt.Errorf("%w %s: %s links to %s, which cannot be read (%w): restore it or remove the link", ErrFilter, name, p, target, err)
				}
			}
			if len(ini.BaseFiles(base)) == 0 {
				continue
			}
			f, err := ini.LoadBase(base)
			if err != nil {
				return nil, "", fmt.Errorf("%w %s: %w", ErrFilter, name, err)
			}
			return f, ini.BaseFiles(base)[0], nil
		}
	}
	f, err := loadShipped(name+".conf", nil)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("%w: %q is not in %s nor among the shipped filters (%s): check the jail's filter = line", ErrNotFound, name, strings.Join(dirs, ", "), strings.Join(Shipped(), ", "))
		}
		return nil, "", err
	}
	return f, "embedded:filter.d/" + name + ".conf", nil
}

// loadShipped reads an embedded filter with its [INCLUDES].
func loadShipped(file string, chain []string) (*ini.File, error) {
	for _, c := range chain {
		if c == file {
			return ini.New(), nil
		}
	}
	data, err := shipped.ReadFile(path.Join("filter.d", file))
	if err != nil {
		return nil, err
	}
	self, err := ini.Parse("embedded:filter.d/"+file, data)
	if err != nil {
		return nil, err
	}
	out := ini.New()
	var after []string
	for _, which := range []string{"before", "after"} {
		if _, ok := self.Own(ini.Includes, which); !ok {
			continue
		}
		list, err := self.Get(ini.Includes, which)
		if err != nil {
			return nil, err
		}
		for _, inc := range strings.Split(list, "\n") {
			inc = strings.TrimSpace(inc)
			if inc == "" {
				continue
			}
			if which == "after" {
				after = append(after, inc)
				continue
			}
			g, err := loadShipped(inc, append(chain, file))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // like fail2ban: a missing include is skipped
				}
				return nil, err
			}
			out.Merge(g)
		}
	}
	out.Merge(self)
	for _, inc := range after {
		g, err := loadShipped(inc, append(chain, file))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out.Merge(g)
	}
	return out, nil
}

var filterOpts = []string{"usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch"}

// resolveFilter is fail2ban's DefinitionInitConfigReader.getOptions +
// getCombined: [Definition] options interpolated with the jail's
// arguments, [Init] values added, then <tag> substitution.
func resolveFilter(f *ini.File, name, source string, args map[string]string) (filterSpec, error) {
	if !f.Has("Definition") {
		return filterSpec{}, fmt.Errorf("%w %s (%s): no [Definition] section: a filter file needs one with failregex", ErrFilter, name, source)
	}
	init := map[string]string{}
	for k, v := range args {
		init[k] = v
	}
	opts := map[string]string{}
	for _, o := range filterOpts {
		if _, ok := f.Raw("Definition", o); !ok {
			continue
		}
		v, err := f.GetVars("Definition", o, args)
		if err != nil {
			return filterSpec{}, fmt.Errorf("%w %s: %w", ErrFilter, name, err)
		}
		opts[o] = v
	}
	if f.Has("Init") {
		for _, k := range f.Keys("Init") {
			if strings.HasPrefix(k, "known/") {
				continue
			}
			v, err := f.Get("Init", k)
			if err != nil {
				return filterSpec{}, fmt.Errorf("%w %s: %w", ErrFilter, name, err)
			}
			init["known/"+k] = v
			if _, ok := init[k]; !ok {
				init[k] = v
			}
		}
	}
	for k, v := range init {
		opts[k] = v
	}
	// fail2ban's getCombOption/get_ex: "sec/opt" is read (and
	// interpolated) in section sec; plain names in [Definition] with the
	// jail's arguments.
	lookup := func(tag string) (string, bool) {
		if m := secOptRE.FindStringSubmatch(tag); m != nil {
			switch strings.ToLower(m[1]) {
			case "known":
				if v, err := f.Interpolate("Definition", "%("+tag+")s", nil); err == nil {
					return v, true
				}
			case "default":
				if v, err := f.Get(ini.Default, m[2]); err == nil {
					return v, true
				}
			default:
				if f.Has(m[1]) {
					if v, err := f.Get(m[1], m[2]); err == nil {
						return v, true
					}
				}
			}
		}
		if _, ok := f.Raw("Definition", tag); !ok {
			return "", false
		}
		v, err := f.GetVars("Definition", tag, args)
		if err != nil {
			return "", false
		}
		return v, true
	}
	opts, err := substituteTags(opts, lookup)
	if err != nil {
		return filterSpec{}, fmt.Errorf("%w %s (%s): %w", ErrFilter, name, source, err)
	}
	s := filterSpec{name: name, source: source, useDNS: true, maxlines: 1}
	lines := func(v string) []string {
		var out []string
		for _, l := range strings.Split(v, "\n") {
			if strings.TrimSpace(l) != "" {
				out = append(out, l)
			}
		}
		return out
	}
	s.failregex = lines(opts["failregex"])
	if _, fromJail := args["failregex"]; !fromJail {
		if v, ok := f.Raw("Definition", "failregex"); ok && v.Pos.File != "" {
			s.failPos = v.Pos.String()
		}
	}
	for i, l := range s.failregex {
		// fail2ban leaves an undefined <name> as text; a whole line of
		// it is an argument naming what the filter lacks (sshd's
		// <mdre-<mode>> with mode = extreme), not a regex to report as
		// "has no <HOST>".
		if m := undefinedTagRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			return filterSpec{}, fmt.Errorf("%w %s (%s): failregex %d is <%s>, which the filter does not define: check the filter's arguments%s", ErrFilter, name, source, i+1, m[1], argText(args))
		}
	}
	s.ignoreregex = lines(opts["ignoreregex"])
	s.prefregex = strings.TrimSpace(opts["prefregex"])
	s.datepattern = opts["datepattern"]
	s.journalmatch = lines(opts["journalmatch"])
	if v := strings.TrimSpace(opts["maxlines"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return filterSpec{}, fmt.Errorf("%w %s (%s): maxlines %q: want a whole number of lines >= 1", ErrFilter, name, source, v)
		}
		s.maxlines = n
	}
	switch strings.ToLower(strings.TrimSpace(opts["usedns"])) {
	case "no", "false", "0", "raw":
		s.useDNS = false
	}
	return s, nil
}

// argText is a filter's arguments for an error message: " (mode=x)".
func argText(args map[string]string) string {
	if len(args) == 0 {
		return ""
	}
	var kv []string
	for k, v := range args {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return " (" + strings.Join(kv, ", ") + ")"
}

var (
	// undefinedTagRE is a line that is only an option reference: regex
	// tags (<HOST>, <F-USER>) are upper case, option names are not.
	undefinedTagRE = regexp.MustCompile(`^<([^ <>]*[a-z][^ <>]*)>$`)
	tagRE          = regexp.MustCompile(`<([^ <>]+)>`)
	secOptRE       = regexp.MustCompile(`^([\w\-]+)/([^\s>]+)$`)
)

const maxTagReplace = 25

// substituteTags is fail2ban's substituteRecursiveTags: every <name> whose
// name is another option (or resolvable through lookup) is replaced, until
// nothing changes; unknown tags (<HOST>) stay.
func substituteTags(in map[string]string, lookup func(string) (string, bool)) (map[string]string, error) {
	tags := make(map[string]string, len(in))
	keys := make([]string, 0, len(in))
	for k, v := range in {
		tags[k] = v
		keys = append(keys, k)
	}
	sort.Strings(keys)
	done := map[string]bool{}
	counts := map[string]map[string]int{}
	for round := 0; round < 100; round++ {
		again := false
		for _, tag := range keys {
			if done[tag] {
				continue
			}
			value := tags[tag]
			orig := value
			rc := counts[tag]
			if rc == nil {
				rc = map[string]int{}
			}
			pos := 0
			for {
				loc := tagRE.FindStringSubmatchIndex(value[pos:])
				if loc == nil {
					break
				}
				mStart, mEnd := pos+loc[0], pos+loc[1]
				rtag := value[pos+loc[2] : pos+loc[3]]
				if rtag == tag || rc[rtag] > maxTagReplace {
					return nil, fmt.Errorf("option %s refers to itself through <%s>: break the loop", tag, rtag)
				}
				repl, ok := tags[rtag]
				if !ok {
					repl, ok = lookup(rtag)
				}
				if !ok {
					pos = mEnd
					continue
				}
				value = strings.ReplaceAll(value, "<"+rtag+">", repl)
				rc[rtag]++
				pos = mStart
			}
			if value != orig {
				if tagRE.MatchString(value) {
					counts[tag] = rc
					again = true
				}
				tags[tag] = value
			}
			if !strings.Contains(value, "<") {
				done[tag] = true
			}
		}
		if !again {
			break
		}
	}
	return tags, nil
}
