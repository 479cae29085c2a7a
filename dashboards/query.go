package dashboards

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// selector is the label matcher every query carries: the dashboard's job
// and instance variables. The recording rules keep both labels, so raw
// and recorded series are filtered alike. Queries write it as $sel, which
// expand replaces before the JSON is written; Grafana never sees $sel.
const selector = `job=~"$job", instance=~"$instance"`

// expand replaces $sel in a PromQL template with selector.
func expand(expr string) string {
	return strings.ReplaceAll(expr, "$sel", selector)
}

// datasource is the reference every panel, query and variable uses: the
// datasource template variable, so that the dashboard needs no ${DS_...}
// input when it is imported and works unchanged when it is provisioned.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{
		Type: cog.ToPtr("prometheus"),
		Uid:  cog.ToPtr("${datasource}"),
	}
}

// query is one Prometheus target of a panel.
type query struct {
	expr   string // PromQL, with $sel for the selector
	legend string
	// instant asks for the value at the end of the time range only, as
	// stat and table panels show it.
	instant bool
	// format is how Grafana shapes the result; "" means time series.
	format prometheus.PromQueryFormat
}

// q is a range query with a legend.
func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// builders turns qs into SDK builders with reference IDs A, B, C...
func builders(qs []query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, qu := range qs {
		b := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(string(rune('A' + i))).
			Expr(expand(qu.expr)).
			EditorMode(prometheus.QueryEditorModeCode)
		if qu.legend != "" {
			b.LegendFormat(qu.legend)
		}
		if qu.instant {
			b.Instant()
		} else {
			b.Range()
		}
		if qu.format != "" {
			b.Format(qu.format)
		}
		out = append(out, b)
	}
	return out
}
