package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestJournalPriorities(t *testing.T) {
	var b bytes.Buffer
	log, err := newLogger(&b, "text", "debug", true)
	if err != nil {
		t.Fatal(err)
	}
	log = log.With("jail", "sshd")
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{"<7>", "<6>", "<4>", "<3>"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines: %q", len(lines), b.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) || !strings.Contains(l, "jail=sshd") {
			t.Errorf("line %d = %q, want prefix %s and the logger's attrs", i, l, want[i])
		}
	}
	b.Reset()
	plain, _ := newLogger(&b, "json", "info", false)
	plain.Warn("w")
	if strings.HasPrefix(b.String(), "<") {
		t.Errorf("no journal: %q has a priority prefix", b.String())
	}
	if toJournal(&b, func(string) string { return "" }) {
		t.Error("toJournal without JOURNAL_STREAM")
	}
}
