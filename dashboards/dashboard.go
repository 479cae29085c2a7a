// Package dashboards builds ctwatch's Grafana dashboard from Go code with
// the Grafana foundation SDK. The JSON it writes, ctwatch.json, is
// committed; `go generate ./dashboards` rewrites it and a test fails when
// the committed file and the code disagree.
//
// The dashboard reads the Prometheus metrics ctwatch exports and the
// recording rules of deploy/prometheus/ctwatch-rules.yml. It chooses its
// Prometheus through a datasource variable and has no ${DS_...} inputs,
// so the same file can be imported by hand or provisioned from disk.
// docs/tuning.md explains how to read it.
package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// UID is the dashboard's fixed identifier, so that links to it survive a
// re-import and provisioning replaces rather than duplicates it.
const UID = "ctwatch-udp-timeout"

// Variable names the panel queries refer to as $job, $instance and
// ${udp_timeout}.
const (
	varDatasource = "datasource"
	varJob        = "job"
	varInstance   = "instance"
	varUDPTimeout = "udp_timeout"
)

// Build returns the dashboard. It fails only when the SDK rejects a panel
// or variable, which is a bug in this package.
func Build() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("ctwatch: late DNS answers and the UDP timeout").
		Uid(UID).
		Description("Verdicts on dropped UDP packets from port 53 (late answers "+
			"versus unsolicited packets), how late the late ones were against "+
			"the conntrack UDP timeout, and the health of ctwatch's sources. "+
			"See docs/tuning.md in the ctwatch repository.").
		Tags([]string{"ctwatch", "dns", "conntrack"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-6h", "now").
		Refresh("1m").
		Timezone("browser").
		WithVariable(datasourceVariable()).
		WithVariable(jobVariable()).
		WithVariable(instanceVariable()).
		WithVariable(udpTimeoutVariable()).
		Annotation(timeoutChangeAnnotation())

	ids := &panelIDs{}
	for _, r := range rows() {
		b.WithRow(dashboard.NewRowBuilder(r.title).Id(ids.next()))
		for _, p := range r.panels {
			b.WithPanel(p(ids.next()))
		}
	}

	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("build dashboard: %w", err)
	}
	return d, nil
}

// JSON returns the dashboard as the indented JSON committed in
// ctwatch.json, with a final newline.
func JSON() ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal dashboard: %w", err)
	}
	return append(out, '\n'), nil
}

// panelIDs hands out panel IDs in layout order, so that the JSON is the
// same on every run.
type panelIDs struct{ last uint32 }

func (p *panelIDs) next() uint32 {
	p.last++
	return p.last
}

// datasourceVariable lets the viewer pick any Prometheus datasource.
func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(varDatasource).
		Label("Data source").
		Type("prometheus")
}

// jobVariable lists the jobs that scrape a ctwatch.
func jobVariable() *dashboard.QueryVariableBuilder {
	return queryVariable(varJob, "Job", `label_values(ctwatch_build_info, job)`).
		Multi(false).
		IncludeAll(false)
}

// instanceVariable lists the ctwatch instances of the chosen job.
func instanceVariable() *dashboard.QueryVariableBuilder {
	return queryVariable(varInstance, "Instance",
		`label_values(ctwatch_build_info{job=~"$job"}, instance)`).
		Multi(true).
		IncludeAll(true).
		AllValue(".+")
}

// udpTimeoutVariable holds the current nf_conntrack_udp_timeout (the
// largest among the chosen instances) for panel titles. It is hidden: it
// is a value to read, not a choice to make.
func udpTimeoutVariable() *dashboard.QueryVariableBuilder {
	return queryVariable(varUDPTimeout, "UDP timeout",
		expand(`query_result(max(ctwatch_conntrack_udp_timeout_seconds{$sel, kind="udp"}))`)).
		Hide(dashboard.VariableHideHideVariable).
		// query_result prints `{} 30 1712345678000`: keep the value.
		Regex(`/^\S*\s+(\S+)\s/`)
}

func queryVariable(name, label, promQL string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(promQL)}).
		Definition(promQL).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// timeoutChangeAnnotation marks every change of a UDP timeout on the time
// axis of every panel, so that a lateness pattern can be read against the
// timeout that was in force at the time.
func timeoutChangeAnnotation() *dashboard.AnnotationQueryBuilder {
	return dashboard.NewAnnotationQueryBuilder().
		Name("UDP timeout changes").
		Datasource(datasource()).
		Enable(true).
		IconColor("red").
		Expr(expand(`changes(ctwatch_conntrack_udp_timeout_seconds{$sel}[2m]) > 0`)).
		Step("1m").
		TitleFormat("{{kind}} timeout changed on {{instance}}").
		TagKeys("kind,instance")
}
