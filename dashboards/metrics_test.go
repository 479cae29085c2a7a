package dashboards

import (
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/metrics"
)

const rulesFile = "../deploy/prometheus/ctwatch-rules.yml"

// scrapedNames returns the names of the series a ctwatch exports, from a
// registry made by metrics.New with every source configured and fed one
// verdict of each class, flow events, answer times and a loss window:
// what Prometheus would store from a scrape of a busy ctwatch.
func scrapedNames(t *testing.T) map[string]bool {
	t.Helper()
	now := time.Now()
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg, metrics.Options{
		Conntrack: func() metrics.ConntrackStats {
			return metrics.ConntrackStats{Up: true, LastMessage: now, Messages: 10,
				EventsLostKnown: true, ReceiveBufferBytes: 64 << 20}
		},
		KernelLog: func() metrics.KernelLogStats {
			return metrics.KernelLogStats{Up: true, LastRecord: now, Firewall: 3}
		},
		NFLOG: func() []metrics.NFLOGGroupStats {
			return []metrics.NFLOGGroupStats{{Group: 1, Up: true, LastRecord: now,
				Messages: 3, DecodeErrors: map[string]uint64{"truncated": 0}}}
		},
		Correlator: func() metrics.CorrelatorStats {
			return metrics.CorrelatorStats{LiveFlows: 1, ExpiredFlows: 2, Capacity: 100,
				WarmUpComplete: true}
		},
		IgnoredDrops: func() map[string]uint64 { return map[string]uint64{"nflog": 1} },
		UDPTimeouts: func() (events.UDPTimeouts, error) {
			return events.UDPTimeouts{Timeout: 30 * time.Second,
				StreamTimeout: 120 * time.Second}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	d := events.Drop{Source: events.SourceNFLOG, Time: now, Received: now, Proto: 17,
		Src: netip.MustParseAddrPort("198.18.0.53:53"),
		Dst: netip.MustParseAddrPort("198.18.1.2:40000")}
	for _, v := range []correlate.Verdict{
		{Drop: d, Class: correlate.Late, Answered: false, Lateness: time.Second, Age: 31 * time.Second},
		{Drop: d, Class: correlate.Late, Answered: true, Lateness: 2 * time.Second, Age: 40 * time.Second},
		{Drop: d, Class: correlate.Unsolicited},
		{Drop: d, Class: correlate.Tracked, Age: time.Second},
		{Drop: d, Class: correlate.Unknown, Reason: correlate.ReasonEventLoss},
	} {
		m.ObserveVerdict(v)
	}
	for _, ty := range []events.FlowEventType{
		events.FlowSeen, events.FlowStarted, events.FlowReplied, events.FlowExpired,
	} {
		m.ObserveFlow(events.FlowEvent{Type: ty})
	}
	m.ObserveAnswerTime(20 * time.Millisecond)
	m.ObserveLoss(events.LossEvent{Start: now, End: now.Add(time.Second), Resynced: true})

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			// Prometheus stores classic histograms as three series.
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				names[mf.GetName()+suffix] = true
			}
			continue
		}
		names[mf.GetName()] = true
	}
	return names
}

// metricNames returns the metric names expr selects, from vector and
// matrix selectors (a __name__ matcher counts only when it is an exact
// match).
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promQL.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%v\n%s", err, expr)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			t.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names
}

// ruleFile is the part of a Prometheus rule file this test reads.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// recordedNames returns the series the recording rules record, each
// checked to be computed only from scraped series or from rules recorded
// before it.
func recordedNames(t *testing.T, scraped map[string]bool) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			for _, n := range metricNames(t, r.Expr) {
				if !scraped[n] && !recorded[n] {
					t.Errorf("rule %s%s in %s uses %s, which neither ctwatch "+
						"exports nor an earlier rule records", r.Record, r.Alert, g.Name, n)
				}
			}
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	if len(recorded) == 0 {
		t.Fatalf("%s records nothing", rulesFile)
	}
	return recorded
}

// TestQueryMetricsExist checks that every metric a dashboard query reads
// is one ctwatch exports or one the recording rules record from what it
// exports.
func TestQueryMetricsExist(t *testing.T) {
	scraped := scrapedNames(t)
	recorded := recordedNames(t, scraped)

	qs, err := Queries(readCommitted(t))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, q := range qs {
		expr, err := Expand(q.Expr, testVars)
		if err != nil {
			t.Fatalf("%s: %v", q.Where, err)
		}
		for _, n := range metricNames(t, expr) {
			used[n] = true
			if !scraped[n] && !recorded[n] {
				t.Errorf("%s uses %s, which is neither in a ctwatch scrape nor "+
					"recorded by %s", q.Where, n, rulesFile)
			}
		}
	}

	// Every recording rule should serve the dashboard or an alert; list
	// the dashboard's use for the log, so a reviewer sees the split.
	var fromRules []string
	for n := range used {
		if recorded[n] {
			fromRules = append(fromRules, n)
		}
	}
	sort.Strings(fromRules)
	t.Logf("dashboard reads %d metrics, %d of them recorded: %v",
		len(used), len(fromRules), fromRules)
	if len(fromRules) == 0 {
		t.Error("the dashboard reads no recording rule")
	}
}

// TestScrapeMatchesGolden keeps scrapedNames honest: the names it makes
// must be those of the golden scrape the metrics package checks in, so a
// metric renamed there cannot slip past this package's tests.
func TestScrapeMatchesGolden(t *testing.T) {
	b, err := os.ReadFile("../internal/metrics/testdata/scrape.golden.prom")
	if err != nil {
		t.Fatal(err)
	}
	golden := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		end := len(line)
		for i, c := range line {
			if c == '{' || c == ' ' {
				end = i
				break
			}
		}
		golden[line[:end]] = true
	}
	scraped := scrapedNames(t)
	delete(scraped, "ctwatch_build_info") // left out of the golden file
	for n := range scraped {
		if !golden[n] {
			t.Errorf("%s is in a scrape but not in the golden scrape", n)
		}
	}
	for n := range golden {
		if !scraped[n] {
			t.Errorf("%s is in the golden scrape but not in this test's scrape", n)
		}
	}
}
