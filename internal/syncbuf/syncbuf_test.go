package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// Writers and a reader at once (run with -race): every write lands whole.
func TestConcurrentWriteAndRead(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				b.Write([]byte("line\n"))
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			if s := b.String(); strings.Count(s, "line\n")*5 != len(s) {
				t.Errorf("torn read: %d bytes", len(s))
				return
			}
		}
	}()
	wg.Wait()
	<-done
	if n := strings.Count(b.String(), "line\n"); n != 4000 {
		t.Fatalf("%d lines, want 4000", n)
	}
}
