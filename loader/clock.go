package loader

import (
	"time"

	"golang.org/x/sys/unix"
)

// The kernel compares ban expiry against CLOCK_BOOTTIME
// (bpf_ktime_get_boot_ns): it is monotonic, so a wall-clock step (NTP,
// an operator's `date`) neither frees nor extends bans, and it keeps
// counting across suspend. Userspace speaks wall-clock time (bans.Ban).
// These two functions are the only place the two meet.

func bootNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists since Linux 2.6.39; XDP needs far newer.
		panic("clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return time.Duration(ts.Nano())
}

// toBoot converts a wall-clock expiry to the kernel's boot-time ns. The
// zero time (permanent) is 0; an instant already in the past before boot
// becomes 1, which is expired, never 0, which would be permanent.
func toBoot(t time.Time) uint64 {
	return newBootClock().toBoot(t)
}

// bootClock is the two clocks read once, for converting a batch of bans
// without two clock reads (one a syscall) per ban.
type bootClock struct {
	wall time.Time
	boot time.Duration
}

func newBootClock() bootClock { return bootClock{wall: time.Now(), boot: bootNow()} }

func (c bootClock) toBoot(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	b := c.boot + t.Sub(c.wall)
	if b <= 0 {
		return 1
	}
	return uint64(b)
}

// toWall is toBoot's inverse at c. The two clock reads are not
// simultaneous, so the result is rounded to the millisecond to make an
// Add/List round trip return the instant that was added.
func (c bootClock) toWall(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return c.wall.Add(time.Duration(ns) - c.boot).Round(time.Millisecond)
}

// toWall is toBoot's inverse now; a walk of many entries reads the clocks
// once with newBootClock instead.
func toWall(ns uint64) time.Time { return newBootClock().toWall(ns) }
