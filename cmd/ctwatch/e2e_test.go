package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestPrometheusEndToEnd has a real Prometheus scrape ctwatch watching
// the lab; PromQL over the scraped data must return the lab's ground
// truth counts of late and unsolicited drops.
func TestPrometheusEndToEnd(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "prometheus", "ip", "nft")
	port := promtest.FreePort(t)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	prom := promtest.Start(t, "ctwatch", target)

	stdout, stderr := runDemo(t, "--duration=8s", "--rate=30", "--linger=4s", "--output=json",
		"--web.listen-address="+target)
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
}
