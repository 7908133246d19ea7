package version

import "testing"

func TestLinkedVersionWins(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = "v1.2.3"
	if got := String(); got != "v1.2.3" {
		t.Fatalf("String() = %q with Version set to v1.2.3", got)
	}
	Version = ""
	if got := String(); got == "" {
		t.Fatal("String() is empty without a linked version")
	}
}

func TestSemver(t *testing.T) {
	for v, want := range map[string]bool{
		"v0.3.0": true, "v1.10.2-rc.1": true, "v2.0.0+deb12": true,
		"0.3.0": false, "v1.2": false, "v01.2.3": false, "v1.2.x": false, "": false,
	} {
		if got := Semver(v); got != want {
			t.Errorf("Semver(%q) = %v, want %v", v, got, want)
		}
	}
}
