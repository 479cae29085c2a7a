// Package promtest runs a real Prometheus server (the Debian package's
// binary) on loopback for end-to-end tests, scraping one target, and
// queries it over its HTTP API.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

// Server is a running Prometheus.
type Server struct {
	URL string
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs Prometheus scraping target (host:port) every second with
// job name job, plus any rule files, until the test ends.
func Start(t testing.TB, job, target string, ruleFiles ...string) *Server {
	t.Helper()
	privtest.RequireCommand(t, "prometheus")
	dir := t.TempDir()
	rules := ""
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		rules += fmt.Sprintf("  - %q\n", abs)
	}
	if rules != "" {
		rules = "rule_files:\n" + rules
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
%sscrape_configs:
  - job_name: %q
    static_configs:
      - targets: [%q]
`, rules, job, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	cmd := exec.Command("prometheus",
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query evaluates an instant PromQL query now.
func (s *Server) Query(ctx context.Context, q string) ([]Sample, error) {
	return s.query(ctx, q, time.Time{})
}

// QueryAt evaluates an instant PromQL query at time at. Tests use it to
// look at a moment when the target was still up: once a target is gone,
// Prometheus marks its series stale and a query now returns nothing.
func (s *Server) QueryAt(ctx context.Context, q string, at time.Time) ([]Sample, error) {
	return s.query(ctx, q, at)
}

func (s *Server) query(ctx context.Context, q string, at time.Time) ([]Sample, error) {
	params := url.Values{"query": {q}}
	if !at.IsZero() {
		params.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	resp, err := s.get(ctx, "/api/v1/query?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: decode: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", q, body.Data.ResultType)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", q, r.Value[1], err)
		}
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

func (s *Server) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// Rule is the evaluation state of one recording or alerting rule.
type Rule struct {
	Group string
	Name  string
	Type  string // "recording" or "alerting"
	// Health is "ok", "err" or "unknown" (not yet evaluated).
	Health    string
	LastError string
	// State is an alert's state: inactive, pending or firing.
	State string
}

// Rules returns the state of every rule Prometheus has loaded.
func (s *Server) Rules(ctx context.Context) ([]Rule, error) {
	resp, err := s.get(ctx, "/api/v1/rules")
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Type      string `json:"type"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("rules: decode: %w", err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("rules: %s", body.Error)
	}
	var out []Rule
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			out = append(out, Rule{Group: g.Name, Name: r.Name, Type: r.Type,
				Health: r.Health, LastError: r.LastError, State: r.State})
		}
	}
	return out, nil
}

// Scalar evaluates q and returns its single value.
func (s *Server) Scalar(ctx context.Context, q string) (float64, error) {
	v, err := s.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("query %q: %d samples, want 1", q, len(v))
	}
	return v[0].Value, nil
}
