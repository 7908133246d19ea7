package config

import (
	"slices"
	"testing"
)

func TestShippedSettingsDocumentTheDaemonKeys(t *testing.T) {
	ss, err := ShippedSettings("xdpban.conf")
	if err != nil {
		t.Fatal(err)
	}
	var keys, fkeys []string
	for _, s := range ss {
		if s.Section == fleetSection {
			if s.Doc == "" {
				t.Errorf("xdpban.conf: [fleet] %s has no comment above it", s.Key)
			}
			fkeys = append(fkeys, s.Key)
			continue
		}
		if s.Section != daemonSection {
			t.Errorf("xdpban.conf sets %s in [%s], want [%s]", s.Key, s.Section, daemonSection)
		}
		if s.Doc == "" {
			t.Errorf("xdpban.conf: %s has no comment above it", s.Key)
		}
		keys = append(keys, s.Key)
	}
	// Every accepted daemon key is shipped with its default and a comment,
	// so xdpban.conf(5), generated from the file, lists all of them.
	for _, k := range DaemonKeys() {
		if !slices.Contains(keys, k) {
			t.Errorf("daemon key %s is accepted but not in the shipped xdpban.conf", k)
		}
	}
	for _, k := range FleetKeys() {
		if !slices.Contains(fkeys, k) {
			t.Errorf("[fleet] key %s is accepted but not in the shipped xdpban.conf", k)
		}
	}
}

func TestShippedSettingsJailDefaults(t *testing.T) {
	ss, err := ShippedSettings("jail.conf")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]Setting{}
	for _, s := range ss {
		if s.Section == "DEFAULT" {
			found[s.Key] = s
		}
	}
	if s, ok := found["maxretry"]; !ok || s.Default != "5" {
		t.Errorf("jail.conf [DEFAULT] maxretry = %+v, want 5", s)
	}
	if s := found["bantime.factor"]; s.Doc == "" {
		t.Error("bantime.factor lost the comment shared with bantime.increment")
	}
}
