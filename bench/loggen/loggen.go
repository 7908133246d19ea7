// Package loggen writes realistic, deterministic auth.log traffic for
// benchmarks and load tests: sshd failures from many attackers (in
// documentation ranges only) mixed with the usual sshd, cron, sudo,
// systemd and kernel noise.
package loggen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Options shape the generated log. The zero value of a field means its
// default.
type Options struct {
	Lines int // default 1,000,000
	// FailRatio is the share of sshd failure lines (default 0.30).
	FailRatio float64
	// Attackers is how many distinct source addresses fail (default
	// 50,000): the 768 IPv4 documentation addresses first, the rest in
	// 2001:db8::/32, one /64 each.
	Attackers int
	Seed      uint64    // default 1
	Start     time.Time // default 2026-11-24 00:00:00 local
	// Span is the time the lines cover (default 24h), evenly spread.
	Span time.Duration
	Host string // default "web1"
}

// Stats is the ground truth of a generated log.
type Stats struct {
	Lines     int
	Failures  int // lines the sshd filter must count as failures
	Attackers int // distinct addresses that failed
	Bytes     int64
}

func (o *Options) defaults() {
	if o.Lines <= 0 {
		o.Lines = 1_000_000
	}
	if o.FailRatio <= 0 {
		o.FailRatio = 0.30
	}
	if o.Attackers <= 0 {
		o.Attackers = 50_000
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 11, 24, 0, 0, 0, 0, time.Local)
	}
	if o.Span <= 0 {
		o.Span = 24 * time.Hour
	}
	if o.Host == "" {
		o.Host = "web1"
	}
}

var v4Ranges = [][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}

// Attacker returns the i-th attacker address (documentation ranges only).
func Attacker(i int) netip.Addr {
	if i < 3*256 {
		r := v4Ranges[i/256]
		return netip.AddrFrom4([4]byte{r[0], r[1], r[2], byte(i % 256)})
	}
	j := i - 3*256
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	b[4], b[5] = byte(j>>24), byte(j>>16)
	b[6], b[7] = byte(j>>8), byte(j)
	b[15] = byte(1 + j%250)
	return netip.AddrFrom16(b)
}

var (
	users   = []string{"root", "admin", "test", "ubuntu", "oracle", "postgres", "git", "user", "pi", "ftpuser", "deploy", "guest"}
	staff   = []string{"alice", "bob", "carol"}
	cmds    = []string{"/usr/bin/apt update", "/usr/bin/systemctl restart nginx", "/usr/bin/journalctl -u sshd", "/bin/cat /var/log/syslog"}
	kernels = []string{
		"[UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:00:00:01 SRC=203.0.113.200 DST=192.0.2.1 LEN=40 PROTO=TCP SPT=4444 DPT=23 WINDOW=1024 SYN",
		"TCP: request_sock_TCP: Possible SYN flooding on port 22. Sending cookies.",
		"EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro",
	}
)

// Generate writes opt.Lines lines to w and returns their ground truth.
// The same options always produce the same bytes.
func Generate(w io.Writer, opt Options) (Stats, error) {
	opt.defaults()
	rng := rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15))
	bw := bufio.NewWriterSize(w, 1<<20)
	var st Stats
	seen := make([]bool, opt.Attackers)
	step := opt.Span / time.Duration(opt.Lines)
	pid := 1000
	var buf []byte
	for i := 0; i < opt.Lines; i++ {
		ts := opt.Start.Add(time.Duration(i) * step)
		buf = append(buf[:0], ts.Format(time.Stamp)...)
		buf = append(buf, ' ')
		buf = append(buf, opt.Host...)
		buf = append(buf, ' ')
		if rng.Float64() < opt.FailRatio {
			// Half the failures come from a few busy attackers (an
			// exponential pick), half spread evenly over all of them.
			a := rng.IntN(opt.Attackers)
			if rng.IntN(2) == 0 {
				a = int(math.Min(float64(opt.Attackers-1), rng.ExpFloat64()*float64(opt.Attackers)/50))
			}
			if !seen[a] {
				seen[a] = true
				st.Attackers++
			}
			pid++
			buf = failure(buf, rng, pid, Attacker(a))
			st.Failures++
		} else {
			pid++
			buf = noise(buf, rng, pid)
		}
		buf = append(buf, '\n')
		n, err := bw.Write(buf)
		st.Bytes += int64(n)
		if err != nil {
			return st, fmt.Errorf("write generated log: %w", err)
		}
		st.Lines++
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("write generated log: %w", err)
	}
	return st, nil
}

func failure(b []byte, rng *rand.Rand, pid int, a netip.Addr) []byte {
	port := 1024 + rng.IntN(64000)
	u := users[rng.IntN(len(users))]
	switch rng.IntN(4) {
	case 0:
		return fmt.Appendf(b, "sshd[%d]: Failed password for root from %s port %d ssh2", pid, a, port)
	case 1:
		return fmt.Appendf(b, "sshd[%d]: Failed password for invalid user %s from %s port %d ssh2", pid, u, a, port)
	case 2:
		return fmt.Appendf(b, "sshd[%d]: Invalid user %s from %s port %d", pid, u, a, port)
	default:
		return fmt.Appendf(b, "sshd[%d]: error: maximum authentication attempts exceeded for %s from %s port %d ssh2 [preauth]", pid, u, a, port)
	}
}

func noise(b []byte, rng *rand.Rand, pid int) []byte {
	s := staff[rng.IntN(len(staff))]
	switch rng.IntN(9) {
	case 0:
		return fmt.Appendf(b, "CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", pid)
	case 1:
		return fmt.Appendf(b, "CRON[%d]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)", pid)
	case 2:
		return fmt.Appendf(b, "CRON[%d]: pam_unix(cron:session): session closed for user root", pid)
	case 3:
		return fmt.Appendf(b, "sudo[%d]:    %s : TTY=pts/%d ; PWD=/home/%s ; USER=root ; COMMAND=%s", pid, s, rng.IntN(4), s, cmds[rng.IntN(len(cmds))])
	case 4:
		return fmt.Appendf(b, "sshd[%d]: Accepted publickey for %s from 198.51.100.%d port %d ssh2: ED25519 SHA256:c3RhZmZrZXlzdGFmZmtleXN0YWZma2V5c3RhZmZrZXk", pid, s, 200+rng.IntN(50), 1024+rng.IntN(64000))
	case 5:
		return fmt.Appendf(b, "sshd[%d]: pam_unix(sshd:session): session opened for user %s(uid=%d) by (uid=0)", pid, s, 1000+rng.IntN(3))
	case 6:
		return fmt.Appendf(b, "systemd-logind[412]: New session %d of user %s.", rng.IntN(100000), s)
	case 7:
		return fmt.Appendf(b, "systemd[1]: Started session-%d.scope - Session %d of User %s.", pid, pid, s)
	default:
		return fmt.Appendf(b, "kernel: [%d.%06d] %s", rng.IntN(900000), rng.IntN(1000000), kernels[rng.IntN(len(kernels))])
	}
}
