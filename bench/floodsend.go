package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpban/xdpban/internal/nspair"
)

// floodSender sends one bounded flood from the attacker namespace.
type floodSender interface {
	name() string
	// start begins sending; done delivers the sender's end (nil when it
	// sent its whole count).
	start() (done <-chan error, err error)
	// stop ends the flood early and waits for the sender to finish.
	stop(done <-chan error)
	// output is what the sender printed, for error messages.
	output() string
}

// lockedBuffer collects a child's output while it still runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.TrimSpace(l.b.Bytes()))
}

// trafgenSender runs netsniff-ng's trafgen in the attacker namespace.
type trafgenSender struct {
	ns       *nspair.NS
	dev, cfg string
	count    int
	out      lockedBuffer
	cmd      *exec.Cmd
}

func (t *trafgenSender) name() string   { return "trafgen" }
func (t *trafgenSender) output() string { return t.out.String() }

func (t *trafgenSender) start() (<-chan error, error) {
	t.cmd = exec.Command("ip", "netns", "exec", t.ns.Name, "trafgen",
		"-o", t.dev, "-i", t.cfg, "-n", strconv.Itoa(t.count),
		// One sender process; the machine's socket memory defaults and
		// IRQ affinities stay as they are. -q sends through the qdisc
		// layer: with qdisc bypass, a veth whose peer runs XDP answers
		// a full ring with EAGAIN, which trafgen treats as fatal.
		"-P", "1", "--no-sock-mem", "-Q", "-C", "-q")
	t.cmd.Stdout, t.cmd.Stderr = &t.out, &t.out
	// trafgen forks its sender: signal the group, not just the parent.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := t.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start trafgen: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- t.cmd.Wait() }()
	return done, nil
}

func (t *trafgenSender) stop(done <-chan error) {
	pgid := t.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// packetSender is the stand-in when trafgen is missing: an AF_PACKET
// socket in the attacker namespace writing prebuilt frames, one sendto
// per frame.
type packetSender struct {
	ns     *nspair.NS
	dev    string
	frames [][]byte
	count  int
	quit   atomic.Bool
	err    lockedBuffer
}

func (g *packetSender) name() string   { return "AF_PACKET sender" }
func (g *packetSender) output() string { return g.err.String() }

func (g *packetSender) start() (<-chan error, error) {
	done := make(chan error, 1)
	go func() {
		err := g.ns.Do(g.send)
		if err != nil {
			fmt.Fprintln(&g.err, err)
		}
		done <- err
	}()
	return done, nil
}

func (g *packetSender) send() error {
	ifi, err := net.InterfaceByName(g.dev)
	if err != nil {
		return fmt.Errorf("attacker interface %s: %w", g.dev, err)
	}
	// Protocol 0: the socket only sends, the kernel queues nothing to it.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	for i := 0; i < g.count && !g.quit.Load(); i++ {
		err := unix.Sendto(fd, g.frames[i%len(g.frames)], 0, sa)
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			// The veth's ring is full: back off and send the frame again.
			i--
			time.Sleep(10 * time.Microsecond)
		default:
			return fmt.Errorf("send on %s: %w", g.dev, err)
		}
	}
	return nil
}

func (g *packetSender) stop(done <-chan error) {
	g.quit.Store(true)
	<-done
}

// floodFrames are the frames of a flood from base: one per source, with
// the veth's real addresses so the host accepts them.
func floodFrames(dstMAC, srcMAC net.HardwareAddr, base netip.Addr) [][]byte {
	out := make([][]byte, floodSources)
	for k := range out {
		f := frame(floodSource(base, k))
		copy(f[0:6], dstMAC)
		copy(f[6:12], srcMAC)
		if base.Is6() {
			// After the IPv6 header: the port, then the checksum IPv6
			// requires (a zero one is dropped as an error).
			binary.BigEndian.PutUint16(f[14+40+2:], floodPort)
			binary.BigEndian.PutUint16(f[14+40+6:], udp6Checksum(f[14:]))
		} else {
			// UDP destination port, after the Ethernet and IPv4 headers.
			binary.BigEndian.PutUint16(f[14+20+2:], floodPort)
		}
		out[k] = f
	}
	return out
}

// udp6Checksum is the UDP checksum of an IPv6 packet (header and UDP
// datagram, checksum field zero): RFC 8200's pseudo-header, then the data.
func udp6Checksum(pkt []byte) uint16 {
	udp := pkt[40:]
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(pkt[8:40]) // source and destination
	sum += uint32(len(udp)) + 17
	add(udp)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	return c
}
