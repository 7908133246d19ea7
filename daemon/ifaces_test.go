package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// flappy is a backend whose interface goes and comes back.
type flappy struct {
	*memBackend
	gone, back []string
}

func (f *flappy) Reattach() ([]string, []string, error) { return f.gone, f.back, nil }

func TestInterfaceGoneAndBackLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	d := &Daemon{log: slog.New(slog.NewTextHandler(&buf, nil))}
	b := &flappy{memBackend: newMem(), gone: []string{"bond0"}}
	for range 3 {
		d.checkInterfaces(b)
	}
	if n := strings.Count(buf.String(), "protected interface gone"); n != 1 || !strings.Contains(buf.String(), "interface=bond0") {
		t.Fatalf("%d gone lines for three checks of one deleted interface, want 1:\n%s", n, buf.String())
	}
	b.gone, b.back = nil, []string{"bond0"}
	d.checkInterfaces(b)
	b.back = nil
	d.checkInterfaces(b)
	if n := strings.Count(buf.String(), "protected interface back"); n != 1 {
		t.Fatalf("%d back lines, want 1:\n%s", n, buf.String())
	}
	// Gone again after coming back: said again.
	b.gone = []string{"bond0"}
	d.checkInterfaces(b)
	if n := strings.Count(buf.String(), "protected interface gone"); n != 2 {
		t.Fatalf("second loss not reported:\n%s", buf.String())
	}
}
