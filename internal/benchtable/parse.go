package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Results holds what one or more `go test -bench` runs printed.
type Results struct {
	// Config holds the "key: value" lines (goos, pkg, cpu, and the ones
	// scripts/bench adds: date, kernel, cores, command, settings); the
	// first value of a key wins, except pkg, which changes per package.
	Config map[string]string
	// Metrics maps a benchmark key (see Key) to its metrics by unit, one
	// value per result line (-count may repeat a benchmark).
	Metrics map[string]map[string][]float64
	// Failures lists the benchmarks and packages that reported FAIL.
	Failures []string
	// Skipped lists the benchmarks that reported SKIP.
	Skipped []string
}

// Key names a benchmark by the last element of its package path and its
// name without the GOMAXPROCS suffix: "correlate.BenchmarkMatch/late".
func Key(pkg, name string) string {
	return pkg[strings.LastIndexByte(pkg, '/')+1:] + "." + name
}

var (
	configLine = regexp.MustCompile(`^([a-z][a-zA-Z0-9_-]*):\s+(.*\S)\s*$`)
	// benchName is a benchmark name at the start of a line; go test prints
	// it before the benchmark runs, so anything the benchmark writes to
	// the same stream may land between the name and its results.
	benchName = regexp.MustCompile(`^(Benchmark\S*)`)
	procs     = regexp.MustCompile(`-\d+$`)
	failLine  = regexp.MustCompile(`^\s*(?:--- FAIL: (\S+)|FAIL\s+(\S+))`)
	skipLine  = regexp.MustCompile(`^\s*--- SKIP: (\S+)`)
)

// Parse reads `go test -bench` output. It understands custom units from
// b.ReportMetric and tolerates log lines, `--- BENCH:` blocks, and
// output that splits a benchmark's name from its results. It fails on
// result lines it cannot read, so that no figure is silently dropped.
func Parse(r io.Reader) (*Results, error) {
	res := &Results{
		Config:  map[string]string{},
		Metrics: map[string]map[string][]float64{},
	}
	var (
		pkg     string
		pending string // a name whose results have not been seen yet
		lineNo  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if m := failLine.FindStringSubmatch(line); m != nil {
			res.Failures = append(res.Failures, m[1]+m[2])
			continue
		}
		if m := skipLine.FindStringSubmatch(line); m != nil {
			res.Skipped = append(res.Skipped, m[1])
			continue
		}
		if m := configLine.FindStringSubmatch(line); m != nil {
			if m[1] == "pkg" {
				pkg = m[2]
			} else if _, ok := res.Config[m[1]]; !ok {
				res.Config[m[1]] = m[2]
			}
			continue
		}

		rest, named := line, false
		if m := benchName.FindStringSubmatch(line); m != nil {
			pending = procs.ReplaceAllString(m[1], "")
			rest, named = line[len(m[1]):], true
		} else if pending == "" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue // the name alone; results follow on a later line
		}
		if _, err := strconv.ParseUint(fields[0], 10, 64); err != nil {
			// Output written while the benchmark ran; the results may
			// still follow.
			continue
		}
		metrics, err := parseMetrics(fields[1:])
		if err != nil {
			if !named {
				continue // a stray line that happens to start with a number
			}
			return nil, fmt.Errorf("line %d: %w: %q", lineNo, err, line)
		}
		if pkg == "" {
			return nil, fmt.Errorf("line %d: result before any pkg line", lineNo)
		}
		key := Key(pkg, pending)
		pending = ""
		if res.Metrics[key] == nil {
			res.Metrics[key] = map[string][]float64{}
		}
		for unit, v := range metrics {
			res.Metrics[key][unit] = append(res.Metrics[key][unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return res, nil
}

// parseMetrics reads the "value unit" pairs of a result line.
func parseMetrics(fields []string) (map[string]float64, error) {
	if len(fields) == 0 || len(fields)%2 != 0 {
		return nil, fmt.Errorf("%d fields after the iteration count, want "+
			"value/unit pairs", len(fields))
	}
	m := make(map[string]float64, len(fields)/2)
	for i := 0; i < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return nil, fmt.Errorf("value of %s: %w", fields[i+1], err)
		}
		m[fields[i+1]] = v
	}
	return m, nil
}

// Metric returns the median of a benchmark's values in unit, and whether
// the benchmark reported that unit at all.
func (r *Results) Metric(key, unit string) (float64, bool) {
	vs := r.Metrics[key][unit]
	if len(vs) == 0 {
		return 0, false
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2, true
	}
	return vs[len(vs)/2], true
}
