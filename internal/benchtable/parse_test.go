package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	const pkg = "pkg: github.com/ctwatch/ctwatch/internal/correlate\n"
	for _, tc := range []struct {
		name     string
		in       string
		metrics  map[string]map[string][]float64
		failures []string
		skipped  []string
	}{
		{
			name: "custom units and GOMAXPROCS suffix",
			in: pkg + "cpu: AMD EPYC\n" +
				"BenchmarkMatch/late-2   \t 1822400\t 655.6 ns/op\t 1525343 drops/s\n",
			metrics: map[string]map[string][]float64{
				"correlate.BenchmarkMatch/late": {"ns/op": {655.6}, "drops/s": {1525343}},
			},
		},
		{
			name: "no suffix with -cpu=1, B/op and allocs",
			in: pkg + "BenchmarkParseLine \t 1\t 11167 ns/op\t 15.67 MB/s\t" +
				" 89550 lines/s\t 5016 B/op\t 7 allocs/op\n",
			metrics: map[string]map[string][]float64{
				"correlate.BenchmarkParseLine": {"ns/op": {11167}, "MB/s": {15.67},
					"lines/s": {89550}, "B/op": {5016}, "allocs/op": {7}},
			},
		},
		{
			name: "name split from results by child output",
			in: pkg + "BenchmarkFollower/udp-only-2  \t" +
				"level=INFO msg=\"follower started\"\n" +
				"2026/12/04 06:10:00 child says hello\n" +
				"3 flows left\n" +
				"       1\t6368311703 ns/op\t 0 overflows\n",
			metrics: map[string]map[string][]float64{
				"correlate.BenchmarkFollower/udp-only": {"ns/op": {6368311703},
					"overflows": {0}},
			},
		},
		{
			name: "log lines and BENCH blocks ignored",
			in: pkg + "BenchmarkObserve-2 \t 10\t 980.9 ns/op\t 3058532 events/s\n" +
				"--- BENCH: BenchmarkObserve-2\n" +
				"    bench_test.go:241: sent udp=59980: 12 events/s\n" +
				"PASS\nok  \tgithub.com/ctwatch/ctwatch/internal/correlate\t8.699s\n",
			metrics: map[string]map[string][]float64{
				"correlate.BenchmarkObserve": {"ns/op": {980.9}, "events/s": {3058532}},
			},
		},
		{
			name: "repeated runs keep every value",
			in: pkg + "BenchmarkObserve-2 \t 10\t 1 events/s\n" +
				"BenchmarkObserve-2 \t 10\t 3 events/s\n",
			metrics: map[string]map[string][]float64{
				"correlate.BenchmarkObserve": {"events/s": {1, 3}},
			},
		},
		{
			name: "failures and skips recorded",
			in: pkg + "--- FAIL: BenchmarkMatch/late-2\n" +
				"    bench_test.go:12: verdicts wrong\n" +
				"--- SKIP: BenchmarkFollower\n" +
				"FAIL\tgithub.com/ctwatch/ctwatch/internal/correlate\t1.2s\n",
			metrics:  map[string]map[string][]float64{},
			failures: []string{"BenchmarkMatch/late-2", "github.com/ctwatch/ctwatch/internal/correlate"},
			skipped:  []string{"BenchmarkFollower"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.metrics, res.Metrics); d != "" {
				t.Errorf("metrics (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.failures, res.Failures); d != "" {
				t.Errorf("failures (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.skipped, res.Skipped); d != "" {
				t.Errorf("skipped (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{
			name: "unit without value",
			in:   "pkg: p\nBenchmarkX-2 \t 1\t 5 ns/op\t events/s\n",
			want: "line 2: 3 fields after the iteration count",
		},
		{
			name: "value that is no number",
			in:   "pkg: p\nBenchmarkX-2 \t 1\t 5 ns/op\t many events/s\n",
			want: `line 2: value of events/s: strconv.ParseFloat: parsing "many"`,
		},
		{
			name: "result before pkg",
			in:   "BenchmarkX-2 \t 1\t 5 ns/op\n",
			want: "line 1: result before any pkg line",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestMetricMedian(t *testing.T) {
	res := &Results{Metrics: map[string]map[string][]float64{
		"a": {"odd": {9, 1, 5}, "even": {4, 1, 3, 2}},
	}}
	for _, tc := range []struct {
		name, key, unit string
		want            float64
		ok              bool
	}{
		{"odd count", "a", "odd", 5, true},
		{"even count", "a", "even", 2.5, true},
		{"unknown unit", "a", "lines/s", 0, false},
		{"unknown benchmark", "b", "odd", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := res.Metric(tc.key, tc.unit)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Metric = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
