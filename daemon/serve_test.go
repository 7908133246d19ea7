package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon/control"
	"github.com/xdpban/xdpban/internal/bans"
)

// slowWalk is a backend whose kernel comparison at start takes as long
// as the test says (a million bans take a second or two).
type slowWalk struct {
	*memBackend
	release chan struct{}
}

func (s slowWalk) Walk(ctx context.Context, fn func(bans.Ban) error) error {
	<-s.release
	bs, _ := s.memBackend.List(ctx)
	for _, b := range bs {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// TestServesWhileComparingTheKernel: ping, list and status answer while
// the start still compares the kernel with the store; a ban waits for the
// start to finish and is then taken.
func TestServesWhileComparingTheKernel(t *testing.T) {
	be := slowWalk{newMem(), make(chan struct{})}
	opt := testOptions(t, be, func(logf string) string { return "[sshd]\nenabled = true\nlogpath = " + logf + "\n" })
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	defer func() {
		select {
		case <-be.release:
		default:
			close(be.release)
		}
	}()
	c := control.NewClient(opt.Config.Daemon.Socket)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the socket never answered while the start compared the kernel")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.List(context.Background()); err != nil {
		t.Fatalf("list while starting: %v", err)
	}
	st, err := c.Status(context.Background())
	if err != nil || !st.Starting {
		t.Fatalf("status while starting: %+v %v, want starting", st, err)
	}
	banned := make(chan error, 1)
	go func() {
		_, err := c.Ban(context.Background(), []control.BanItem{{Addr: "192.0.2.9"}})
		banned <- err
	}()
	select {
	case err := <-banned:
		t.Fatalf("a ban was answered (%v) before the start finished", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(be.release)
	select {
	case err := <-banned:
		if err != nil {
			t.Fatalf("ban after the start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting ban was never answered")
	}
	if st, err := c.Status(context.Background()); err != nil || st.Starting {
		t.Fatalf("status after the start: %+v %v", st, err)
	}
}
