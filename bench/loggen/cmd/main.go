// Command loggen writes a deterministic, realistic auth.log for
// benchmarks: go run ./bench/loggen/cmd -n 1000000 > auth.log
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/xdpban/xdpban/bench/loggen"
)

func main() {
	var o loggen.Options
	flag.IntVar(&o.Lines, "n", 1_000_000, "number of lines")
	flag.Float64Var(&o.FailRatio, "fail", 0.30, "share of sshd failure lines (0-1)")
	flag.IntVar(&o.Attackers, "attackers", 50_000, "distinct attacker addresses (documentation ranges)")
	flag.Uint64Var(&o.Seed, "seed", 1, "random seed (same seed, same bytes)")
	flag.DurationVar(&o.Span, "span", 0, "time the lines cover (default 24h)")
	flag.Parse()
	if flag.NArg() != 0 || o.Lines < 1 || o.FailRatio < 0 || o.FailRatio > 1 || o.Attackers < 1 {
		fmt.Fprintln(os.Stderr, "loggen: bad arguments: usage: loggen [-n LINES] [-fail RATIO 0-1] [-attackers N] [-seed S] > FILE")
		os.Exit(2)
	}
	st, err := loggen.Generate(os.Stdout, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loggen: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "loggen: %d lines, %d failures from %d addresses, %d bytes\n", st.Lines, st.Failures, st.Attackers, st.Bytes)
}
