package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// panelFunc builds one panel with the ID it is given.
type panelFunc func(id uint32) cog.Builder[dashboard.Panel]

// row is a titled band of panels, laid out left to right.
type row struct {
	title  string
	panels []panelFunc
}

// rows is the dashboard from top to bottom: the verdicts first, then the
// numbers that decide a timeout, then traffic, then whether the numbers
// can be trusted.
func rows() []row {
	return []row{
		{"Verdicts", []panelFunc{dropsByClass, lateShare, lateProportion, unknownReasons}},
		{"Lateness and the UDP timeout", []panelFunc{
			latenessHeatmap, lateAgainstTimeout, acceptedByTimeout, answerTimeAgainstTimeout,
		}},
		{"Flows", []panelFunc{flowsPerSecond, conntrackEvents, flowIndex}},
		{"Event loss and source health", []panelFunc{
			sourcesUp, warmUp, sinceLastRecord, conntrackLoss, resyncs,
			dropSourceInput, dropSourceLoss,
		}},
	}
}

// timeoutQuery draws nf_conntrack_udp_timeout as a series; timeoutLine
// styles it as a threshold line. Grafana's thresholds are constants in
// the panel's JSON, so they cannot follow the kernel setting; a query can.
func timeoutQuery() query {
	return q(`max by (instance) (ctwatch_conntrack_udp_timeout_seconds{$sel, kind="udp"})`,
		"UDP timeout {{instance}}")
}

// timeoutLine is the override that draws series named "UDP timeout ..."
// as a dashed red line that does not stack and is not filled.
func timeoutLine() []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{
		{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}},
		{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
		{Id: "custom.lineWidth", Value: 2},
		{Id: "custom.fillOpacity", Value: 0},
		{Id: "custom.stacking", Value: map[string]any{"mode": "none", "group": "A"}},
	}
}

// timeSeries is the common shape of a time series panel.
func timeSeries(id uint32, title, desc, unit string, w, h uint32, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Id(id).
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Targets(builders(qs)).
		Unit(unit).
		Span(w).
		Height(h).
		Min(0).
		FillOpacity(10).
		LineWidth(1).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// logScale is a base-10 logarithmic axis, for seconds spanning
// milliseconds (answers from a nearby cache) to tens of seconds (the
// timeout).
func logScale() *common.ScaleDistributionConfigBuilder {
	return common.NewScaleDistributionConfigBuilder().
		Type(common.ScaleDistributionLog).
		Log(10)
}

func fixedColor(c string) []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{
		{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": c}},
	}
}

func dropsByClass(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Drops by verdict",
		"Dropped packets from port 53 per second, by ctwatch's verdict: late "+
			"(the answer came after its conntrack entry expired), unsolicited "+
			"(no query had a flow for it), tracked (a live flow matched, so a "+
			"rule problem) and unknown (see the next panels). 5-minute rates "+
			"from the recording rules.",
		"pps", 9, 8,
		q(`sum by (class) (job_instance_class:ctwatch_drops:rate5m{$sel})`, "{{class}}")).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).
		OverrideByName("late", fixedColor("orange")).
		OverrideByName("unsolicited", fixedColor("red")).
		OverrideByName("tracked", fixedColor("purple")).
		OverrideByName("unknown", fixedColor("text"))
}

func lateShare(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Share of drops that are late",
		"Late answers as a share of all dropped packets from port 53. Near "+
			"100% the drop log is mostly answers that came too late, not "+
			"attacks.",
		"percentunit", 5, 8,
		q(`sum(job_instance_class:ctwatch_drops:rate5m{$sel, class="late"})
  / sum(job_instance_class:ctwatch_drops:rate5m{$sel})`, "late share")).
		Max(1)
}

func lateProportion(id uint32) cog.Builder[dashboard.Panel] {
	return stat.NewPanelBuilder().
		Id(id).
		Title("Late packets per new flow").
		Description("Late packets per UDP/53 flow started, over the last 5 " +
			"minutes: about the share of queries that drew an answer after " +
			"their entry expired. The CtwatchLateAnswersRising alert fires " +
			"above 1% (red).").
		Datasource(datasource()).
		Targets(builders([]query{{
			expr: `sum(job_instance_class:ctwatch_drops:rate5m{$sel, class="late"})
  / sum(job_instance:ctwatch_flows_started:rate5m{$sel})`,
			legend: "late per flow",
		}})).
		Unit("percentunit").
		Decimals(2).
		Span(4).
		Height(8).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Thresholds(dashboard.NewThresholdsConfigBuilder().
			Mode(dashboard.ThresholdsModeAbsolute).
			Steps([]dashboard.Threshold{
				{Value: nil, Color: "green"},
				{Value: cog.ToPtr(0.001), Color: "orange"},
				{Value: cog.ToPtr(0.01), Color: "red"},
			}))
}

func unknownReasons(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Unknown drops by reason",
		"Why drops could not be told: warm-up (ctwatch has not yet watched "+
			"for a whole horizon), event-loss (conntrack events may be "+
			"missing), predates-ctwatch, index-full and others. Unknown drops "+
			"are left out of the lateness panels.",
		"pps", 6, 8,
		q(`sum by (reason) (rate(ctwatch_unknown_drops_total{$sel}[$__rate_interval]))`,
			"{{reason}}")).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
}

func latenessHeatmap(id uint32) cog.Builder[dashboard.Panel] {
	return heatmap.NewPanelBuilder().
		Id(id).
		Title("Lateness past the ${" + varUDPTimeout + "} s UDP timeout").
		Description("How long after their flow expired the late packets " +
			"came, per time slot. The bottom of the axis is the moment of " +
			"expiry, so the current UDP timeout (in the title) is the zero " +
			"line: a packet in the 1-2 s row came timeout + 1 to 2 s after " +
			"the flow's last packet. Red marks on the time axis show changes " +
			"of the timeout. Grafana's heatmap turns every query into bucket " +
			"rows and has no threshold lines, so the timeout itself is drawn " +
			"beside it, in 'Late answers against the UDP timeout'.").
		Datasource(datasource()).
		Targets(builders([]query{{
			expr: `sum by (le) (increase(
  ctwatch_late_response_lateness_seconds_bucket{$sel}[$__rate_interval]))`,
			legend: "{{le}}",
			format: prometheus.PromQueryFormatHeatmap,
		}})).
		Span(12).
		Height(10).
		Calculate(false).
		RowsFrame(heatmap.NewRowsHeatmapOptionsBuilder().
			Layout(common.HeatmapCellLayoutLe).
			Value("late packets")).
		YAxis(heatmap.NewYAxisConfigBuilder().
			Unit("s").
			AxisLabel("seconds past the timeout (0 = expiry)")).
		Color(heatmap.NewHeatmapColorOptionsBuilder().
			Mode(heatmap.HeatmapColorModeScheme).
			Scheme("Oranges").
			Scale(heatmap.HeatmapColorScaleExponential).
			Exponent(0.5).
			Steps(64)).
		CellGap(1).
		FilterValues(heatmap.NewFilterValueRangeBuilder().Le(1e-9)).
		ShowLegend().
		Tooltip(heatmap.NewHeatmapTooltipBuilder().
			Mode(common.TooltipDisplayModeSingle).
			YHistogram(true))
}

func lateAgainstTimeout(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Late answers against the UDP timeout",
		"When the late packets came, counted from the flow's last packet: "+
			"the UDP timeout plus the lateness quantiles of the last 5 "+
			"minutes. The dashed red line is nf_conntrack_udp_timeout as "+
			"ctwatch reads it at each scrape; the gap above it is what a "+
			"longer timeout would have to cover.",
		"s", 12, 10,
		timeoutQuery(),
		q(`job_instance:ctwatch_late_response_lateness_seconds:quantile5m{$sel}
  + on (job, instance) group_left ()
  max by (job, instance) (ctwatch_conntrack_udp_timeout_seconds{$sel, kind="udp"})`,
			"timeout + p{{quantile}} lateness {{instance}}")).
		FillOpacity(0).
		OverrideByRegexp("^UDP timeout", timeoutLine())
}

// acceptedByTimeout answers "how much longer a timeout would have let how
// many late answers through": for each bucket bound le of the lateness
// histogram, the share of late packets that came at most le past expiry
// over the dashboard's time range. A timeout longer by le would have
// accepted them. Prometheus's buckets are cumulative, so the share is
// bucket{le} / count, exact at every bound.
func acceptedByTimeout(id uint32) cog.Builder[dashboard.Panel] {
	share := func(match string) string {
		return `sum by (le) (increase(
  ctwatch_late_response_lateness_seconds_bucket{$sel` + match + `, le!="+Inf"}[$__range]))
  / on () group_left ()
sum(increase(ctwatch_late_response_lateness_seconds_count{$sel` + match + `}[$__range]))`
	}
	const (
		colLe         = "Timeout longer by (s)"
		colUnanswered = "Unanswered flows it would have answered"
		colAll        = "All late packets it would have accepted"
	)
	gauge := []dashboard.DynamicConfigValue{
		{Id: "custom.cellOptions", Value: map[string]any{"type": "gauge", "mode": "basic"}},
		{Id: "unit", Value: "percentunit"},
		{Id: "min", Value: 0},
		{Id: "max", Value: 1},
		{Id: "decimals", Value: 1},
	}
	return table.NewPanelBuilder().
		Id(id).
		Title("What a longer UDP timeout would have accepted").
		Description("For each bucket bound of the lateness histogram, the "+
			"share of late packets in the time range that came at most that "+
			"long after expiry: a timeout longer by that much would have let "+
			"them through. 'Unanswered flows' counts packets of flows that "+
			"expired without any answer, the ones the resolver missed; 'all' "+
			"adds duplicate and retransmitted answers to flows that had one.").
		Datasource(datasource()).
		Targets(builders([]query{
			{expr: share(`, answered="false"`), instant: true, format: prometheus.PromQueryFormatTable},
			{expr: share(""), instant: true, format: prometheus.PromQueryFormatTable},
		})).
		Span(12).
		Height(10).
		// The SDK's default footer has a null reducer, which Grafana's
		// schema (and the SDK's own strict decoder) rejects.
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
		WithTransformation(dashboard.DataTransformerConfig{
			Id:      "merge",
			Options: map[string]any{},
		}).
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "convertFieldType",
			Options: map[string]any{
				"conversions": []map[string]any{
					{"targetField": "le", "destinationType": "number"},
				},
				"fields": map[string]any{},
			},
		}).
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "sortBy",
			Options: map[string]any{
				"fields": map[string]any{},
				"sort":   []map[string]any{{"field": "le", "desc": false}},
			},
		}).
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "organize",
			Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"indexByName":   map[string]any{"le": 0, "Value #A": 1, "Value #B": 2},
				"renameByName": map[string]any{
					"le":       colLe,
					"Value #A": colUnanswered,
					"Value #B": colAll,
				},
			},
		}).
		OverrideByName(colUnanswered, gauge).
		OverrideByName(colAll, gauge).
		OverrideByName(colLe, []dashboard.DynamicConfigValue{
			{Id: "unit", Value: "s"},
			{Id: "custom.width", Value: 170},
		})
}

func answerTimeAgainstTimeout(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Answer time against the UDP timeout",
		"Time from a flow's first query to its first reply, for flows answered "+
			"before they expired: quantiles of the last 5 minutes, on a log "+
			"scale, under the UDP timeout (dashed red). Quantiles that creep "+
			"up to the timeout mean the upstream is nearly as slow as the "+
			"timeout is long. The histogram's top bucket is 30 s, so higher "+
			"quantiles read as 30 s.",
		"s", 12, 10,
		q(`job_instance:ctwatch_flow_answer_seconds:quantile5m{$sel}`,
			"p{{quantile}} {{instance}}"),
		timeoutQuery()).
		FillOpacity(0).
		ScaleDistribution(logScale()).
		Min(0.001).
		OverrideByRegexp("^UDP timeout", timeoutLine())
}

func flowsPerSecond(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Flows per second",
		"Watched UDP/53 flows created (one per query on a fresh source port) "+
			"and destroyed, by whether a reply was seen while the flow lived. "+
			"Destroyed unanswered flows are queries the upstream never "+
			"answered in time.",
		"cps", 8, 8,
		q(`sum(job_instance:ctwatch_flows_started:rate5m{$sel})`, "started"),
		q(`sum by (answered) (rate(ctwatch_flows_expired_total{$sel}[$__rate_interval]))`,
			"expired, answered={{answered}}"))
}

func conntrackEvents(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Conntrack events per second",
		"Conntrack events for watched flows, by type: new, reply (first "+
			"reply seen), destroy, and seen (table dump entries at start and "+
			"after each overflow).",
		"ops", 8, 8,
		q(`sum by (type) (rate(ctwatch_conntrack_events_total{$sel}[$__rate_interval]))`,
			"{{type}}"))
}

func flowIndex(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Flow index",
		"Flows ctwatch remembers: live ones and expired ones kept to explain "+
			"late packets, against the index capacity. Evictions (right axis) "+
			"mean the index is too small for the horizon: drops of evicted "+
			"flows become unknown.",
		"short", 8, 8,
		q(`sum by (state) (ctwatch_flows_remembered{$sel})`, "{{state}}"),
		q(`sum(ctwatch_flow_index_capacity{$sel})`, "capacity"),
		q(`sum(rate(ctwatch_flow_index_evictions_total{$sel}[$__rate_interval]))`,
			"evictions/s")).
		OverrideByName("capacity", []dashboard.DynamicConfigValue{
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
			{Id: "custom.fillOpacity", Value: 0},
		}).
		OverrideByName("evictions/s", []dashboard.DynamicConfigValue{
			{Id: "custom.axisPlacement", Value: "right"},
			{Id: "unit", Value: "ops"},
		})
}

func sourcesUp(id uint32) cog.Builder[dashboard.Panel] {
	return stat.NewPanelBuilder().
		Id(id).
		Title("Sources").
		Description("Whether each configured source is open and being " +
			"read: conntrack events, NFLOG groups, the kernel log. The " +
			"CtwatchSourceDown alert fires after 2 minutes down.").
		Datasource(datasource()).
		Targets(builders([]query{
			{expr: `ctwatch_source_up{$sel}`, legend: "{{instance}} {{source}}"},
			{expr: `ctwatch_nflog_group_up{$sel}`, legend: "{{instance}} NFLOG group {{group}}"},
		})).
		Span(6).
		Height(6).
		ColorMode(common.BigValueColorModeBackground).
		GraphMode(common.BigValueGraphModeNone).
		TextMode(common.BigValueTextModeValueAndName).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Mappings(upDownMappings("up", "down")).
		Thresholds(redBelowOne())
}

func warmUp(id uint32) cog.Builder[dashboard.Panel] {
	return stat.NewPanelBuilder().
		Id(id).
		Title("Warm-up").
		Description("ctwatch calls a drop unsolicited only after it has " +
			"watched for a whole horizon (--correlate.horizon); until then " +
			"such drops are unknown.").
		Datasource(datasource()).
		Targets(builders([]query{
			{expr: `ctwatch_warmup_complete{$sel}`, legend: "{{instance}}"},
		})).
		Span(3).
		Height(6).
		ColorMode(common.BigValueColorModeBackground).
		GraphMode(common.BigValueGraphModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Mappings(upDownMappings("complete", "warming up")).
		Thresholds(redBelowOne())
}

// upDownMappings shows 1 and 0 as words.
func upDownMappings(one, zero string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{
		ValueMap: &dashboard.ValueMap{
			Type: dashboard.MappingTypeValueToText,
			Options: map[string]dashboard.ValueMappingResult{
				"1": {Text: cog.ToPtr(one), Color: cog.ToPtr("green"), Index: cog.ToPtr[int32](0)},
				"0": {Text: cog.ToPtr(zero), Color: cog.ToPtr("red"), Index: cog.ToPtr[int32](1)},
			},
		},
	}}
}

func redBelowOne() *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{
			{Value: nil, Color: "red"},
			{Value: cog.ToPtr(1.0), Color: "green"},
		})
}

func sinceLastRecord(id uint32) cog.Builder[dashboard.Panel] {
	return bargauge.NewPanelBuilder().
		Id(id).
		Title("Time since the last record").
		Description("How long ago each source delivered its last record. " +
			"Drop sources may rightly be quiet for long; a resolver's " +
			"conntrack events rarely are (CtwatchSourceSilent fires after " +
			"5 minutes).").
		Datasource(datasource()).
		Targets(builders([]query{{
			expr:    `time() - ctwatch_source_last_record_timestamp_seconds{$sel}`,
			legend:  "{{instance}} {{source}}",
			instant: true,
		}})).
		Unit("s").
		Min(0).
		Span(15).
		Height(6).
		DisplayMode(common.BarGaugeDisplayModeBasic).
		Orientation(common.VizOrientationHorizontal).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Thresholds(dashboard.NewThresholdsConfigBuilder().
			Mode(dashboard.ThresholdsModeAbsolute).
			Steps([]dashboard.Threshold{
				{Value: nil, Color: "green"},
				{Value: cog.ToPtr(60.0), Color: "orange"},
				{Value: cog.ToPtr(300.0), Color: "red"},
			}))
}

func conntrackLoss(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Conntrack event loss",
		"Events the kernel could not queue on ctwatch's conntrack socket "+
			"(its own drop counter) and overflows (ENOBUFS) per second. Any "+
			"loss makes drops in the loss window unknown and fires "+
			"CtwatchConntrackEventLoss.",
		"ops", 8, 8,
		q(`sum by (instance) (rate(ctwatch_conntrack_events_lost_total{$sel}[$__rate_interval]))`,
			"events lost {{instance}}"),
		q(`sum by (instance) (rate(ctwatch_conntrack_overflows_total{$sel}[$__rate_interval]))`,
			"overflows {{instance}}"))
}

func resyncs(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Resyncs and loss windows",
		"Table re-dumps after an overflow, by result, and the share of time "+
			"spent in a loss window (right axis), when verdicts fall back to "+
			"unknown.",
		"short", 8, 8,
		q(`sum by (result) (increase(ctwatch_conntrack_resyncs_total{$sel}[$__rate_interval]))`,
			"resync {{result}}"),
		q(`sum by (instance) (rate(ctwatch_conntrack_loss_seconds_total{$sel}[$__rate_interval]))`,
			"in a loss window {{instance}}")).
		OverrideByRegexp("^in a loss window", []dashboard.DynamicConfigValue{
			{Id: "custom.axisPlacement", Value: "right"},
			{Id: "unit", Value: "percentunit"},
		})
}

// dropSourceInput and dropSourceLoss join the NFLOG and kernel log series
// with `or`, each relabelled with what it counts, so that one query shows
// data whichever drop source ctwatch reads.
func dropSourceInput(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Drop source input",
		"Records read per second: NFLOG messages by group, kernel log lines "+
			"by result (firewall, not_firewall, malformed), and drop records "+
			"read but outside the watch (another port, interface or prefix).",
		"ops", 8, 8,
		q(`label_replace(
  sum by (group) (rate(ctwatch_nflog_messages_total{$sel}[$__rate_interval])),
  "input", "NFLOG group $1", "group", "(.*)")
or label_replace(
  sum by (result) (rate(ctwatch_log_lines_total{$sel}[$__rate_interval])),
  "input", "kernel log $1", "result", "(.*)")
or label_replace(
  sum by (source) (rate(ctwatch_drop_records_ignored_total{$sel}[$__rate_interval])),
  "input", "$1 ignored", "source", "(.*)")`, "{{input}}"))
}

func dropSourceLoss(id uint32) cog.Builder[dashboard.Panel] {
	return timeSeries(id, "Drop records lost or unreadable",
		"Drop records that never became a verdict, per second: NFLOG "+
			"messages lost (sequence gaps) and undecodable, socket overflows, "+
			"kernel log records overwritten before ctwatch read them, and "+
			"malformed LOG lines. Also conntrack messages that could not be "+
			"decoded.",
		"ops", 8, 8,
		q(`label_replace(
  sum by (group) (rate(ctwatch_nflog_messages_lost_total{$sel}[$__rate_interval])),
  "what", "NFLOG group $1 lost", "group", "(.*)")
or label_replace(
  sum by (group) (rate(ctwatch_nflog_decode_errors_total{$sel}[$__rate_interval])),
  "what", "NFLOG group $1 undecodable", "group", "(.*)")
or label_replace(
  sum by (group) (rate(ctwatch_nflog_overflows_total{$sel}[$__rate_interval])),
  "what", "NFLOG group $1 overflows", "group", "(.*)")
or label_replace(
  sum(rate(ctwatch_log_records_lost_total{$sel}[$__rate_interval])),
  "what", "kernel log lost", "", "")
or label_replace(
  sum(rate(ctwatch_log_lines_total{$sel, result="malformed"}[$__rate_interval])),
  "what", "kernel log malformed", "", "")
or label_replace(
  sum(rate(ctwatch_conntrack_decode_errors_total{$sel}[$__rate_interval])),
  "what", "conntrack undecodable", "", "")`, "{{what}}"))
}
