package metrics

import (
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctwatch/ctwatch/internal/events"
)

// ConntrackStats are the conntrack follower's running totals. Counters are
// cumulative since the start of the process and never go back, even when
// the follower reopens its socket.
type ConntrackStats struct {
	// Up is true while the event socket is open and being read.
	Up bool
	// LastMessage is when the last netlink message was read; zero if none.
	LastMessage time.Time
	// Messages counts netlink messages read from the event socket.
	Messages uint64
	// DecodeErrors counts messages that could not be decoded.
	DecodeErrors uint64
	// Filtered counts decoded events for flows that are not watched (they
	// passed the kernel's socket filter but not the follower's checks).
	Filtered uint64
	// EventsLost is the kernel's count of event messages it could not
	// queue on the socket because the receive buffer was full: the
	// SK_MEMINFO_DROPS field of getsockopt(SO_MEMINFO), summed over every
	// socket the follower has used. Each conntrack event is its own
	// message, and the kernel applies the socket filter before it counts,
	// so this is exactly the number of watched events lost.
	EventsLost uint64
	// EventsLostKnown says whether EventsLost was read. When false,
	// ctwatch_conntrack_events_lost_total is not exported rather than
	// exported as a misleading zero.
	EventsLostKnown bool
	// ReceiveBufferBytes is the receive buffer size the kernel reports
	// (SO_RCVBUF).
	ReceiveBufferBytes uint64
}

// KernelLogStats are the kernel log follower's running totals.
type KernelLogStats struct {
	// Up is true while the log (kmsg, file or stdin) is open and read.
	Up bool
	// LastRecord is when the last line was read; zero if none.
	LastRecord time.Time
	// Firewall counts netfilter LOG lines, NotFirewall other lines, and
	// Malformed lines that looked like LOG lines but could not be parsed.
	Firewall    uint64
	NotFirewall uint64
	Malformed   uint64
	// RecordsLost counts records the kernel overwrote before they were
	// read: the gaps in /dev/kmsg sequence numbers (reads fail with EPIPE
	// when it happens).
	RecordsLost uint64
	// Rotations counts reopenings of a followed file after it was rotated
	// or truncated.
	Rotations uint64
}

// NFLOGGroupStats are the running totals of one NFLOG group.
type NFLOGGroupStats struct {
	Group uint16
	// Up is true while ctwatch is bound to the group and reading it.
	Up bool
	// LastRecord is when the last message was read; zero if none.
	LastRecord time.Time
	// Messages counts netlink messages read from the group.
	Messages uint64
	// DecodeErrors counts messages that could not be decoded, by reason.
	// The reasons must come from a fixed set; include each at zero from
	// the start so that it is exported before its first error.
	DecodeErrors map[string]uint64
	// Overflows counts ENOBUFS errors read from the socket.
	Overflows uint64
	// MessagesLost counts packet messages known to be lost: the gaps in
	// the group's sequence numbers (NFULA_SEQ). The kernel numbers every
	// logged packet, batched or not, so this counts packets.
	MessagesLost uint64
}

// CorrelatorStats describe the flow index and the matcher.
type CorrelatorStats struct {
	// LiveFlows and ExpiredFlows are the flows remembered now.
	LiveFlows    int
	ExpiredFlows int
	// Capacity is the most flows the index keeps.
	Capacity int
	// Evictions counts flows dropped before their horizon because the
	// index was full.
	Evictions uint64
	// PendingDrops are drops waiting out the grace window.
	PendingDrops int
	// WarmUpComplete is true once ctwatch has watched for a whole horizon.
	WarmUpComplete bool
}

// sourceCollector reads the Options callbacks at scrape time.
type sourceCollector struct {
	opts Options
	log  *slog.Logger

	ctMessages, ctDecodeErrors, ctFiltered, ctRcvBuf, eventsLost *prometheus.Desc
	logLines, logLost, logRotations                              *prometheus.Desc
	dropsIgnored                                                 *prometheus.Desc
	nfMessages, nfDecodeErrors, nfOverflows, nfLost, nfGroupUp   *prometheus.Desc
	remembered, evictions, capacity, pending, warmUp             *prometheus.Desc
	udpTimeout, udpTimeoutErrors                                 *prometheus.Desc
	sourceUp, sourceLast                                         *prometheus.Desc

	// timeoutErrors counts failed timeout reads; timeoutFailing remembers
	// whether the last read failed, so that a failure is logged once.
	timeoutErrors  atomic.Uint64
	timeoutMu      sync.Mutex // guards timeoutFailing
	timeoutFailing bool
}

func newSourceCollector(defs map[string]def, opts Options) *sourceCollector {
	if opts.UDPTimeouts == nil {
		root := opts.ProcRoot
		if root == "" {
			root = "/proc"
		}
		opts.UDPTimeouts = func() (events.UDPTimeouts, error) { return events.ReadUDPTimeouts(root) }
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := func(name string) *prometheus.Desc { return defs[name].desc() }
	return &sourceCollector{
		opts:             opts,
		log:              log,
		ctMessages:       d(nameCTMessages),
		ctDecodeErrors:   d(nameCTDecodeErrors),
		ctFiltered:       d(nameCTFiltered),
		ctRcvBuf:         d(nameCTRcvBuf),
		eventsLost:       d(nameEventsLost),
		logLines:         d(nameLogLines),
		logLost:          d(nameLogLost),
		logRotations:     d(nameLogRotations),
		dropsIgnored:     d(nameDropsIgnored),
		nfMessages:       d(nameNFMessages),
		nfDecodeErrors:   d(nameNFDecodeErrors),
		nfOverflows:      d(nameNFOverflows),
		nfLost:           d(nameNFLost),
		nfGroupUp:        d(nameNFGroupUp),
		remembered:       d(nameRemembered),
		evictions:        d(nameEvictions),
		capacity:         d(nameCapacity),
		pending:          d(namePending),
		warmUp:           d(nameWarmUp),
		udpTimeout:       d(nameUDPTimeout),
		udpTimeoutErrors: d(nameUDPTimeoutError),
		sourceUp:         d(nameSourceUp),
		sourceLast:       d(nameSourceLast),
	}
}

// Describe sends the descriptions of the metrics the configured sources
// produce.
func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	var ds []*prometheus.Desc
	if c.opts.Conntrack != nil || c.opts.KernelLog != nil || c.opts.NFLOG != nil {
		ds = append(ds, c.sourceUp, c.sourceLast)
	}
	if c.opts.Conntrack != nil {
		ds = append(ds, c.ctMessages, c.ctDecodeErrors, c.ctFiltered, c.ctRcvBuf, c.eventsLost)
	}
	if c.opts.KernelLog != nil {
		ds = append(ds, c.logLines, c.logLost, c.logRotations)
	}
	if c.opts.NFLOG != nil {
		ds = append(ds, c.nfMessages, c.nfDecodeErrors, c.nfOverflows, c.nfLost, c.nfGroupUp)
	}
	if c.opts.Correlator != nil {
		ds = append(ds, c.remembered, c.evictions, c.capacity, c.pending, c.warmUp)
	}
	if c.opts.IgnoredDrops != nil {
		ds = append(ds, c.dropsIgnored)
	}
	ds = append(ds, c.udpTimeout, c.udpTimeoutErrors)
	for _, d := range ds {
		ch <- d
	}
}

// Collect reads every configured source once.
func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.opts.Conntrack != nil {
		c.collectConntrack(ch, c.opts.Conntrack())
	}
	if c.opts.KernelLog != nil {
		c.collectKernelLog(ch, c.opts.KernelLog())
	}
	if c.opts.NFLOG != nil {
		c.collectNFLOG(ch, c.opts.NFLOG())
	}
	if c.opts.Correlator != nil {
		c.collectCorrelator(ch, c.opts.Correlator())
	}
	if c.opts.IgnoredDrops != nil {
		ignored := c.opts.IgnoredDrops()
		for _, src := range []string{sourceNFLOG, sourceKernelLog} {
			emitCounter(ch, c.dropsIgnored, ignored[src], src)
		}
	}
	c.collectTimeouts(ch)
}

func emitCounter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func emitGauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// health exports ctwatch_source_up and, once the source has delivered a
// record, ctwatch_source_last_record_timestamp_seconds.
func (c *sourceCollector) health(ch chan<- prometheus.Metric, source string,
	up bool, last time.Time) {
	emitGauge(ch, c.sourceUp, boolGauge(up), source)
	if !last.IsZero() {
		emitGauge(ch, c.sourceLast, float64(last.UnixNano())/1e9, source)
	}
}

func (c *sourceCollector) collectConntrack(ch chan<- prometheus.Metric, s ConntrackStats) {
	c.health(ch, sourceConntrack, s.Up, s.LastMessage)
	emitCounter(ch, c.ctMessages, s.Messages)
	emitCounter(ch, c.ctDecodeErrors, s.DecodeErrors)
	emitCounter(ch, c.ctFiltered, s.Filtered)
	emitGauge(ch, c.ctRcvBuf, float64(s.ReceiveBufferBytes))
	if s.EventsLostKnown {
		emitCounter(ch, c.eventsLost, s.EventsLost)
	}
}

func (c *sourceCollector) collectKernelLog(ch chan<- prometheus.Metric, s KernelLogStats) {
	c.health(ch, sourceKernelLog, s.Up, s.LastRecord)
	emitCounter(ch, c.logLines, s.Firewall, resultFirewall)
	emitCounter(ch, c.logLines, s.NotFirewall, resultNotFirewall)
	emitCounter(ch, c.logLines, s.Malformed, resultMalformed)
	emitCounter(ch, c.logLost, s.RecordsLost)
	emitCounter(ch, c.logRotations, s.Rotations)
}

// collectNFLOG exports each group, and the nflog source as up when every
// group is, with the latest record of any group.
func (c *sourceCollector) collectNFLOG(ch chan<- prometheus.Metric, groups []NFLOGGroupStats) {
	up := len(groups) > 0
	var last time.Time
	for _, g := range groups {
		up = up && g.Up
		if g.LastRecord.After(last) {
			last = g.LastRecord
		}
		group := strconv.Itoa(int(g.Group))
		emitCounter(ch, c.nfMessages, g.Messages, group)
		emitCounter(ch, c.nfOverflows, g.Overflows, group)
		emitCounter(ch, c.nfLost, g.MessagesLost, group)
		emitGauge(ch, c.nfGroupUp, boolGauge(g.Up), group)
		reasons := make([]string, 0, len(g.DecodeErrors))
		for r := range g.DecodeErrors {
			reasons = append(reasons, r)
		}
		slices.Sort(reasons)
		for _, r := range reasons {
			emitCounter(ch, c.nfDecodeErrors, g.DecodeErrors[r], group, r)
		}
	}
	c.health(ch, sourceNFLOG, up, last)
}

func (c *sourceCollector) collectCorrelator(ch chan<- prometheus.Metric, s CorrelatorStats) {
	emitGauge(ch, c.remembered, float64(s.LiveFlows), "live")
	emitGauge(ch, c.remembered, float64(s.ExpiredFlows), "expired")
	emitCounter(ch, c.evictions, s.Evictions)
	emitGauge(ch, c.capacity, float64(s.Capacity))
	emitGauge(ch, c.pending, float64(s.PendingDrops))
	emitGauge(ch, c.warmUp, boolGauge(s.WarmUpComplete))
}

// collectTimeouts reads the UDP timeouts. On failure the timeout series
// are left out for this scrape and the failure is counted; it is logged
// when reads start failing and when they recover, not at every scrape.
func (c *sourceCollector) collectTimeouts(ch chan<- prometheus.Metric) {
	t, err := c.opts.UDPTimeouts()

	c.timeoutMu.Lock()
	wasFailing := c.timeoutFailing
	c.timeoutFailing = err != nil
	c.timeoutMu.Unlock()
	switch {
	case err != nil && !wasFailing:
		c.log.Warn("cannot read UDP conntrack timeouts", "err", err)
	case err == nil && wasFailing:
		c.log.Info("UDP conntrack timeouts readable again")
	}

	if err != nil {
		c.timeoutErrors.Add(1)
	} else {
		emitGauge(ch, c.udpTimeout, t.Timeout.Seconds(), kindUDP)
		emitGauge(ch, c.udpTimeout, t.StreamTimeout.Seconds(), kindUDPStream)
	}
	emitCounter(ch, c.udpTimeoutErrors, c.timeoutErrors.Load())
}
