package main

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpban/xdpban/daemon"
	"github.com/xdpban/xdpban/daemon/store"
	"github.com/xdpban/xdpban/logwatch/source"
)

// attackerV6 is the i-th attacker: one per /64, the unit a jail bans.
func attackerV6(i int) string {
	return fmt.Sprintf("2001:db8:%x:%x::7", 0x100+i>>16, i&0xffff)
}

// TestFaultKill9LogPositions: a writer appends one failure per attacker
// (maxretry 1) at ~16,000 lines/s and the daemon is killed with SIGKILL
// while it bans them, three times. Every line before the log position the
// killed daemon saved must have its ban in the store: the restarted daemon
// resumes after that position and would never ask for those bans again.
// After the last restart every attacker written is banned.
func TestFaultKill9LogPositions(t *testing.T) {
	w := newWorld(t)
	logPath := w.jailLog(t, 1)
	d := w.start(t)
	const rounds, perRound, rate = 3, 4000, 16000 // 12,000 bans: below map_size_v6 (16384)
	next := 0
	for round := 1; round <= rounds; round++ {
		n := writeAndKill(t, d, logPath, &next, perRound, rate)
		st, err := store.Open(filepath.Join(w.state, daemon.DBFile), nil)
		if err != nil {
			t.Fatal(err)
		}
		var pos source.Position
		ok, err := st.LoadPosition("testjail|file:"+logPath, &pos)
		if err != nil || !ok {
			st.Close()
			t.Fatalf("round %d: no saved position (%v, %v)", round, ok, err)
		}
		stored, err := st.Bans()
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		have := map[netip.Prefix]bool{}
		for _, b := range stored {
			have[b.Prefix] = true
		}
		before := attackersBefore(t, logPath, pos.Offset)
		lost := 0
		for _, p := range before {
			if !have[p] {
				lost++
			}
		}
		t.Logf("round %d: kill -9 with %d lines written: %d attackers before the saved position, %d of their bans in the store, %d lost (%d bans stored)",
			round, n, len(before), len(before)-lost, lost, len(stored))
		if lost > 0 {
			t.Fatalf("round %d: %d of the %d bans the lines before the saved position asked for are not in the store: the restarted daemon reads on after them and never bans them", round, lost, len(before))
		}
		d = w.start(t)
	}
	want := attackersBefore(t, logPath, 1<<62)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := w.list(t)
		missing := 0
		for _, p := range want {
			if _, ok := got[p.String()]; !ok {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("after the last restart all %d attackers written are banned", len(want))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the restart %d of %d attackers written are not banned", missing, len(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeAndKill appends per failure lines (attackers *next on) at rate
// lines/s and kills d when 80% are written; it returns the lines written
// in all.
func writeAndKill(t *testing.T, d *daemonProc, logPath string, next *int, per, rate int) int {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const burst = 40
	tick := time.NewTicker(time.Second * burst / time.Duration(rate))
	defer tick.Stop()
	end := *next + per
	killAt := *next + per*8/10
	for *next < end {
		<-tick.C
		var b strings.Builder
		for k := 0; k < burst && *next < end; k++ {
			b.WriteString(failLine(attackerV6(*next), *next))
			*next++
		}
		if _, err := f.WriteString(b.String()); err != nil {
			t.Fatal(err)
		}
		if *next >= killAt && killAt > 0 {
			d.kill()
			killAt = -1
		}
	}
	return *next
}

// attackersBefore lists the /64 of each failure line in the first off
// bytes of the log.
func attackersBefore(t *testing.T, path string, off int64) []netip.Prefix {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(io.LimitReader(f, off))
	for sc.Scan() {
		l := sc.Text()
		i := strings.Index(l, " from ")
		if i < 0 {
			continue
		}
		a, err := netip.ParseAddr(strings.Fields(l[i+6:])[0])
		if err != nil {
			continue
		}
		p, _ := a.Prefix(64)
		out = append(out, p)
	}
	return out
}
