package ini

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustParse(t *testing.T, text string) *File {
	t.Helper()
	f, err := Parse("t.conf", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func TestParseValues(t *testing.T) {
	cases := []struct {
		name, text, sec, key, want string
	}{
		{"equals", "[a]\nk = v\n", "a", "k", "v"},
		{"colon", "[a]\nk: v\n", "a", "k", "v"},
		{"first delimiter wins", "[a]\nk = x:y=z\n", "a", "k", "x:y=z"},
		{"colon before equals", "[a]\nk: x = y\n", "a", "k", "x = y"},
		{"key lowered", "[a]\nMaxRetry = 3\n", "a", "maxretry", "3"},
		{"lookup any case", "[a]\nMaxRetry = 3\n", "a", "MAXRETRY", "3"},
		{"empty value", "[a]\nk =\n", "a", "k", ""},
		{"spaces trimmed", "[a]\n  k   =   v  \n", "a", "k", "v"},
		{"inline semicolon comment", "[a]\nk = v ; note\n", "a", "k", "v"},
		{"semicolon without space kept", "[a]\nk = v;w\n", "a", "k", "v;w"},
		{"hash is not inline comment", "[a]\nk = ^x #y\n", "a", "k", "^x #y"},
		{"hash inside kept", "[a]\nk = a#b\n", "a", "k", "a#b"},
		{"tab before semicolon", "[a]\nk = v\t;c\n", "a", "k", "v"},
		{"continuation", "[a]\nk = one\n  two\n\tthree\n", "a", "k", "one\ntwo\nthree"},
		{"blank line kept inside", "[a]\nk = one\n\n  two\n", "a", "k", "one\n\ntwo"},
		{"trailing blank dropped", "[a]\nk = one\n  two\n\n\n[b]\n", "a", "k", "one\ntwo"},
		{"comment in value dropped", "[a]\nk = one\n  # c\n  ; d\n  two\n", "a", "k", "one\ntwo"},
		{"indented key is continuation", "[a]\n k = one\n  more\n", "a", "k", "one\nmore"},
		{"same indent is new key", "[a]\n k = one\n j = two\n", "a", "j", "two"},
		{"empty first line", "[a]\nk =\n  x\n  y\n", "a", "k", "\nx\ny"},
		{"default inherited", "[DEFAULT]\nk = d\n[a]\nj = 1\n", "a", "k", "d"},
		{"section wins over default", "[DEFAULT]\nk = d\n[a]\nk = s\n", "a", "k", "s"},
		{"default twice allowed", "[DEFAULT]\nk = 1\n[DEFAULT]\nj = 2\n[a]\n", "a", "j", "2"},
		{"crlf", "[a]\r\nk = v\r\n  w\r\n", "a", "k", "v\nw"},
		{"bom", "\ufeff[a]\nk = v\n", "a", "k", "v"},
		{"header trailing text", "[a] x\nk = v\n", "a", "k", "v"},
		{"header with bracket", "[a]b]\nk = v\n", "a]b", "k", "v"},
		{"percent escaped", "[a]\nk = 100%%\n", "a", "k", "100%"},
		{"interpolate section", "[a]\nx = 1\nk = %(x)s-%(x)s\n", "a", "k", "1-1"},
		{"interpolate default", "[DEFAULT]\nx = d\n[a]\nk = %(x)s\n", "a", "k", "d"},
		{"interpolate section over default", "[DEFAULT]\nx = d\nk = %(x)s\n[a]\nx = s\n", "a", "k", "s"},
		{"interpolate name", "[DEFAULT]\nf = %(__name__)s[mode=m]\n[sshd]\n", "sshd", "f", "sshd[mode=m]"},
		{"interpolate case", "[a]\nx = 1\nk = %(X)s\n", "a", "k", "1"},
		{"nested", "[a]\nx = %(y)s\ny = %(z)s!\nz = deep\nk = <%(x)s>\n", "a", "k", "<deep!>"},
		{"other section", "[b]\nx = bee\n[a]\nk = %(b/x)s\n", "a", "k", "bee"},
		{"other section falls back to default", "[DEFAULT]\nx = d\n[b]\n[a]\nk = %(b/x)s\n", "a", "k", "d"},
		{"default slash", "[DEFAULT]\nx = d\n[a]\nx = s\nk = %(default/x)s\n", "a", "k", "d"},
		{"known without override is default", "[DEFAULT]\nx = d\n[a]\nk = %(known/x)s\n", "a", "k", "d"},
		{"multiline interpolated", "[DEFAULT]\nl = /a\n  /b\n[a]\nk = %(l)s\n  /c\n", "a", "k", "/a\n/b\n/c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustParse(t, c.text)
			got, err := f.Get(c.sec, c.key)
			if err != nil {
				t.Fatalf("Get(%s, %s): %v", c.sec, c.key, err)
			}
			if got != c.want {
				t.Fatalf("Get(%s, %s) = %q, want %q", c.sec, c.key, got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, text string
		line       int
		want       string
	}{
		{"no header", "k = v\n", 1, "before any [section]"},
		{"no delimiter", "[a]\nk = v\njunk\n", 3, "neither a [section] nor a key = value"},
		{"empty key", "[a]\n= v\n", 2, "no key"},
		{"duplicate section", "[a]\nk = 1\n[b]\n[a]\n", 4, "section [a] appears twice"},
		{"duplicate key", "[a]\nk = 1\nK = 2\n", 3, `key "k" appears twice`},
		{"duplicate default key", "[DEFAULT]\nk = 1\n[DEFAULT]\nk = 2\n", 4, `key "k" appears twice`},
		{"empty brackets", "[a]\n[]\n", 2, `"[]" names no section: write [NAME]`},
		{"unterminated header", "[sshd\nenabled = true\n", 1, `"[sshd" is a section header without its closing "]": write [sshd]`},
		{"unterminated later", "[a]\nk = v\n[sshd ; the jail\nx = 1\n", 3, `"[sshd" is a section header without its closing "]": write [sshd]`},
		{"not utf8", "[a]\nk = \xff\n", 0, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.conf", []byte(c.text))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is not an *Error wrapping ErrSyntax", err)
			}
			if e.Pos.Line != c.line || e.Pos.File != "t.conf" {
				t.Errorf("error at %v, want t.conf:%d", e.Pos, c.line)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestInterpolationErrors(t *testing.T) {
	cases := []struct {
		name, text, sec, key string
		line                 int
		want                 string
	}{
		{"missing", "[a]\n\nk = %(nope)s\n", "a", "k", 3, "%(nope)s is not defined"},
		{"bare percent", "[a]\nk = 50%\n", "a", "k", 2, "must be followed by"},
		{"unterminated", "[a]\nk = %(x\n", "a", "k", 2, "bad reference"},
		{"no s", "[a]\nx = 1\nk = %(x)d\n", "a", "k", 3, "bad reference"},
		{"loop", "[a]\nx = %(y)s\ny = %(x)s\nk = %(x)s\n", "a", "k", 4, "deeper than 10"},
		{"self", "[a]\nk = %(k)s\n", "a", "k", 2, "deeper than 10"},
		{"missing section ref", "[a]\nk = %(zz/x)s\n", "a", "k", 2, "%(zz/x)s is not defined"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustParse(t, c.text)
			_, err := f.Get(c.sec, c.key)
			if err == nil {
				t.Fatal("Get succeeded, want error")
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInterpolation) {
				t.Fatalf("error %v is not an *Error wrapping ErrInterpolation", err)
			}
			if e.Pos.Line != c.line {
				t.Errorf("error at %v, want line %d", e.Pos, c.line)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	f := mustParse(t, "[a]\nk = v\n")
	if _, err := f.Get("b", "k"); !errors.Is(err, ErrNoSection) {
		t.Errorf("Get on missing section: %v, want ErrNoSection", err)
	}
	if _, err := f.Get("a", "x"); !errors.Is(err, ErrNoOption) {
		t.Errorf("Get on missing key: %v, want ErrNoOption", err)
	}
	if v, ok := f.Raw("a", "k"); !ok || v.Pos.String() != "t.conf:2" || v.Text != "v" {
		t.Errorf("Raw = %+v %v, want v at t.conf:2", v, ok)
	}
}

func TestVars(t *testing.T) {
	f := mustParse(t, "[Init]\nmode = normal\n[Definition]\nmode = def\nre = x-%(mode)s\n")
	got, err := f.GetVars("Definition", "re", map[string]string{"Mode": "aggressive"})
	if err != nil || got != "x-aggressive" {
		t.Fatalf("GetVars = %q, %v; want x-aggressive", got, err)
	}
	got, err = f.GetVars("Definition", "mode", map[string]string{"mode": "v"})
	if err != nil || got != "v" {
		t.Fatalf("GetVars(mode) = %q, %v; want v (vars win)", got, err)
	}
	got, err = f.Interpolate("Definition", "%(mode)s/%(__name__)s", nil)
	if err != nil || got != "def/Definition" {
		t.Fatalf("Interpolate = %q, %v", got, err)
	}
}

func TestMergeKnownAndConditional(t *testing.T) {
	base := mustParse(t, "[Definition]\nfailregex = ^base$\nother = o\n[Init]\nk = 1\n")
	local, err := Parse("t.local", []byte("[Definition]\nfailregex = %(known/failregex)s\n            ^local$\n[Init?family=inet6]\nk = 6\n"))
	if err != nil {
		t.Fatal(err)
	}
	base.Merge(local)
	got, err := base.Get("Definition", "failregex")
	if err != nil || got != "^base$\n^local$" {
		t.Fatalf("known/ merge = %q, %v", got, err)
	}
	if v, _ := base.Raw("Definition", "failregex"); v.Pos.File != "t.local" || v.Pos.Line != 2 {
		t.Errorf("overridden key position %v, want t.local:2", v.Pos)
	}
	if v, ok := base.Own("Init", "k?family=inet6"); !ok || v.Text != "6" {
		t.Errorf("conditional section not folded into [Init]: %+v %v", v, ok)
	}
	if got := base.Sections(); !reflect.DeepEqual(got, []string{"Definition", "Init"}) {
		t.Errorf("Sections = %v", got)
	}
	if got := base.Files(); !reflect.DeepEqual(got, []string{"t.conf", "t.local"}) {
		t.Errorf("Files = %v", got)
	}
}

// TestKnownChainLoops pins fail2ban's behaviour: known/ holds only the
// value the latest file replaced, so two chained known/ overrides loop.
func TestKnownChainLoops(t *testing.T) {
	f := mustParse(t, "[a]\nk = 1\n")
	g, _ := Parse("2.conf", []byte("[a]\nk = %(known/k)s+2\n"))
	h, _ := Parse("3.conf", []byte("[a]\nk = %(known/k)s+3\n"))
	f.Merge(g)
	if got, err := f.Get("a", "k"); err != nil || got != "1+2" {
		t.Fatalf("one known/ = %q, %v", got, err)
	}
	f.Merge(h)
	if _, err := f.Get("a", "k"); !errors.Is(err, ErrInterpolation) {
		t.Fatalf("chained known/ = %v, want the interpolation depth error fail2ban gives", err)
	}
}

func TestLoadBaseTree(t *testing.T) {
	f, err := LoadBase("testdata/tree/jail")
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, p := range f.Files() {
		rel = append(rel, strings.TrimPrefix(p, "testdata/tree/"))
	}
	wantFiles := []string{
		"paths-common.conf", "paths-distro.conf", "paths-common.local", "jail.conf", "paths-overrides.local",
		"jail.d/10-a.conf", "jail.d/20-b.conf", "jail.local", "jail.d/10-a.local",
	}
	if !reflect.DeepEqual(rel, wantFiles) {
		t.Fatalf("files read:\n got %v\nwant %v", rel, wantFiles)
	}
	// Expected values were produced by fail2ban's own ConfigReader on
	// the same tree.
	want := map[[2]string]string{
		{"sshd", "action"}:   `iptables-multiport[port="ssh", name=sshd]`,
		{"sshd", "backend"}:  "auto",
		{"sshd", "bantime"}:  "1h",
		{"sshd", "enabled"}:  "true",
		{"sshd", "filter"}:   "sshd[mode=aggressive]",
		{"sshd", "logpath"}:  "/var/log/auth.log",
		{"sshd", "maxretry"}: "3",
		{"sshd", "order"}:    "paths-overrides",
		{"sshd", "port"}:     "ssh",
		{"sshd", "seen"}:     "local+alocal",
		{"web", "action"}:    `iptables-multiport[port="http,https", name=web]`,
		{"web", "filter"}:    "web[mode=normal]",
		{"web", "logpath"}:   "/var/log/a.log\n/var/log/b.log\n\n/var/log/c.log\n/var/log/d.log",
		{"web", "maxretry"}:  "5",
		{"web", "port"}:      "http,https",
		{"web", "regex"}:     "^x #not a comment",
	}
	for k, w := range want {
		got, err := f.Get(k[0], k[1])
		if err != nil {
			t.Errorf("Get(%s, %s): %v", k[0], k[1], err)
			continue
		}
		if got != w {
			t.Errorf("Get(%s, %s) = %q, want %q", k[0], k[1], got, w)
		}
	}
	if got := f.Sections(); !reflect.DeepEqual(got, []string{"INCLUDES", "sshd", "web"}) {
		t.Errorf("Sections = %v", got)
	}
	if p := f.SectionPos("sshd"); p.String() != "testdata/tree/jail.conf:18" {
		t.Errorf("sshd declared at %v, want testdata/tree/jail.conf:18", p)
	}
	if v, _ := f.Raw("sshd", "maxretry"); v.Pos.String() != "testdata/tree/jail.d/10-a.conf:3" {
		t.Errorf("maxretry from %v, want testdata/tree/jail.d/10-a.conf:3", v.Pos)
	}
}

func TestLoadIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("common.conf", "[INCLUDES]\nbefore = sshd.conf\n[DEFAULT]\nx = common\n")
	write("sub/abs.conf", "[DEFAULT]\ny = abs\n")
	main := write("sshd.conf", "[INCLUDES]\nbefore = common.conf\n           missing.conf\nafter = "+filepath.Join(dir, "sub/abs.conf")+"\n[DEFAULT]\nx = sshd\ny = sshd\n[Definition]\nk = %(x)s/%(y)s\n")
	f, err := Load(main)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := f.Get("Definition", "k")
	// Loop sshd -> common -> sshd is cut; abs comes after sshd.
	if got != "sshd/abs" {
		t.Errorf("k = %q, want sshd/abs", got)
	}
	if _, err := Load(filepath.Join(dir, "nope.conf")); err == nil || !strings.Contains(err.Error(), "nope.conf") {
		t.Errorf("Load of a missing file: %v", err)
	}
	if _, err := LoadBase(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadBase of nothing: %v, want ErrNotExist", err)
	}
	bad := write("bad.conf", "[a]\nk = 1\n")
	write("bad.local", "[a]\nk = 1\noops\n")
	_, err = Load(bad)
	if err == nil || !strings.Contains(err.Error(), "bad.local:3:") {
		t.Errorf("error in an overlaid .local = %v, want bad.local:3", err)
	}
}

// TestRealFail2banFilters parses every filter shipped with Debian's
// fail2ban and expands all their [Definition] values, which is what the
// filter loader will do.
func TestRealFail2banFilters(t *testing.T) {
	dir := "/etc/fail2ban/filter.d"
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing in CI: install the fail2ban package", dir)
		}
		t.Skipf("%s missing: install fail2ban to run this test", dir)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	if len(names) < 50 {
		t.Fatalf("only %d filters in %s", len(names), dir)
	}
	for _, n := range names {
		f, err := LoadBase(strings.TrimSuffix(n, ".conf"))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		for _, k := range f.Keys("Definition") {
			_, err := f.Get("Definition", k)
			// selinux-common.conf is only meant to be included (its
			// %(_type)s comes from the includer); fail2ban fails on it too.
			if wantErr := filepath.Base(n) == "selinux-common.conf" && k == "failregex"; (err != nil) != wantErr {
				t.Errorf("%s: error %v, want error: %v", n, err, wantErr)
			}
		}
	}
	f, err := LoadBase(filepath.Join(dir, "sshd"))
	if err != nil {
		t.Fatal(err)
	}
	jm, err := f.Get("Definition", "journalmatch")
	if err != nil || jm != "_SYSTEMD_UNIT=sshd.service + _COMM=sshd" {
		t.Errorf("sshd journalmatch = %q, %v", jm, err)
	}
}

func TestExpansionBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("[a]\nv0 = x\n")
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&b, "v%d = %s\n", i, strings.Repeat(fmt.Sprintf("%%(v%d)s", i-1), 8))
	}
	f := mustParse(t, b.String())
	if _, err := f.Get("a", "v10"); !errors.Is(err, ErrInterpolation) || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("8^10 expansion: %v, want a size error", err)
	}
}

// Merging an already merged File keeps the known/ values it recorded.
func TestMergeMergedKeepsKnown(t *testing.T) {
	f := mustParse(t, "[a]\nk = base\nj = base\n")
	g, _ := Parse("2.conf", []byte("[a]\nk = two\n"))
	h, _ := Parse("3.conf", []byte("[a]\nk = %(known/k)s+3\nj = %(known/j)s+3\n"))
	g.Merge(h)
	f.Merge(g)
	for key, want := range map[string]string{"k": "two+3", "j": "base+3"} {
		if got, err := f.Get("a", key); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
	}
}

// A section new to f keeps the known/ values recorded inside g.
func TestMergeNewSectionKeepsKnown(t *testing.T) {
	f := mustParse(t, "[other]\nk = 1\n")
	g, _ := Parse("2.conf", []byte("[a]\nk = two\n"))
	h, _ := Parse("3.conf", []byte("[a]\nk = %(known/k)s+3\n"))
	g.Merge(h)
	f.Merge(g)
	if got, err := f.Get("a", "k"); err != nil || got != "two+3" {
		t.Errorf("k = %q, %v; want two+3", got, err)
	}
}

// Origin finds the line an interpolated value was last set on, so an
// error in it is cited where the operator wrote it.
func TestOrigin(t *testing.T) {
	conf, err := Parse("jail.conf", []byte("[DEFAULT]\nmode = normal\nport = ssh\n[sshd]\nfilter = %(__name__)s[mode=%(mode)s]\nlogpath = %(sshd_log)s\nsshd_log = /var/log/auth.log\nlit = 100%%(mode)s\n"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := Parse("jail.local", []byte("[sshd]\nenabled = true\nmode = aggressive]\n"))
	if err != nil {
		t.Fatal(err)
	}
	conf.Merge(local)
	for _, c := range []struct {
		key, wantKey string
		wantLine     int
		wantFile     string
	}{
		{"filter", "mode", 3, "jail.local"},     // the reference set later wins
		{"logpath", "logpath", 6, "jail.conf"},  // same file: the key's own line
		{"enabled", "enabled", 2, "jail.local"}, // no reference
		{"lit", "lit", 8, "jail.conf"},          // %% is no reference
		{"port", "port", 3, "jail.conf"},        // from DEFAULT
	} {
		v, k, ok := conf.Origin("sshd", c.key)
		if !ok || k != c.wantKey || v.Pos.File != c.wantFile || v.Pos.Line != c.wantLine {
			t.Errorf("Origin(sshd, %s) = %v %q %v, want %s:%d %q", c.key, v.Pos, k, ok, c.wantFile, c.wantLine, c.wantKey)
		}
	}
	if _, _, ok := conf.Origin("sshd", "nosuch"); ok {
		t.Error("Origin of an unset key reports one")
	}
}
