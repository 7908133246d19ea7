package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Report is everything one `make bench` run measured. results.json is
// this struct; results.md is rendered from it, so the two never disagree.
type Report struct {
	Generated time.Time `json:"generated"`
	Duration  string    `json:"duration"`
	Machine   Machine   `json:"machine"`
	Quick     bool      `json:"quick,omitempty"`
	// Partial: some sections were rerun alone (-only) after the rest.
	Partial  bool       `json:"partial,omitempty"`
	Sections []*Section `json:"sections"`
}

// Section is one numbered part of the report.
type Section struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Machine is repeated per section so a section copied out of the
	// report still says what it ran on.
	Machine Machine `json:"machine"`
	// Skipped is why the whole section did not run; empty when it ran.
	Skipped string `json:"skipped,omitempty"`
	// Figures are the measurements, one per (case, tool, metric).
	Figures []Figure `json:"figures"`
	// Targets are the section's goals and whether this run met them.
	Targets []Target `json:"targets,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	// Table is the human layout of Figures, kept in the JSON so a run of
	// some sections (-only) can rewrite the report with the others.
	Table   *Table `json:"table,omitempty"`
	Elapsed string `json:"elapsed"`
	// Generated is when this section ran: sections of one report may
	// come from different runs (-only).
	Generated time.Time `json:"generated"`
}

// Figure is one measurement. Tool is "xdpban" or the peer's tool name
// (xdp-filter, fail2ban, iptables-chain, ipset).
type Figure struct {
	Case   string  `json:"case"`
	Tool   string  `json:"tool"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	// Skipped is set instead of Value when this one cell could not be
	// measured.
	Skipped string `json:"skipped,omitempty"`
}

// Target is a goal of the issue, checked against this run's figures.
type Target struct {
	What  string  `json:"what"`
	Want  string  `json:"want"`
	Got   float64 `json:"got"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
	Notes string  `json:"notes,omitempty"`
}

// Table is a markdown table.
type Table struct {
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
}

func (s *Section) add(f Figure) { s.Figures = append(s.Figures, f) }

func (s *Section) note(format string, a ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, a...))
}

// target records a goal: met when got is on the right side of limit.
func (s *Section) target(what string, got float64, unit string, atMost bool, limit float64) {
	want := fmt.Sprintf("≥ %s", num(limit))
	met := got >= limit
	if atMost {
		want = fmt.Sprintf("≤ %s", num(limit))
		met = got <= limit
	}
	if math.IsNaN(got) {
		met = false
	}
	s.Targets = append(s.Targets, Target{What: what, Want: want + " " + unit, Got: got, Unit: unit, Met: met})
}

// find returns the value of a figure, NaN when absent or skipped.
func (s *Section) find(cas, tool, metric string) float64 {
	for _, f := range s.Figures {
		if f.Case == cas && f.Tool == tool && f.Metric == metric && f.Skipped == "" {
			return f.Value
		}
	}
	return math.NaN()
}

// num formats a figure for people: three significant digits, thousands
// separated, no exponent.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.IsInf(v, 0):
		return "∞"
	case v == 0:
		return "0"
	}
	a := math.Abs(v)
	var s string
	switch {
	case a >= 1000:
		s = group(fmt.Sprintf("%.0f", v))
	case a >= 100:
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	case a >= 1:
		s = fmt.Sprintf("%.2f", v)
	default:
		s = fmt.Sprintf("%.3g", v)
	}
	return s
}

func group(digits string) string {
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ratio is a/b, NaN when either is missing or b is zero.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return writeFile(path, append(b, '\n'))
}

func (r *Report) writeMarkdown(path string) error {
	var b strings.Builder
	r.markdown(&b)
	return writeFile(path, []byte(b.String()))
}

// writeFile replaces path atomically so an interrupted run never leaves
// half a report next to a committed one.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

func (r *Report) markdown(w io.Writer) {
	fmt.Fprintf(w, "# xdpban benchmark report\n\n")
	fmt.Fprintf(w, "Generated by `make bench` on %s in %s.", r.Generated.UTC().Format("2006-01-02 15:04 MST"), r.Duration)
	if r.Partial {
		fmt.Fprintf(w, " Some sections were rerun alone (`go run ./bench -only ID`); each says when it ran, and the peers of a section always ran in the same run as it.")
	}
	if r.Quick {
		fmt.Fprintf(w, " **Quick mode**: fewer repeats and smaller sizes; not for comparison.")
	}
	fmt.Fprintf(w, "\n\nMachine: %s.\n\n", r.Machine)
	fmt.Fprintf(w, "Every peer runs in the same invocation on the same machine, so the ratios compare like with like. ")
	fmt.Fprintf(w, "Everything with a network runs inside throw-away network namespaces joined by a veth pair; ")
	fmt.Fprintf(w, "addresses are documentation ranges (RFC 5737, RFC 3849). The same figures, machine-readable, are in `results.json`.\n\n")

	fmt.Fprintf(w, "## Targets\n\n| section | target | want | got | met |\n|---|---|---|---|---|\n")
	for i, s := range r.Sections {
		if s.Skipped != "" {
			fmt.Fprintf(w, "| %d. %s | — | — | skipped: %s | — |\n", i+1, s.Title, oneLine(s.Skipped))
			continue
		}
		for _, t := range s.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s %s | %s |\n", i+1, t.What, t.Want, num(t.Got), t.Unit, met)
		}
	}
	fmt.Fprintln(w)
	for i, s := range r.Sections {
		fmt.Fprintf(w, "## %d. %s\n\n", i+1, s.Title)
		fmt.Fprintf(w, "Machine: %s. Section time: %s, run %s.\n\n", s.Machine, s.Elapsed, s.Generated.UTC().Format("2006-01-02 15:04 MST"))
		if s.Skipped != "" {
			fmt.Fprintf(w, "**Skipped**: %s\n\n", oneLine(s.Skipped))
			continue
		}
		if s.Table != nil && len(s.Table.Rows) > 0 {
			writeTable(w, s.Table)
			fmt.Fprintln(w)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		if len(s.Notes) > 0 {
			fmt.Fprintln(w)
		}
	}
}

func writeTable(w io.Writer, t *Table) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(t.Header, " | "))
	seps := make([]string, len(t.Header))
	for i := range seps {
		seps[i] = "---"
		if i > 0 {
			seps[i] = "---:"
		}
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range t.Rows {
		cells := make([]string, len(t.Header))
		copy(cells, r)
		for i := range cells {
			cells[i] = strings.ReplaceAll(cells[i], "|", "\\|")
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// percentile returns the p-th percentile (0..100) of xs by nearest rank.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

func median(xs []float64) float64 { return percentile(xs, 50) }

// mergeInto fills r, a run of some sections, with the other sections of
// the report at path (if any), in the order the sections are defined.
func (r *Report) mergeInto(path string) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s to merge into: %w", path, err)
	}
	var old Report
	if err := json.Unmarshal(raw, &old); err != nil {
		return fmt.Errorf("read %s to merge into: %w: run every section once (make bench)", path, err)
	}
	byID := map[string]*Section{}
	for _, s := range old.Sections {
		if s.Generated.IsZero() {
			s.Generated = old.Generated
		}
		byID[s.ID] = s
	}
	for _, s := range r.Sections {
		byID[s.ID] = s
	}
	var merged []*Section
	for _, d := range sections {
		if s, ok := byID[d.id]; ok {
			merged = append(merged, s)
		}
	}
	r.Sections = merged
	r.Partial = true
	return nil
}
