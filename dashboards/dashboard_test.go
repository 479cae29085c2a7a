package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
)

var update = flag.Bool("update", false, "rewrite ctwatch.json from the generator")

const committed = "ctwatch.json"

// promQL is Prometheus's parser with its default options: no experimental
// functions, which a stock Prometheus would reject.
var promQL = parser.NewParser(parser.Options{})

// testVars are values for every variable a query may use: the
// dashboard's own and Grafana's built-in ones.
var testVars = map[string]string{
	varDatasource:     "prometheus",
	varJob:            "ctwatch",
	varInstance:       ".+",
	varUDPTimeout:     "30",
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__range":         "6h",
}

func readCommitted(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGenerated fails when the committed ctwatch.json is not what the
// generator writes. Rewrite it with go test ./dashboards -run
// TestGenerated -update (or go generate ./dashboards) and review the diff.
func TestGenerated(t *testing.T) {
	got, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(committed, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(string(readCommitted(t)), string(got)); diff != "" {
		t.Errorf("%s differs from the generator (-committed +generated); "+
			"run go generate ./dashboards:\n%s", committed, diff)
	}
}

// TestStrictUnmarshal reads ctwatch.json back with the SDK's strict
// decoder, which rejects unknown and mistyped fields in the dashboard,
// its panels, their options and field configs, and the Prometheus
// queries (the panel and query types must be registered for that).
//
// The strict decoder of SDK v0.0.22 validates but drops every panel it
// has decoded (see strictErr), so the content is checked on a second,
// ordinary decode, and mutated copies prove that the strictness reaches
// into panels and queries.
func TestStrictUnmarshal(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw := readCommitted(t)
	var strict dashboard.Dashboard
	if err := strictErr(strict.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("strict unmarshal of %s: %v", committed, err)
	}
	if strict.Uid == nil || *strict.Uid != UID {
		t.Errorf("uid = %v, want %s", strict.Uid, UID)
	}

	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	built, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Panels) != len(built.Panels) {
		t.Fatalf("%d panels read back, %d built", len(d.Panels), len(built.Panels))
	}
	targets := 0
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue // a row
		}
		if p.Panel.Options == nil {
			t.Errorf("panel %q: options were not decoded", *p.Panel.Title)
		}
		for i, q := range p.Panel.Targets {
			pq, ok := q.(*prometheus.Dataquery)
			if !ok {
				t.Errorf("panel %q target %d decoded as %T, want a Prometheus query",
					*p.Panel.Title, i, q)
				continue
			}
			if pq.Expr == "" {
				t.Errorf("panel %q target %d has no expression", *p.Panel.Title, i)
			}
			targets++
		}
	}
	if targets == 0 {
		t.Error("no Prometheus query read back")
	}

	for _, tc := range []struct {
		name   string
		mutate func(d map[string]any)
		want   string
	}{
		{"unknown dashboard field", func(d map[string]any) { d["bogus"] = 1 }, "bogus"},
		{"unknown panel option", func(d map[string]any) {
			firstPanel(t, d, "heatmap")["options"].(map[string]any)["bogus"] = 1
		}, "bogus"},
		{"unknown query field", func(d map[string]any) {
			p := firstPanel(t, d, "timeseries")
			p["targets"].([]any)[0].(map[string]any)["bogus"] = 1
		}, "bogus"},
		{"mistyped field config", func(d map[string]any) {
			p := firstPanel(t, d, "timeseries")
			p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["unit"] = 7
		}, "unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			tc.mutate(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard.Dashboard
			err = strictErr(d.UnmarshalJSONStrict(b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// firstPanel returns the first panel of type typ in a decoded dashboard.
func firstPanel(t *testing.T, d map[string]any, typ string) map[string]any {
	t.Helper()
	for _, p := range d["panels"].([]any) {
		if pm := p.(map[string]any); pm["type"] == typ {
			return pm
		}
	}
	t.Fatalf("no %s panel", typ)
	return nil
}

// strictErr works around the SDK's strict decoders (v0.0.22), which
// return their error list as an error even when it is empty: a typed nil
// cog.BuildErrors is a non-nil error.
func strictErr(err error) error {
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		return nil
	}
	return err
}

func TestStrictErr(t *testing.T) {
	var none cog.BuildErrors
	if err := strictErr(none); err != nil {
		t.Errorf("empty list: %v, want nil", err)
	}
	some := cog.BuildErrors{{Path: "panels[0]", Message: "bad"}}
	if err := strictErr(some); err == nil {
		t.Error("a list with an error was taken for success")
	}
	// The decoder must still reject what it should: an unknown field.
	var d dashboard.Dashboard
	err := strictErr(d.UnmarshalJSONStrict([]byte(`{"title": "x", "bogus": 1}`)))
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field: error %v, want one naming it", err)
	}
}

// TestNoDatasourceInputs makes sure the dashboard needs no ${DS_...}
// input on import: every datasource is the datasource variable.
func TestNoDatasourceInputs(t *testing.T) {
	b := readCommitted(t)
	for _, bad := range []string{"${DS_", "__inputs", "__requires"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("%s contains %q", committed, bad)
		}
	}
	if n := bytes.Count(b, []byte(`"uid": "${datasource}"`)); n == 0 {
		t.Error("no datasource refers to the ${datasource} variable")
	}
}

// TestQueriesParse parses every query with Prometheus's own PromQL
// parser after substituting the template variables.
func TestQueriesParse(t *testing.T) {
	qs, err := Queries(readCommitted(t))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, q := range qs {
		kinds[q.Kind]++
		expr, err := Expand(q.Expr, testVars)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		if _, err := promQL.ParseExpr(expr); err != nil {
			t.Errorf("%s: %v\n%s", q.Where, err, expr)
		}
	}
	for _, k := range []string{"panel", "variable", "annotation"} {
		if kinds[k] == 0 {
			t.Errorf("no %s query found", k)
		}
	}
}

// TestVariablesDefined checks that every variable a query uses is one of
// the dashboard's variables or a Grafana built-in, so that Expand's map
// above is not hiding a typo such as $instnace.
func TestVariablesDefined(t *testing.T) {
	b := readCommitted(t)
	names, err := VariableNames(b)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"__rate_interval": "1m", "__interval": "15s", "__range": "6h",
	}
	for _, n := range names {
		vars[n] = "x"
	}
	qs, err := Queries(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if _, err := Expand(q.Expr, vars); err != nil {
			t.Errorf("%s: %v", q.Where, err)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"job": "ctwatch", "__rate_interval": "1m"}
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{name: "plain", in: `x{job=~"$job"}[$__rate_interval]`, want: `x{job=~"ctwatch"}[1m]`},
		{name: "braces and format", in: `${job} ${job:regex}`, want: `ctwatch ctwatch`},
		{name: "brackets", in: `[[job]]`, want: `ctwatch`},
		{name: "label_replace group kept", in: `"group $1"`, want: `"group $1"`},
		{name: "unknown", in: `x{instance=~"$instance"}`, err: ErrUnknownVariable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Expand(tc.in, vars)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Expand(%q) error %v, want %v", tc.in, err, tc.err)
			}
			if got != tc.want {
				t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestVariableExpr(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
		err             error
	}{
		{name: "label_values", raw: `"label_values(up{job=\"a\"}, instance)"`, want: `up{job="a"}`},
		{name: "query_result", raw: `"query_result(max(up))"`, want: `max(up)`},
		{name: "object form", raw: `{"query": "label_values(up, job)", "refId": "A"}`, want: `up`},
		{name: "label_names is not PromQL", raw: `"label_names()"`, err: ErrNotPromQL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := variableExpr([]byte(tc.raw))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPanelsCoverIssue pins the panels the timeout guide (docs/tuning.md)
// walks through, so that none is dropped or renamed without the guide.
func TestPanelsCoverIssue(t *testing.T) {
	d, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, p := range d.Panels {
		if p.Panel != nil && p.Panel.Title != nil {
			titles = append(titles, *p.Panel.Title)
		}
	}
	guide, err := os.ReadFile("../docs/tuning.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Drops by verdict",
		"Share of drops that are late",
		"Lateness past the ${udp_timeout} s UDP timeout",
		"What a longer UDP timeout would have accepted",
		"Answer time against the UDP timeout",
		"Flows per second",
		"Conntrack event loss",
		"Resyncs and loss windows",
		"Sources",
	} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel titled %q", want)
		}
		inGuide := strings.ReplaceAll(want, "${udp_timeout}", "<timeout>")
		if !bytes.Contains(guide, []byte(inGuide)) {
			t.Errorf("docs/tuning.md does not mention the panel %q", inGuide)
		}
	}
}
