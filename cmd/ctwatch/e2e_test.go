package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/dashboards"
	"github.com/ctwatch/ctwatch/internal/privtest"
	"github.com/ctwatch/ctwatch/internal/promtest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a
// running command and the reads of a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var reportRow = regexp.MustCompile(`(?m)^\s*(late/answered|late/unanswered|tracked|unsolicited)\s+(\d+)\s+(\d+)\s*$`)

// truthCounts reads the demo's closing table: class -> (truth, ctwatch).
func truthCounts(t *testing.T, report string) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	for _, m := range reportRow.FindAllStringSubmatch(report, -1) {
		a, _ := strconv.Atoi(m[2])
		b, _ := strconv.Atoi(m[3])
		out[m[1]] = [2]int{a, b}
	}
	if len(out) == 0 {
		t.Fatalf("no report table in demo output:\n%s", report)
	}
	return out
}

// runDemo runs `ctwatch demo` in-process with args and returns stdout and
// stderr once it has finished.
func runDemo(t *testing.T, args ...string) (string, string) {
	t.Helper()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	e := env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.run(ctx, append([]string{"demo"}, args...)); err != nil {
		t.Fatalf("demo: %v\nstderr:\n%s", err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// Paths of the shipped rules and dashboard, from this package.
const (
	rulesPath     = "../../deploy/prometheus/ctwatch-rules.yml"
	dashboardPath = "../../dashboards/ctwatch.json"
)

// TestPrometheusEndToEnd has a real Prometheus scrape ctwatch watching
// the lab and evaluate the shipped rules every second. PromQL over the
// scraped data must return the lab's ground truth counts of late and
// unsolicited drops, every rule must evaluate without error, and every
// query of the Grafana dashboard must return data.
func TestPrometheusEndToEnd(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "prometheus", "ip", "nft")
	port := promtest.FreePort(t)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	prom := promtest.Start(t, "ctwatch", target, rulesPath)

	stdout, stderr := runDemo(t, "--duration=8s", "--rate=30", "--linger=4s", "--output=json",
		"--web.listen-address="+target)
	// ctwatch served /metrics until just before the demo returned; its
	// series go stale at the first failed scrape after that, so the
	// dashboard is evaluated 2 s (two scrapes) before the end.
	lastUp := time.Now().Add(-2 * time.Second)
	counts := truthCounts(t, stderr)

	// stdout is one JSON verdict per line.
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("stdout line %d is not JSON: %v: %q", lines+1, err, sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("no verdicts on stdout")
	}

	ctx := context.Background()
	for _, tc := range []struct {
		query string
		want  int
	}{
		{`sum(last_over_time(ctwatch_drops_total{job="ctwatch",class="late"}[10m]))`,
			counts["late/answered"][0] + counts["late/unanswered"][0]},
		{`sum(last_over_time(ctwatch_drops_total{job="ctwatch",class="unsolicited"}[10m]))`,
			counts["unsolicited"][0]},
		{`sum(last_over_time(ctwatch_drops_total{job="ctwatch",class="tracked"}[10m]))`,
			counts["tracked"][0]},
		{`sum(last_over_time(ctwatch_late_response_lateness_seconds_count{job="ctwatch",answered="true"}[10m]))`,
			counts["late/answered"][0]},
	} {
		got, err := prom.Scalar(ctx, tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if int(got) != tc.want || tc.want == 0 {
			t.Errorf("%s = %v, ground truth %d", tc.query, got, tc.want)
		}
	}
	checkRules(t, prom)
	checkDashboard(t, prom, target, lastUp, counts)
}

// checkRules fails for any shipped rule that Prometheus could not
// evaluate or has not evaluated.
func checkRules(t *testing.T, prom *promtest.Server) {
	t.Helper()
	rules, err := prom.Rules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatalf("Prometheus loaded no rules from %s", rulesPath)
	}
	for _, r := range rules {
		if r.Health != "ok" {
			t.Errorf("rule %s/%s: health %q, error %q", r.Group, r.Name, r.Health, r.LastError)
		}
	}
}

// checkDashboard evaluates every query of the committed dashboard, with
// its variables set as Grafana would for this target, at time at.
func checkDashboard(t *testing.T, prom *promtest.Server, target string, at time.Time,
	counts map[string][2]int) {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	queries, err := dashboards.Queries(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The lab's UDP timeout, which the udp_timeout variable must find.
	const labTimeout = 3.0
	vars := map[string]string{
		"datasource":  "prometheus",
		"job":         "ctwatch",
		"instance":    target,
		"udp_timeout": strconv.FormatFloat(labTimeout, 'f', -1, 64),
		// Rate windows as Grafana would pick them for a short range at
		// a 1 s scrape interval; the range covers the whole run.
		"__rate_interval": "1m",
		"__interval":      "15s",
		"__range":         "5m",
	}
	ctx := context.Background()
	eval := func(expr string) []promtest.Sample {
		t.Helper()
		v, err := prom.QueryAt(ctx, expr, at)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// Queries that rightly return nothing in a lab run, each with why and
	// a check that the reason holds.
	emptyInLab := map[string]struct {
		why   string
		check func(expr string) error
	}{
		`annotation "UDP timeout changes"`: {
			why: "the lab never changes nf_conntrack_udp_timeout while ctwatch runs, " +
				"so changes() is 0 and the > 0 filter keeps nothing",
			check: func(expr string) error {
				inner, ok := strings.CutSuffix(expr, " > 0")
				if !ok {
					return fmt.Errorf("expected a changes(...) > 0 query, got %s", expr)
				}
				v := eval(inner)
				if len(v) == 0 {
					return fmt.Errorf("%s returned nothing: the timeout series is missing", inner)
				}
				for _, s := range v {
					if s.Value != 0 {
						return fmt.Errorf("%s = %v for %v, want 0", inner, s.Value, s.Metric)
					}
				}
				return nil
			},
		},
	}
	// The lab must produce what the lateness panels split by: late
	// packets of both answered and unanswered flows.
	if counts["late/unanswered"][0] == 0 || counts["late/answered"][0] == 0 {
		t.Fatalf("the lab produced no late packets of both kinds: %v", counts)
	}

	seen := map[string]bool{}
	for _, q := range queries {
		expr, err := dashboards.Expand(q.Expr, vars)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		samples := eval(expr)
		if empty, ok := emptyInLab[q.Where]; ok {
			seen[q.Where] = true
			if len(samples) != 0 {
				t.Errorf("%s returned %d samples though it should be empty (%s)",
					q.Where, len(samples), empty.why)
			}
			if err := empty.check(expr); err != nil {
				t.Errorf("%s: expected empty because %s; but %v", q.Where, empty.why, err)
			}
			continue
		}
		if !hasValue(samples) {
			t.Errorf("%s returned no data from the lab: %v\n%s", q.Where, samples, expr)
			continue
		}
		if q.Where == "variable udp_timeout" && samples[0].Value != labTimeout {
			t.Errorf("udp_timeout variable = %v, want the lab's %v", samples[0].Value, labTimeout)
		}
	}
	for where := range emptyInLab {
		if !seen[where] {
			t.Errorf("%s is listed as empty in the lab but is not in the dashboard", where)
		}
	}
	t.Logf("%d dashboard queries evaluated", len(queries))
}

// hasValue reports whether v holds a sample with a number (not NaN).
func hasValue(v []promtest.Sample) bool {
	for _, s := range v {
		if !math.IsNaN(s.Value) {
			return true
		}
	}
	return false
}
