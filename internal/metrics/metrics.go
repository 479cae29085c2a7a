// Package metrics exports ctwatch's verdicts and the health of its sources
// as Prometheus metrics.
//
// Two kinds of metrics live here. Verdicts and flow events are pushed in by
// the pipeline through the Observe methods. Source statistics (counters the
// readers keep, the correlator's index, the kernel's UDP timeouts) are
// pulled at scrape time through callbacks passed in Options, so this
// package imports none of the packages it reports on beyond their plain
// event types.
//
// Every metric is registered on the registry passed to New; nothing goes to
// the default registry. No metric carries an address or a port as a label
// value, and every label value known in advance is exported from the first
// scrape. Descriptions lists them all; MarkdownTable renders that list for
// the README.
package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

// Options configures New. Every callback is optional: the metrics of a
// source whose callback is nil are not exported. Callbacks are called at
// scrape time from the HTTP server's goroutines, concurrently with the
// pipeline, so they must be safe for concurrent use (atomic counters are
// the usual way), cheap and non-blocking.
type Options struct {
	// Conntrack returns the conntrack follower's statistics.
	Conntrack func() ConntrackStats
	// KernelLog returns the kernel log follower's statistics.
	KernelLog func() KernelLogStats
	// NFLOG returns one entry per NFLOG group ctwatch reads, each group
	// at most once.
	NFLOG func() []NFLOGGroupStats
	// Correlator returns the state of the flow index and the matcher.
	Correlator func() CorrelatorStats
	// IgnoredDrops returns, by source label value ("nflog",
	// "kernel_log"), the drop records that fell outside the watch: not
	// UDP from the watched port, another interface, another log prefix.
	IgnoredDrops func() map[string]uint64

	// UDPTimeouts reads the kernel's UDP conntrack timeouts at scrape time.
	// The sysctls are per network namespace, and a file under /proc/sys
	// shows the namespace of the thread that opens it: when ctwatch watches
	// another namespace, pass a reader that reads there. Nil means
	// events.ReadUDPTimeouts(ProcRoot) in the current namespace.
	UDPTimeouts func() (events.UDPTimeouts, error)
	// ProcRoot is where the default UDPTimeouts reader finds
	// sys/net/netfilter; "" means "/proc". Tests point it at a fake tree.
	ProcRoot string

	// Process also registers the Go runtime and process collectors
	// (go_* and process_* metrics).
	Process bool

	// Logger receives failures of scrape-time reads, logged once when
	// they start failing and once when they recover. Nil discards.
	Logger *slog.Logger
}

// Metrics holds the pipeline-fed metrics. Its methods are safe for
// concurrent use.
type Metrics struct {
	drops        *prometheus.CounterVec
	unknownDrops *prometheus.CounterVec
	lateness     *prometheus.HistogramVec
	age          prometheus.Observer
	flowsStarted prometheus.Counter
	flowsExpired *prometheus.CounterVec
	answerTime   prometheus.Observer
	events       *prometheus.CounterVec
	overflows    prometheus.Counter
	resyncs      *prometheus.CounterVec
	lossSeconds  prometheus.Counter

	// mu guards openLoss and openLossStart, which remember a loss window
	// whose resync failed, so that the retry is not counted as another
	// overflow. The pipeline calls ObserveLoss from one goroutine, but
	// nothing else here would stop two callers from racing.
	mu            sync.Mutex
	openLoss      bool
	openLossStart time.Time
}

// New creates the metrics and registers them, with the scrape-time
// collectors opts asks for and ctwatch_build_info, on reg. It returns an
// error, and leaves reg as it was, when registration fails: for example
// because reg already holds metrics of the same names.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("new metrics: nil registerer")
	}
	defs := make(map[string]def)
	for _, d := range catalog() {
		defs[d.Name] = d
	}

	drops := defs[nameDrops].counterVec()
	unknownDrops := defs[nameUnknownDrops].counterVec()
	lateness := defs[nameLateness].histogramVec()
	age := defs[nameAge].histogramVec()
	flowsStarted := defs[nameFlowsStarted].counterVec()
	flowsExpired := defs[nameFlowsExpired].counterVec()
	answerTime := defs[nameAnswerTime].histogramVec()
	evs := defs[nameEvents].counterVec()
	overflows := defs[nameOverflows].counterVec()
	resyncs := defs[nameResyncs].counterVec()
	lossSeconds := defs[nameLossSeconds].counterVec()

	m := &Metrics{
		drops:        drops,
		unknownDrops: unknownDrops,
		lateness:     lateness,
		age:          age.WithLabelValues(),
		flowsStarted: flowsStarted.WithLabelValues(),
		flowsExpired: flowsExpired,
		answerTime:   answerTime.WithLabelValues(),
		events:       evs,
		overflows:    overflows.WithLabelValues(),
		resyncs:      resyncs,
		lossSeconds:  lossSeconds.WithLabelValues(),
	}
	m.preinitialise(defs)

	cs := []prometheus.Collector{
		drops, unknownDrops, lateness, age, flowsStarted, flowsExpired,
		answerTime, evs, overflows, resyncs, lossSeconds,
		newSourceCollector(defs, opts),
		version.NewCollector("ctwatch"),
	}
	if opts.Process {
		cs = append(cs,
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			// Leave reg as it was, so that the caller may retry.
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// preinitialise creates every series whose labels are known in advance,
// so that each is exported at zero before its first event: a rate over a
// series that appears only with its first increment misses that increment.
func (m *Metrics) preinitialise(defs map[string]def) {
	for _, class := range defs[nameDrops].Labels[0].Values {
		for _, source := range defs[nameDrops].Labels[1].Values {
			m.drops.WithLabelValues(class, source)
		}
	}
	vecs := map[string]interface {
		WithLabelValues(...string) prometheus.Counter
	}{
		nameUnknownDrops: m.unknownDrops,
		nameFlowsExpired: m.flowsExpired,
		nameEvents:       m.events,
		nameResyncs:      m.resyncs,
	}
	for name, vec := range vecs {
		for _, v := range defs[name].Labels[0].Values {
			vec.WithLabelValues(v)
		}
	}
	for _, v := range defs[nameLateness].Labels[0].Values {
		m.lateness.WithLabelValues(v)
	}
}

// ObserveVerdict counts a verdict in ctwatch_drops_total and, for late
// drops, records their lateness and age; unknown drops are also counted
// by reason.
func (m *Metrics) ObserveVerdict(v correlate.Verdict) {
	m.drops.WithLabelValues(v.Class.String(), v.Drop.Source.String()).Inc()
	switch v.Class {
	case correlate.Late:
		m.lateness.WithLabelValues(boolLabel(v.Answered)).Observe(v.Lateness.Seconds())
		m.age.Observe(v.Age.Seconds())
	case correlate.Unknown:
		m.unknownDrops.WithLabelValues(reasonLabel(v.Reason)).Inc()
	}
}

// ObserveFlow counts a conntrack event or dump entry for a watched flow.
// NEW events also count as started flows and DESTROY events as expired
// flows, by whether the flow had seen a reply. Events of a type this
// package does not know are ignored, so that a bad value cannot create a
// series.
func (m *Metrics) ObserveFlow(ev events.FlowEvent) {
	known := false
	for _, t := range flowEventTypes() {
		if ev.Type == t {
			known = true
			break
		}
	}
	if !known {
		return
	}
	m.events.WithLabelValues(ev.Type.String()).Inc()
	switch ev.Type {
	case events.FlowStarted:
		m.flowsStarted.Inc()
	case events.FlowExpired:
		m.flowsExpired.WithLabelValues(boolLabel(ev.Replied)).Inc()
	}
}

// ObserveAnswerTime records the time from a flow's first query to its
// first reply in ctwatch_flow_answer_seconds.
func (m *Metrics) ObserveAnswerTime(d time.Duration) {
	m.answerTime.Observe(d.Seconds())
}

// ObserveLoss records a conntrack loss window reported after its resync.
//
// How many events ENOBUFS cost is unknown to the reader (the kernel's own
// count is exported separately, from ConntrackStats.EventsLost), so this
// counts occurrences: ctwatch_conntrack_overflows_total once per loss
// window, ctwatch_conntrack_resyncs_total once per re-dump by result, and
// ctwatch_conntrack_loss_seconds_total the length of each window that a
// successful re-dump closed. A LossEvent whose Start equals that of an
// earlier one whose resync failed is the same window retried, not a new
// overflow; a window left open by a failed resync is measured from its
// own Start to the End of the next successful one.
func (m *Metrics) ObserveLoss(ev events.LossEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()

	if !m.openLoss || !ev.Start.Equal(m.openLossStart) {
		m.overflows.Inc()
	}
	if ev.End.IsZero() {
		// The follower reports a window open the moment it sees the
		// overflow, before its re-dump; the outcome follows.
		m.openLoss, m.openLossStart = true, ev.Start
		return
	}
	if !ev.Resynced {
		m.resyncs.WithLabelValues(resyncFailure).Inc()
		m.openLoss, m.openLossStart = true, ev.Start
		return
	}
	// A window left open by a failed resync lasts until this success,
	// whatever Start the reader gave the retry.
	start := ev.Start
	if m.openLoss && m.openLossStart.Before(start) {
		start = m.openLossStart
	}
	m.openLoss = false
	m.resyncs.WithLabelValues(resyncSuccess).Inc()
	if d := ev.End.Sub(start); d > 0 {
		m.lossSeconds.Add(d.Seconds())
	}
}
