package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	MemMiB int    `json:"mem_mib"`
	Arch   string `json:"arch"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, %d MiB, Linux %s (%s)", m.CPU, m.Cores, m.MemMiB, m.Kernel, m.Arch)
}

func probeMachine() Machine {
	m := Machine{CPU: "unknown CPU", Cores: runtime.NumCPU(), Arch: runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemMiB = int(uint64(si.Totalram) * uint64(si.Unit) >> 20)
	}
	return m
}
