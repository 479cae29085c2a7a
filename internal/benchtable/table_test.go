package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The fixture testdata/bench.txt is real output of `scripts/bench --short
// --fixture`; -update rewrites the golden table from it.
var update = flag.Bool("update", false, "rewrite testdata/table.golden.md")

const fixture = "testdata/bench.txt"

func readFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunGolden(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-in", fixture}, nil, &out); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "table.golden.md")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), out.String()); d != "" {
		t.Errorf("table differs from %s (-want +got); run with -update if "+
			"the fixture changed:\n%s", golden, d)
	}
}

// TestBuildMissing removes one benchmark or configuration line at a time
// from the fixture and checks that the table is refused, naming the gap.
func TestBuildMissing(t *testing.T) {
	raw := readFixture(t)
	for _, tc := range []struct {
		name, drop, want string
	}{
		{"follower subbenchmark", "BenchmarkFollower/with-tcp-noise-no-bpf",
			"events.BenchmarkFollower/with-tcp-noise-no-bpf ctwatch-cpu-s/Mevents"},
		{"memory benchmark", "BenchmarkMemoryPerFlow/live",
			"correlate.BenchmarkMemoryPerFlow/live bytes/flow"},
		{"parser against grep", "BenchmarkVersusGrep",
			"kernlog.BenchmarkVersusGrep parser-lines/s"},
		{"drop to verdict", "BenchmarkDropToVerdict",
			"demo.BenchmarkDropToVerdict late-p99-ms"},
		{"NFLOG latency", "BenchmarkDropLatency",
			"nflog.BenchmarkDropLatency kernel-to-emit-p50-ns"},
		{"kernel config line", "kernel:", "config line kernel:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kept []string
			for _, l := range strings.Split(raw, "\n") {
				if !strings.HasPrefix(l, tc.drop) {
					kept = append(kept, l)
				}
			}
			if len(kept) == strings.Count(raw, "\n")+1 {
				t.Fatalf("fixture has no line starting with %q", tc.drop)
			}
			res, err := Parse(strings.NewReader(strings.Join(kept, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(res)
			if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrMissing naming %q", err, tc.want)
			}
		})
	}
}

func TestBuildRefusesFailures(t *testing.T) {
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"failed benchmark", "--- FAIL: BenchmarkDropToVerdict-2\n",
			"benchmarks failed: BenchmarkDropToVerdict-2; skipped: none"},
		{"skipped benchmark", "--- SKIP: BenchmarkFollower\n",
			"benchmarks failed: none; skipped: BenchmarkFollower"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(readFixture(t) + tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Build(res); err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGoals(t *testing.T) {
	// Each goal is judged from the figures, not assumed: push one figure
	// past its goal and the row says so.
	for _, tc := range []struct {
		name, key, unit string
		value           float64
		want            string
	}{
		{"loss", "events.BenchmarkFollower/udp-only", "overflows", 1,
			"zero loss: **missed**"},
		{"kernel drops", "events.BenchmarkFollower/udp-only", "kernel-drops", 3,
			"zero loss: **missed**"},
		{"memory", "correlate.BenchmarkMemoryPerFlow/live", "bytes/flow", 129,
			"≤ 128 bytes/flow: **missed**"},
		{"parser", "kernlog.BenchmarkVersusGrep", "parser-lines/s", 999_999,
			"≥ 1M lines/s: **missed**"},
		{"latency", "demo.BenchmarkDropToVerdict", "late-p99-ms", 5,
			"p99 < 5 ms: **missed**"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(readFixture(t)))
			if err != nil {
				t.Fatal(err)
			}
			res.Metrics[tc.key][tc.unit] = []float64{tc.value}
			table, err := Build(res)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(table, tc.want) {
				t.Errorf("table lacks %q:\n%s", tc.want, table)
			}
		})
	}
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   float64
		want string
	}{
		{"small", 7, "7"},
		{"rounded", 999.6, "1,000"},
		{"millions", 1525343, "1,525,343"},
		{"negative", -12345, "-12,345"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(tc.in); got != tc.want {
				t.Errorf("count(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
