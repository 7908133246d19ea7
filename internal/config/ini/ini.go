// Package ini reads fail2ban's configuration dialect exactly as fail2ban's
// configparser-based reader does, so that an existing /etc/fail2ban tree
// (and every jail.local written for it) means the same thing to xdpban.
//
// The dialect is Python's ConfigParser as fail2ban configures it:
//   - "[Section]" headers; option names are case-insensitive (lowered),
//     section names are not;
//   - "key = value" or "key: value" (the first '=' or ':' splits);
//   - a value continues on following lines indented deeper than its key;
//     blank lines inside a value are kept, trailing ones dropped;
//   - full-line comments start with '#' or ';'; inline comments only with
//     ';' preceded by whitespace (" #" is NOT a comment: regexes use '#');
//   - [DEFAULT] values are visible from every section;
//   - %(name)s interpolation, %% for a literal '%', %(__name__)s for the
//     section name, %(section/name)s, %(default/name)s and %(known/name)s
//     (the value this key had before the current file overrode it);
//   - [INCLUDES] before/after lists (relative to the including file), each
//     included X.conf followed by X.local when it exists;
//   - NAME.conf, NAME.d/*.conf, NAME.local, NAME.d/*.local, in that order
//     (LoadBase), later files overriding earlier ones key by key.
//
// Every key keeps the file:line it was read from so later validation
// errors can point at it.
package ini

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Default is the name of the section every other section inherits from.
const Default = "DEFAULT"

// Includes is the section holding before/after include lists.
const Includes = "INCLUDES"

// Sentinel errors callers branch on (wrapped in *Error).
var (
	ErrSyntax        = errors.New("syntax error")
	ErrNoSection     = errors.New("no such section")
	ErrNoOption      = errors.New("no such option")
	ErrInterpolation = errors.New("bad interpolation")
)

// Pos is where a section header or key was read.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.File == "" {
		return "<input>"
	}
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is a parse or interpolation error located at a file:line.
type Error struct {
	Pos Pos
	Msg string
	Err error // one of the sentinels
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func errAt(p Pos, sentinel error, format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// Value is one raw (uninterpolated) value and where it was set.
type Value struct {
	Text string
	Pos  Pos
}

type section struct {
	name  string
	pos   Pos
	vals  map[string]Value
	order []string
}

func newSection(name string, pos Pos) *section {
	return &section{name: name, pos: pos, vals: map[string]Value{}}
}

func (s *section) set(key string, v Value) {
	if _, ok := s.vals[key]; !ok {
		s.order = append(s.order, key)
	}
	s.vals[key] = v
}

func (s *section) clone() *section {
	c := newSection(s.name, s.pos)
	for _, k := range s.order {
		c.set(k, s.vals[k])
	}
	return c
}

// File is a merged configuration: one or more files read in order.
type File struct {
	defaults *section
	sections map[string]*section
	order    []string
	// known holds, per section, the values a later file replaced: what
	// %(known/x)s refers to.
	known map[string]*section
	files []string
}

// New returns an empty configuration.
func New() *File {
	return &File{
		defaults: newSection(Default, Pos{}),
		sections: map[string]*section{},
		known:    map[string]*section{},
	}
}

// Parse reads one file's text without following its includes.
func Parse(name string, data []byte) (*File, error) {
	f := New()
	if err := f.parse(name, data); err != nil {
		return nil, err
	}
	f.files = []string{name}
	return f, nil
}

// inlineCommentStart finds a ';' at the line start or after whitespace,
// as ConfigParser(inline_comment_prefixes=";") does.
func inlineCommentStart(line string) int {
	for i := 0; i < len(line); i++ {
		if line[i] != ';' {
			continue
		}
		if i == 0 {
			return 0
		}
		r, _ := utf8.DecodeLastRuneInString(line[:i])
		if unicode.IsSpace(r) {
			return i
		}
	}
	return -1
}

func splitLines(data []byte) []string {
	s := string(data)
	s = strings.TrimPrefix(s, "\ufeff")
	// Python's universal newlines.
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func (f *File) parse(name string, data []byte) error {
	if !utf8.Valid(data) {
		return errAt(Pos{File: name}, ErrSyntax, "not valid UTF-8: save the file as UTF-8")
	}
	type pending struct {
		sec   *section
		key   string
		lines []string
		pos   Pos
	}
	var (
		cur       *section
		curName   string
		opt       *pending
		indent    int
		seenSect  = map[string]bool{}
		seenOpt   = map[string]bool{}
		firstErr  error
		finishOpt = func(p *pending) {
			if p == nil {
				return
			}
			v := strings.Join(p.lines, "\n")
			v = strings.TrimRightFunc(v, unicode.IsSpace)
			p.sec.set(p.key, Value{Text: v, Pos: p.pos})
		}
	)
	for i, line := range splitLines(data) {
		pos := Pos{File: name, Line: i + 1}
		cut := inlineCommentStart(line)
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
			cut = 0
		}
		value := line
		if cut >= 0 {
			value = line[:cut]
		}
		value = strings.TrimSpace(value)
		if value == "" {
			// A blank line inside a value is kept (trimmed at the end);
			// a comment line is dropped.
			if cut < 0 && opt != nil {
				opt.lines = append(opt.lines, "")
			}
			continue
		}
		lvl := strings.IndexFunc(line, func(r rune) bool { return !unicode.IsSpace(r) })
		if opt != nil && lvl > indent {
			opt.lines = append(opt.lines, value)
			continue
		}
		indent = lvl
		if strings.HasPrefix(value, "[") {
			if end := strings.LastIndex(value, "]"); end > 1 {
				finishOpt(opt)
				opt = nil
				curName = value[1:end]
				if curName == Default {
					cur = f.defaults
				} else {
					if seenSect[curName] {
						return errAt(pos, ErrSyntax, "section [%s] appears twice in this file: merge the two", curName)
					}
					if s, ok := f.sections[curName]; ok {
						cur = s
					} else {
						cur = newSection(curName, pos)
						f.sections[curName] = cur
						f.order = append(f.order, curName)
					}
				}
				seenSect[curName] = true
				continue
			}
		}
		d := strings.IndexAny(value, "=:")
		if d < 0 && strings.HasPrefix(value, "[") {
			// fail2ban refuses these as lines without a delimiter; the
			// mistake is the header, and saying so names the fix.
			var err error
			if name := strings.TrimSpace(strings.Trim(value, "[]")); strings.HasPrefix(value, "[]") || name == "" {
				err = errAt(pos, ErrSyntax, "%q names no section: write [NAME]", clip(value))
			} else {
				err = errAt(pos, ErrSyntax, "%q is a section header without its closing \"]\": write [%s]", clip(value), clip(name))
			}
			if cur == nil {
				return err
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if cur == nil {
			return errAt(pos, ErrSyntax, "%q before any [section] header: start the file with a header such as [Definition]", clip(trimmed))
		}
		if d < 0 {
			if firstErr == nil {
				firstErr = errAt(pos, ErrSyntax, "%q is neither a [section] nor a key = value line: indent it to continue the previous value, or comment it with #", clip(trimmed))
			}
			continue
		}
		key := strings.ToLower(strings.TrimRightFunc(value[:d], unicode.IsSpace))
		if key == "" {
			if firstErr == nil {
				firstErr = errAt(pos, ErrSyntax, "%q has no key before %q", clip(trimmed), value[d:d+1])
			}
			continue
		}
		finishOpt(opt)
		id := curName + "\x00" + key
		if seenOpt[id] {
			return errAt(pos, ErrSyntax, "key %q appears twice in [%s] of this file: keep one", key, curName)
		}
		seenOpt[id] = true
		opt = &pending{sec: cur, key: key, lines: []string{strings.TrimSpace(value[d+1:])}, pos: pos}
	}
	finishOpt(opt)
	return firstErr
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// conditional matches fail2ban's "name?cond" section names.
func conditional(name string) (base, cond string, ok bool) {
	i := strings.IndexByte(name, '?')
	if i <= 0 || i == len(name)-1 {
		return "", "", false
	}
	for _, r := range name[:i] {
		if !isWord(r) {
			return "", "", false
		}
	}
	return name[:i], name[i:], true
}

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// Merge overlays g on f the way fail2ban merges successive files: [DEFAULT]
// key by key; a section already present gets g's keys on top, the values
// they replace being remembered for %(known/…)s.
func (f *File) Merge(g *File) {
	for _, k := range g.defaults.order {
		f.defaults.set(k, g.defaults.vals[k])
	}
	for _, n := range g.order {
		s := g.sections[n]
		if base, cond, ok := conditional(n); ok {
			c := newSection(base, s.pos)
			for _, k := range s.order {
				c.set(k+cond, s.vals[k])
			}
			n, s = base, c
		}
		if old, ok := f.sections[n]; ok {
			kn := f.known[n]
			if kn == nil {
				kn = newSection("KNOWN/"+n, s.pos)
				f.known[n] = kn
			}
			for _, k := range s.order {
				if v, ok := old.vals[k]; ok {
					kn.set(k, v)
				}
			}
			for _, k := range s.order {
				old.set(k, s.vals[k])
			}
		} else {
			f.sections[n] = s.clone()
			f.order = append(f.order, n)
		}
		// When g is itself several files merged, the value it replaced
		// internally is the more recent one.
		if gk, ok := g.known[n]; ok {
			kn := f.known[n]
			if kn == nil {
				kn = newSection("KNOWN/"+n, s.pos)
				f.known[n] = kn
			}
			for _, k := range gk.order {
				kn.set(k, gk.vals[k])
			}
		}
	}
	f.files = append(f.files, g.files...)
}

// Load reads the given files in order, each preceded by its [INCLUDES]
// before= files and followed by its X.local and its after= files. A named
// file that does not exist is an error; a missing include is skipped, as
// fail2ban does (paths-overrides.local is optional).
func Load(paths ...string) (*File, error) {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("config file %s: %w", p, err)
		}
	}
	return load(paths)
}

// LoadBase reads base.conf, base.d/*.conf, base.local, base.d/*.local
// (sorted, missing ones skipped) with their includes: how fail2ban reads
// jail, fail2ban and every filter.d/NAME. It fails with an error wrapping
// fs.ErrNotExist when none of them exists.
func LoadBase(base string) (*File, error) {
	files := BaseFiles(base)
	if len(files) == 0 {
		return nil, fmt.Errorf("no %s.conf or %s.local: %w", base, base, fs.ErrNotExist)
	}
	return load(files)
}

// BaseFiles lists the existing files LoadBase reads for base, in order.
func BaseFiles(base string) []string {
	var cand []string
	cand = append(cand, base+".conf")
	cand = append(cand, globSorted(base+".d", ".conf")...)
	cand = append(cand, base+".local")
	cand = append(cand, globSorted(base+".d", ".local")...)
	var out []string
	for _, c := range cand {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			out = append(out, c)
		}
	}
	return out
}

// globSorted is Python's sorted(glob(dir/*ext)): hidden files excluded.
func globSorted(dir, ext string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ext) {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	return out
}

type loader struct {
	parsed map[string]*File
}

func load(paths []string) (*File, error) {
	l := &loader{parsed: map[string]*File{}}
	order, err := l.includes(paths, nil)
	if err != nil {
		return nil, err
	}
	out := New()
	for _, p := range order {
		out.Merge(l.parsed[p])
	}
	return out, nil
}

// withLocal is fail2ban's _expandConfFilesWithLocal.
func withLocal(paths []string) []string {
	in := map[string]bool{}
	for _, p := range paths {
		in[p] = true
	}
	var out []string
	for _, p := range paths {
		out = append(out, p)
		local := strings.TrimSuffix(p, filepath.Ext(p)) + ".local"
		if in[local] {
			continue
		}
		if st, err := os.Stat(local); err == nil && !st.IsDir() {
			out = append(out, local)
		}
	}
	return out
}

func (l *loader) file(p string) (*File, bool, error) {
	if f, ok := l.parsed[p]; ok {
		return f, true, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read config %s: %w", p, err)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, false, errAt(Pos{File: p}, ErrSyntax, "binary file (NUL byte): not a configuration file")
	}
	f, err := Parse(p, data)
	if err != nil {
		return nil, false, err
	}
	l.parsed[p] = f
	return f, true, nil
}

func (l *loader) includes(paths []string, seen []string) ([]string, error) {
	var out []string
	for _, p := range withLocal(paths) {
		f, ok, err := l.file(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		chain := append(append([]string(nil), seen...), p)
		var before, after []string
		if inc, ok := f.sections[Includes]; ok {
			for _, which := range []string{"before", "after"} {
				if _, ok := inc.vals[which]; !ok {
					continue
				}
				// fail2ban reads the list through get(), so it is
				// interpolated against the including file alone.
				list, err := f.Get(Includes, which)
				if err != nil {
					return nil, err
				}
				for _, r := range strings.Split(list, "\n") {
					if r == "" {
						continue
					}
					if !filepath.IsAbs(r) {
						r = filepath.Join(filepath.Dir(p), r)
					}
					if contains(chain, r) {
						continue // an include loop: fail2ban stops it too
					}
					got, err := l.includes([]string{r}, chain)
					if err != nil {
						return nil, err
					}
					if which == "before" {
						before = append(before, got...)
					} else {
						after = append(after, got...)
					}
				}
			}
		}
		out = append(out, before...)
		out = append(out, p)
		out = append(out, after...)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Files lists the files merged into f, in reading order.
func (f *File) Files() []string { return append([]string(nil), f.files...) }

// Sections lists the section names in first-seen order, without DEFAULT.
func (f *File) Sections() []string { return append([]string(nil), f.order...) }

// Has reports whether the section exists (DEFAULT always does).
func (f *File) Has(section string) bool {
	if section == Default {
		return true
	}
	_, ok := f.sections[section]
	return ok
}

func (f *File) sec(name string) *section {
	if name == Default {
		return f.defaults
	}
	return f.sections[name]
}

// Keys lists the section's own keys (not DEFAULT's) in first-set order.
func (f *File) Keys(section string) []string {
	s := f.sec(section)
	if s == nil {
		return nil
	}
	return append([]string(nil), s.order...)
}

// SectionPos is where the section was first declared.
func (f *File) SectionPos(section string) Pos {
	if s := f.sec(section); s != nil {
		return s.pos
	}
	return Pos{}
}

// Own returns the section's own raw value for key, ignoring DEFAULT.
func (f *File) Own(section, key string) (Value, bool) {
	s := f.sec(section)
	if s == nil {
		return Value{}, false
	}
	v, ok := s.vals[strings.ToLower(key)]
	return v, ok
}

// Raw returns the uninterpolated value of key in section, falling back to
// DEFAULT.
func (f *File) Raw(section, key string) (Value, bool) {
	if v, ok := f.Own(section, key); ok {
		return v, true
	}
	v, ok := f.defaults.vals[strings.ToLower(key)]
	return v, ok
}

// Set sets a raw value (created sections go last). Used to add values
// that come from elsewhere, e.g. a filter's options as known/NAME.
func (f *File) Set(section, key, value string, pos Pos) {
	s := f.sec(section)
	if s == nil {
		s = newSection(section, pos)
		f.sections[section] = s
		f.order = append(f.order, section)
	}
	s.set(strings.ToLower(key), Value{Text: value, Pos: pos})
}

// Get returns key's value in section (or DEFAULT), interpolated.
func (f *File) Get(section, key string) (string, error) {
	return f.GetVars(section, key, nil)
}

// GetVars is Get with vars taking precedence over the section's own values
// both for key itself and inside interpolation, as ConfigParser.get(vars=)
// does (fail2ban passes a filter's [Init] and jail arguments this way).
func (f *File) GetVars(section, key string, vars map[string]string) (string, error) {
	key = strings.ToLower(key)
	if !f.Has(section) {
		return "", errAt(Pos{}, ErrNoSection, "no section [%s]", section)
	}
	var v Value
	if s, ok := lookupVars(vars, key); ok {
		v = Value{Text: s}
	} else if r, ok := f.Raw(section, key); ok {
		v = r
	} else {
		return "", errAt(f.SectionPos(section), ErrNoOption, "[%s] has no %q", section, key)
	}
	out, err := f.interpolate(section, key, v, vars)
	if err != nil {
		return "", err
	}
	return out, nil
}

// Interpolate expands %(name)s references in value as if it were a value
// of section.
func (f *File) Interpolate(section, value string, vars map[string]string) (string, error) {
	return f.interpolate(section, "", Value{Text: value}, vars)
}

func lookupVars(vars map[string]string, key string) (string, bool) {
	if vars == nil {
		return "", false
	}
	if v, ok := vars[key]; ok {
		return v, true
	}
	for k, v := range vars {
		if strings.ToLower(k) == key {
			return v, true
		}
	}
	return "", false
}

// maxDepth is ConfigParser's MAX_INTERPOLATION_DEPTH.
const maxDepth = 10

// maxExpansion bounds what one value may expand to: a few references per
// level over ten levels would otherwise grow exponentially.
const maxExpansion = 1 << 20

func (f *File) interpolate(section, key string, v Value, vars map[string]string) (string, error) {
	var b strings.Builder
	refs := 0
	if err := f.interp(&b, section, key, v, v.Text, vars, 1, &refs); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (f *File) interp(b *strings.Builder, section, key string, at Value, rest string, vars map[string]string, depth int, refs *int) error {
	where := func() string {
		if key == "" {
			return fmt.Sprintf("[%s]", section)
		}
		return fmt.Sprintf("[%s] %s", section, key)
	}
	if depth > maxDepth {
		return errAt(at.Pos, ErrInterpolation, "%s: interpolation nested deeper than %d levels (a %%(name)s loop?): break the loop", where(), maxDepth)
	}
	for rest != "" {
		if b.Len() > maxExpansion || *refs > maxExpansion/16 {
			return errAt(at.Pos, ErrInterpolation, "%s: expands to more than %d bytes: simplify the %%(name)s references", where(), maxExpansion)
		}
		p := strings.IndexByte(rest, '%')
		if p < 0 {
			b.WriteString(rest)
			return nil
		}
		b.WriteString(rest[:p])
		rest = rest[p:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			b.WriteByte('%')
			rest = rest[2:]
		case strings.HasPrefix(rest, "%("):
			end := strings.IndexByte(rest, ')')
			if end < 3 || end+1 >= len(rest) || rest[end+1] != 's' {
				return errAt(at.Pos, ErrInterpolation, "%s: bad reference %q: write %%(name)s, or %%%% for a literal %%", where(), clip(rest))
			}
			raw := rest[2:end]
			name := strings.ToLower(raw)
			rest = rest[end+2:]
			*refs++
			val, ok := f.resolve(section, raw, vars)
			if !ok {
				return errAt(at.Pos, ErrInterpolation, "%s: %%(%s)s is not defined in [%s] or [DEFAULT]: define it or fix the name", where(), name, section)
			}
			if strings.Contains(val, "%") {
				if err := f.interp(b, section, key, at, val, vars, depth+1, refs); err != nil {
					return err
				}
			} else {
				b.WriteString(val)
			}
		default:
			return errAt(at.Pos, ErrInterpolation, "%s: '%%' must be followed by '%%' or '(': found %q; write %%%% for a literal %%", where(), clip(rest))
		}
	}
	return nil
}

// resolve looks a reference up as fail2ban's BasicInterpolationWithName
// does: vars, section, DEFAULT, then __name__, then section/option forms.
// The name is matched lowered, but fail2ban stores a section/option
// reference under the name as written, so one with capitals never
// resolves there; the same holds here.
func (f *File) resolve(section, raw string, vars map[string]string) (string, bool) {
	name := strings.ToLower(raw)
	if name == "__name__" {
		return section, true
	}
	if v, ok := lookupVars(vars, name); ok {
		return v, true
	}
	v, ok := f.resolveValue(section, raw)
	return v.Text, ok
}

// resolveValue is resolve's lookup in the files (not vars, not
// __name__), keeping where the value was set.
func (f *File) resolveValue(section, raw string) (Value, bool) {
	name := strings.ToLower(raw)
	if v, ok := f.Raw(section, name); ok {
		return v, true
	}
	i := strings.IndexByte(name, '/')
	if i <= 0 || i == len(name)-1 || raw != name {
		return Value{}, false
	}
	sec, opt := name[:i], name[i+1:]
	switch strings.ToLower(sec) {
	case "default":
	case "known":
		if kn, ok := f.known[section]; ok {
			if v, ok := kn.vals[opt]; ok {
				return v, true
			}
		}
	default:
		s := f.sections[sec]
		if s == nil {
			return Value{}, false
		}
		if v, ok := s.vals[opt]; ok {
			return v, true
		}
	}
	v, ok := f.defaults.vals[opt]
	return v, ok
}

// Origin returns, of the lines key's value in section is made of (its
// own and, through %(name)s, those it interpolates), the one from the
// latest file in load order, the key's own on a tie, and the name of
// the key set there. A bad value is then cited where the operator wrote
// it: jail.local's "mode = …", not the shipped jail.conf's "filter =
// %(__name__)s[mode=%(mode)s]" that refers to it.
func (f *File) Origin(section, key string) (Value, string, bool) {
	key = strings.ToLower(key)
	v, ok := f.Raw(section, key)
	if !ok {
		return Value{}, "", false
	}
	rank := func(p Pos) int { return slices.Index(f.files, p.File) }
	best, bestKey := v, key
	var walk func(text string, depth int)
	walk = func(text string, depth int) {
		if depth > maxDepth {
			return
		}
		for {
			i := strings.IndexByte(text, '%')
			if i < 0 || i+1 >= len(text) {
				return
			}
			if text[i+1] != '(' {
				text = text[i+2:] // "%%" or a stray '%' (an error Get reports)
				continue
			}
			text = text[i+2:]
			end := strings.Index(text, ")s")
			if end < 0 {
				return
			}
			raw := text[:end]
			text = text[end+2:]
			if strings.ToLower(raw) == "__name__" {
				continue
			}
			rv, ok := f.resolveValue(section, raw)
			if !ok {
				continue
			}
			if rank(rv.Pos) > rank(best.Pos) {
				best, bestKey = rv, strings.ToLower(raw)
				if j := strings.IndexByte(bestKey, '/'); j >= 0 {
					bestKey = bestKey[j+1:]
				}
			}
			walk(rv.Text, depth+1)
		}
	}
	walk(v.Text, 1)
	return best, bestKey, true
}
