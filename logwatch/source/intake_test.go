package source

import (
	"testing"
)

func TestIntakeLineReplacesLikePython(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain\r", "plain"},
		{"a\xffb", "a\uFFFDb"},
		{"nul\x00ctl\x1b", "nul\x00ctl\x1b"},
		{"\u00e9t\u00e9", "\u00e9t\u00e9"},
		{"\xe9t\xe9", "\uFFFDt\uFFFD"},
	} {
		if got, _ := Intake(c.in); got != c.want {
			t.Errorf("Intake(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
