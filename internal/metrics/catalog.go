package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

// Metric names. Every metric ctwatch exports is listed in catalog, which
// both the collectors and the documentation are built from, so the two
// cannot disagree.
const (
	nameDrops           = "ctwatch_drops_total"
	nameUnknownDrops    = "ctwatch_unknown_drops_total"
	nameLateness        = "ctwatch_late_response_lateness_seconds"
	nameAge             = "ctwatch_late_response_age_seconds"
	nameFlowsStarted    = "ctwatch_flows_started_total"
	nameFlowsExpired    = "ctwatch_flows_expired_total"
	nameAnswerTime      = "ctwatch_flow_answer_seconds"
	nameEvents          = "ctwatch_conntrack_events_total"
	nameOverflows       = "ctwatch_conntrack_overflows_total"
	nameResyncs         = "ctwatch_conntrack_resyncs_total"
	nameLossSeconds     = "ctwatch_conntrack_loss_seconds_total"
	nameEventsLost      = "ctwatch_conntrack_events_lost_total"
	nameCTMessages      = "ctwatch_conntrack_messages_total"
	nameCTDecodeErrors  = "ctwatch_conntrack_decode_errors_total"
	nameCTFiltered      = "ctwatch_conntrack_events_filtered_total"
	nameCTRcvBuf        = "ctwatch_conntrack_receive_buffer_bytes"
	nameLogLines        = "ctwatch_log_lines_total"
	nameLogLost         = "ctwatch_log_records_lost_total"
	nameLogRotations    = "ctwatch_log_rotations_total"
	nameDropsIgnored    = "ctwatch_drop_records_ignored_total"
	nameNFMessages      = "ctwatch_nflog_messages_total"
	nameNFDecodeErrors  = "ctwatch_nflog_decode_errors_total"
	nameNFOverflows     = "ctwatch_nflog_overflows_total"
	nameNFLost          = "ctwatch_nflog_messages_lost_total"
	nameNFGroupUp       = "ctwatch_nflog_group_up"
	nameRemembered      = "ctwatch_flows_remembered"
	nameEvictions       = "ctwatch_flow_index_evictions_total"
	nameCapacity        = "ctwatch_flow_index_capacity"
	namePending         = "ctwatch_drops_pending"
	nameWarmUp          = "ctwatch_warmup_complete"
	nameUDPTimeout      = "ctwatch_conntrack_udp_timeout_seconds"
	nameUDPTimeoutError = "ctwatch_conntrack_udp_timeout_read_errors_total"
	nameSourceUp        = "ctwatch_source_up"
	nameSourceLast      = "ctwatch_source_last_record_timestamp_seconds"
	nameBuildInfo       = "ctwatch_build_info"
)

// Source names used as the source label of the health metrics.
const (
	sourceConntrack = "conntrack"
	sourceNFLOG     = "nflog"
	sourceKernelLog = "kernel_log"
)

// Log line results, the result label of ctwatch_log_lines_total.
const (
	resultFirewall    = "firewall"
	resultNotFirewall = "not_firewall"
	resultMalformed   = "malformed"
)

// Resync results, the result label of ctwatch_conntrack_resyncs_total.
const (
	resyncSuccess = "success"
	resyncFailure = "failure"
)

// Timeout kinds, the kind label of ctwatch_conntrack_udp_timeout_seconds,
// named after the sysctls nf_conntrack_udp_timeout and
// nf_conntrack_udp_timeout_stream.
const (
	kindUDP       = "udp"
	kindUDPStream = "udp_stream"
)

// lateBuckets are the classic buckets of the lateness and age histograms.
// They are chosen for tuning the UDP timeout: fine below a second, where
// retransmissions and duplicate answers land, and in steps an operator
// would set a timeout to (15, 20, 30, 45, 60 s...) up to five minutes,
// beyond the stream timeout plus one garbage collection interval.
func lateBuckets() []float64 {
	return []float64{
		.01, .025, .05, .1, .25, .5, 1, 2, 5,
		10, 15, 20, 30, 45, 60, 90, 120, 180, 300,
	}
}

// answerBuckets are the classic buckets of the answer time histogram: from
// a nearby cache (1 ms) to an upstream that answers just inside the 30 s
// UDP timeout.
func answerBuckets() []float64 {
	return []float64{
		.001, .0025, .005, .01, .025, .05, .1, .25, .5,
		1, 2.5, 5, 10, 20, 30,
	}
}

// Native histogram settings shared by every histogram. A growth factor of
// 1.1 (schema 3, about 9% per bucket) resolves a 30 s timeout to within
// three seconds; 160 buckets cover 10 ms to 300 s at that resolution, and
// the histogram is reset hourly if it ever needs more.
const (
	nativeBucketFactor  = 1.1
	nativeMaxBuckets    = 160
	nativeResetInterval = time.Hour
)

// boolValues are the label values of answered.
func boolValues() []string { return []string{"true", "false"} }

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// classValues returns the class label values in correlate's order.
func classValues() []string {
	vs := make([]string, 0, len(correlate.Classes))
	for _, c := range correlate.Classes {
		vs = append(vs, c.String())
	}
	return vs
}

// dropSources are the drop sources known in advance.
func dropSources() []events.DropSource {
	return []events.DropSource{events.SourceNFLOG, events.SourceKernelLog}
}

func dropSourceValues() []string {
	var vs []string
	for _, s := range dropSources() {
		vs = append(vs, s.String())
	}
	return vs
}

// unknownReasons are the reasons an Unknown verdict can carry, from
// correlate.Reasons, plus ReasonNone: an Unknown verdict without a reason
// is a correlator bug, but it must still be counted so that the reasons
// add up to the class.
func unknownReasons() []correlate.Reason {
	return append(slices.Clone(correlate.Reasons), correlate.ReasonNone)
}

// reasonLabel returns the reason label value: the reason's own string, so
// that metrics and JSON output use the same words.
func reasonLabel(r correlate.Reason) string {
	if r == correlate.ReasonNone {
		return "unspecified"
	}
	return r.String()
}

func reasonValues() []string {
	var vs []string
	for _, r := range unknownReasons() {
		vs = append(vs, reasonLabel(r))
	}
	return vs
}

// flowEventTypes are the event types counted by ctwatch_conntrack_events_total.
// The label is the type's own string: seen (a dump entry), new, reply (the
// UPDATE that sets SEEN_REPLY) and destroy.
func flowEventTypes() []events.FlowEventType {
	return []events.FlowEventType{
		events.FlowSeen, events.FlowStarted, events.FlowReplied, events.FlowExpired,
	}
}

func flowEventValues() []string {
	var vs []string
	for _, t := range flowEventTypes() {
		vs = append(vs, t.String())
	}
	return vs
}

// Type is a metric type as the exposition format names it.
type Type string

// Metric types.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Label documents one label of a metric.
type Label struct {
	Name string
	// Values are the values known in advance, exported (at zero for
	// counters) from the first scrape. Empty when the values come from
	// configuration, such as NFLOG group numbers.
	Values []string
}

// MetricDoc documents one metric exactly as ctwatch exports it.
type MetricDoc struct {
	Name   string
	Type   Type
	Labels []Label
	Help   string
}

// LabelNames returns the names of d's labels in order.
func (d MetricDoc) LabelNames() []string {
	names := make([]string, 0, len(d.Labels))
	for _, l := range d.Labels {
		names = append(names, l.Name)
	}
	return names
}

// def is a catalog entry: the documentation plus what a collector needs.
type def struct {
	MetricDoc
	buckets []float64 // histograms only
}

func (d def) desc() *prometheus.Desc {
	return prometheus.NewDesc(d.Name, d.Help, d.LabelNames(), nil)
}

func (d def) counterVec() *prometheus.CounterVec {
	return prometheus.NewCounterVec(
		prometheus.CounterOpts{Name: d.Name, Help: d.Help}, d.LabelNames())
}

func (d def) histogramVec() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                            d.Name,
		Help:                            d.Help,
		Buckets:                         d.buckets,
		NativeHistogramBucketFactor:     nativeBucketFactor,
		NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
		NativeHistogramMinResetDuration: nativeResetInterval,
	}, d.LabelNames())
}

func label(name string, values ...string) Label {
	return Label{Name: name, Values: values}
}

// catalog lists every metric in the order the README shows them.
func catalog() []def {
	counter := func(name, help string, labels ...Label) def {
		return def{MetricDoc: MetricDoc{Name: name, Type: Counter, Labels: labels, Help: help}}
	}
	gauge := func(name, help string, labels ...Label) def {
		return def{MetricDoc: MetricDoc{Name: name, Type: Gauge, Labels: labels, Help: help}}
	}
	histogram := func(name, help string, buckets []float64, labels ...Label) def {
		return def{
			MetricDoc: MetricDoc{Name: name, Type: Histogram, Labels: labels, Help: help},
			buckets:   buckets,
		}
	}
	sources := label("source", sourceConntrack, sourceNFLOG, sourceKernelLog)
	group := label("group")

	return []def{
		// Verdicts.
		counter(nameDrops,
			"Dropped packets from the watched port, by verdict class and by the "+
				"source that reported the drop.",
			label("class", classValues()...), label("source", dropSourceValues()...)),
		counter(nameUnknownDrops,
			"Drops classed unknown, by the reason they could not be told; the reasons "+
				"add up to the unknown class of ctwatch_drops_total.",
			label("reason", reasonValues()...)),
		histogram(nameLateness,
			"Time from the expiry of a flow to the arrival of a late packet for it, "+
				"by whether the flow had been answered before it expired.",
			lateBuckets(), label("answered", boolValues()...)),
		histogram(nameAge,
			"Time from the start of a flow to the arrival of a late packet for it.",
			lateBuckets()),

		// Flows, from conntrack events.
		counter(nameFlowsStarted,
			"Watched flows created, counted from conntrack NEW events; flows found "+
				"only by a table dump are not counted."),
		counter(nameFlowsExpired,
			"Watched flows destroyed, counted from conntrack DESTROY events, by "+
				"whether the flow had seen a reply.",
			label("answered", boolValues()...)),
		histogram(nameAnswerTime,
			"Time from the first query of a flow to its first reply, as seen in "+
				"conntrack events.",
			answerBuckets()),
		counter(nameEvents,
			"Conntrack events and table dump entries received for watched flows, by "+
				"type: seen (dump entry), new, reply (the update that sets SEEN_REPLY) "+
				"and destroy.",
			label("type", flowEventValues()...)),

		// Conntrack event loss.
		counter(nameOverflows,
			"Times the conntrack event socket overflowed (ENOBUFS), each losing an "+
				"unknown number of events; an overflow while a loss window is still "+
				"open is not counted again."),
		counter(nameResyncs,
			"Conntrack table re-dumps after an overflow, by result.",
			label("result", resyncSuccess, resyncFailure)),
		counter(nameLossSeconds,
			"Total length of the windows in which conntrack events may have been "+
				"lost, added when each window closes with a successful re-dump."),
		counter(nameEventsLost,
			"Conntrack event messages the kernel dropped because the receive buffer "+
				"of the event socket was full, from the kernel's own per-socket drop "+
				"counter."),

		// Conntrack follower.
		counter(nameCTMessages,
			"Netlink messages read from the conntrack event socket."),
		counter(nameCTDecodeErrors,
			"Netlink messages from the conntrack event socket that could not be "+
				"decoded."),
		counter(nameCTFiltered,
			"Decoded conntrack events that did not belong to a watched flow and "+
				"were ignored."),
		gauge(nameCTRcvBuf,
			"Size of the receive buffer of the conntrack event socket as the kernel "+
				"reports it."),

		// Kernel log.
		counter(nameLogLines,
			"Kernel log lines read, by result: a firewall log line, another line, or "+
				"a line that looked like a firewall log line but could not be parsed.",
			label("result", resultFirewall, resultNotFirewall, resultMalformed)),
		counter(nameLogLost,
			"Kernel log records overwritten in the kernel's ring buffer before "+
				"ctwatch read them."),
		counter(nameDropsIgnored,
			"Drop records read but outside the watch, by source: not UDP from the "+
				"watched port, in on another interface than --iface, or with another "+
				"log prefix than --log-prefix.",
			label("source", sourceNFLOG, sourceKernelLog)),
		counter(nameLogRotations,
			"Times the followed log file was reopened after it was rotated or "+
				"truncated."),

		// NFLOG.
		counter(nameNFMessages,
			"Netlink messages read from an NFLOG group.", group),
		counter(nameNFDecodeErrors,
			"NFLOG messages that could not be decoded, by group and by reason.",
			group, label("reason")),
		counter(nameNFOverflows,
			"Times the socket of an NFLOG group overflowed (ENOBUFS) and logged "+
				"packets were lost.",
			group),
		counter(nameNFLost,
			"NFLOG packet messages known to be lost, from gaps in the sequence "+
				"numbers the kernel gives every logged packet; a loss after the last "+
				"message read shows only in ctwatch_nflog_overflows_total until the "+
				"next one arrives.",
			group),
		gauge(nameNFGroupUp,
			"Whether ctwatch is bound to the NFLOG group and reading from it (1) or "+
				"not (0).",
			group),

		// Correlator.
		gauge(nameRemembered,
			"Flows in the flow index, by state: live (not yet expired) or expired "+
				"(kept to explain late packets).",
			label("state", "live", "expired")),
		counter(nameEvictions,
			"Flows evicted from the flow index before the end of their horizon "+
				"because the index was full."),
		gauge(nameCapacity,
			"Maximum number of flows the flow index remembers."),
		gauge(namePending,
			"Drops waiting out the grace window before they get a verdict."),
		gauge(nameWarmUp,
			"Whether ctwatch has watched for a whole horizon, so that drops can be "+
				"called unsolicited (1), or is still warming up (0)."),

		// Kernel settings.
		gauge(nameUDPTimeout,
			"UDP conntrack timeout of the watched network namespace, read at scrape "+
				"time: udp is nf_conntrack_udp_timeout, udp_stream is "+
				"nf_conntrack_udp_timeout_stream.",
			label("kind", kindUDP, kindUDPStream)),
		counter(nameUDPTimeoutError,
			"Scrapes at which the UDP conntrack timeouts could not be read."),

		// Source health.
		gauge(nameSourceUp,
			"Whether a configured source is open and being read (1) or not (0); "+
				"sources that are not configured are not exported.",
			sources),
		gauge(nameSourceLast,
			"Unix time of the last record read from a source; not exported until the "+
				"source has delivered one.",
			sources),

		// Build.
		gauge(nameBuildInfo,
			"A metric with a constant '1' value labeled by version, revision, branch, "+
				"goversion from which ctwatch was built, and the goos and goarch for the "+
				"build.",
			label("branch"), label("goarch"), label("goos"), label("goversion"),
			label("revision"), label("tags"), label("version")),
	}
}

// Descriptions documents every metric ctwatch exports, in README order.
func Descriptions() []MetricDoc {
	defs := catalog()
	docs := make([]MetricDoc, 0, len(defs))
	for _, d := range defs {
		docs = append(docs, d.MetricDoc)
	}
	return docs
}
