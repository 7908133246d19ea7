package config

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Setting is one documented key of a shipped configuration file: what
// xdpban.conf(5) prints, read from the file itself so the manual and the
// defaults can never disagree.
type Setting struct {
	Section string
	Key     string
	Default string
	Doc     string // the comment block above the key, joined
}

// ShippedFile returns a shipped default file by name (xdpban.conf,
// jail.conf).
func ShippedFile(name string) ([]byte, error) {
	b, err := defaultsFS.ReadFile("defaults/" + name)
	if err != nil {
		return nil, fmt.Errorf("shipped file %s: %w", name, err)
	}
	return b, nil
}

// ShippedSettings lists the keys set in a shipped file with the comment
// block written above each (a comment shared by several keys documents
// them all).
func ShippedSettings(name string) ([]Setting, error) {
	b, err := ShippedFile(name)
	if err != nil {
		return nil, err
	}
	var out []Setting
	var doc []string
	section := ""
	lastDoc := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			if len(doc) > 0 {
				lastDoc = ""
			}
		case strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			doc = append(doc, strings.TrimSpace(strings.TrimLeft(line, "#;")))
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			lastDoc = ""
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				break
			}
			if len(doc) > 0 {
				lastDoc = strings.Join(doc, " ")
			}
			out = append(out, Setting{Section: section, Key: strings.TrimSpace(k), Default: strings.TrimSpace(v), Doc: lastDoc})
		}
		doc = nil
	}
	return out, sc.Err()
}

// DaemonKeys are the keys the [xdpban] section accepts, sorted.
func DaemonKeys() []string { return slices.Sorted(maps.Keys(daemonKeys)) }

// JailKeys are the keys a jail section accepts (filter overrides
// included), sorted.
func JailKeys() []string {
	ks := slices.Collect(maps.Keys(jailKeys))
	return slices.Sorted(slices.Values(append(ks, filterKeys...)))
}
