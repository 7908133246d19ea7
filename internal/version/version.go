// Package version is the one place the build's version is read from, so
// `xdpban version`, the start-up log line, the build_info metric and the
// packages all say the same thing.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is set at link time by `make build` and `make package`
// (-ldflags "-X github.com/xdpban/xdpban/internal/version.Version=v1.2.3").
// A plain `go build` leaves it empty and String falls back to the module
// version or the VCS revision the toolchain recorded.
var Version string

// String is the version to print: the linked-in one, else the module's
// (when installed with `go install …@v1.2.3`), else "devel+<revision>".
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel+" + rev
}

// GoVersion is the toolchain that built the binary.
func GoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}

// Revision is the VCS revision recorded at build time, or "".
func Revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

// Semver reports whether v looks like vMAJOR.MINOR.PATCH[-pre][+build],
// what package versions and git tags must be.
func Semver(v string) bool {
	v, ok := strings.CutPrefix(v, "v")
	if !ok {
		return false
	}
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" || (len(p) > 1 && p[0] == '0') {
			return false
		}
	}
	return true
}
