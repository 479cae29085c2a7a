// Command benchtable turns the output of scripts/bench (the `go test
// -bench` runs of ctwatch's benchmarks plus a few configuration lines)
// into the markdown table of the README's Performance section. It fails,
// naming what is absent, when a benchmark or figure is missing.
//
//	scripts/bench                    # runs the benchmarks, then this
//	go run ./internal/benchtable < raw.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(_ context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	in := fs.String("in", "-", "benchmark output to read, - for stdin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		r = f
	}
	res, err := Parse(r)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	table, err := Build(res)
	if err != nil {
		return fmt.Errorf("build table: %w", err)
	}
	_, err = io.WriteString(stdout, table)
	return err
}
