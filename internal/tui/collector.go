package tui

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

// RecentCap is how many of the latest verdicts the Collector keeps for
// the list of recent verdicts.
const RecentCap = 200

// TopServers is how many servers a Snapshot carries, most drops first.
const TopServers = 32

// numClasses and numReasons size the per-class and per-reason counters;
// correlate.Classes and correlate.Reasons list every value.
const (
	numClasses = 4
	numReasons = 8
)

// Recent is one verdict as the list of recent verdicts shows it.
type Recent struct {
	// Time is when the kernel saw the dropped packet.
	Time      time.Time
	Class     correlate.Class
	Reason    correlate.Reason
	Answered  bool
	Estimated bool
	// Server is the packet's source (the upstream server), LocalPort the
	// port it was sent to.
	Server    netip.Addr
	LocalPort uint16
	// Lateness is set for late verdicts.
	Lateness time.Duration
	// Name and Type are the DNS question, when NFLOG carried the payload.
	Name, Type string
}

// Snapshot is a copy of everything the view shows, taken at one instant.
// The Collector fills the counters; the program adds Status and the UDP
// timeouts when it takes one.
type Snapshot struct {
	// Taken is when the snapshot was taken, Since when counting started
	// or the counters were last cleared.
	Taken, Since time.Time
	// Generation counts clears: rates are only computed between
	// snapshots of one generation.
	Generation uint64

	// Classes counts verdicts by correlate.Class; LateAnswered the late
	// ones whose flow had been answered, Reasons the unknown ones by
	// correlate.Reason.
	Classes      [numClasses]uint64
	LateAnswered uint64
	Reasons      [numReasons]uint64
	// Lateness is the distribution of the lateness of late verdicts.
	Lateness Lateness

	// FlowEvents counts conntrack events (and dump entries) for watched
	// flows; LossWindows the times conntrack events were lost, and
	// LossOpen whether a loss window is open now.
	FlowEvents  uint64
	LossWindows uint64
	LossOpen    bool

	// Servers are the servers with the most drops, at most TopServers;
	// ServersTracked is how many the Collector tracks, ServersEvicted how
	// many it forgot to make room.
	Servers        []ServerCount
	ServersTracked int
	ServersEvicted uint64

	// Recent holds the latest verdicts, newest first.
	Recent []Recent

	// Status is the pipeline's health.
	Status Status
	// Timeouts are the UDP conntrack timeouts; TimeoutsErr is set when
	// they could not be read.
	Timeouts    events.UDPTimeouts
	TimeoutsErr error
}

// Status is the health of the pipeline's sources, read at every tick.
type Status struct {
	// Sources lists conntrack and every drop source, in a fixed order.
	Sources []SourceHealth
	// EventsLost counts conntrack events the kernel could not deliver;
	// EventsLostKnown says whether the count could be read.
	EventsLost      uint64
	EventsLostKnown bool
	// RecordsLost counts drop records lost before ctwatch read them
	// (NFLOG sequence gaps, kernel log records overwritten).
	RecordsLost uint64
	// HeldLogs counts log records held back while the view covers the
	// terminal; the program prints them when the view ends.
	HeldLogs uint64
}

// SourceHealth says whether one source is open and being read.
type SourceHealth struct {
	Name string
	Up   bool
}

// Collector is a watch.Observer that aggregates what the view shows. The
// pipeline calls it once per event; the view reads it with Snapshot a few
// times a second, so the per-event work is a few counter updates.
type Collector struct {
	now func() time.Time

	// flowEvents is atomic: it is the hottest counter and needs no lock.
	flowEvents atomic.Uint64

	// mu guards everything below: the pipeline's goroutines write, the
	// view's ticks read and clear.
	mu           sync.Mutex
	since        time.Time
	generation   uint64
	classes      [numClasses]uint64
	lateAnswered uint64
	reasons      [numReasons]uint64
	lateness     Lateness
	lossWindows  uint64
	lossOpen     bool
	servers      serverTable
	recent       [RecentCap]Recent
	recentNext   int // where the next verdict goes in recent
	recentLen    int
}

// CollectorConfig configures a Collector.
type CollectorConfig struct {
	// MaxServers bounds the servers tracked; DefaultMaxServers when 0.
	MaxServers int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewCollector returns an empty Collector.
func NewCollector(cfg CollectorConfig) *Collector {
	c := &Collector{now: cfg.Now, servers: newServerTable(cfg.MaxServers)}
	if c.now == nil {
		c.now = time.Now
	}
	c.since = c.now()
	return c
}

// ObserveFlow counts a conntrack event.
func (c *Collector) ObserveFlow(events.FlowEvent) { c.flowEvents.Add(1) }

// ObserveLoss counts a window of lost conntrack events when it opens and
// notes when it closes.
func (c *Collector) ObserveLoss(ev events.LossEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.End.IsZero() {
		if !c.lossOpen {
			c.lossWindows++
		}
		c.lossOpen = true
		return
	}
	c.lossOpen = !ev.Resynced
}

// ObserveAnswerTime is not shown.
func (c *Collector) ObserveAnswerTime(time.Duration) {}

// ObserveVerdict counts a verdict by class, lateness and server, and keeps
// it for the list of recent verdicts.
func (c *Collector) ObserveVerdict(v correlate.Verdict) {
	r := Recent{
		Time:      v.Drop.Time,
		Class:     v.Class,
		Reason:    v.Reason,
		Answered:  v.Answered,
		Estimated: v.Estimated,
		Server:    v.Drop.Src.Addr(),
		LocalPort: v.Drop.Dst.Port(),
	}
	if v.Class == correlate.Late {
		r.Lateness = v.Lateness
	}
	if d := v.Drop.DNS; d != nil {
		r.Name, r.Type = d.Name, d.Type
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if int(v.Class) < numClasses {
		c.classes[v.Class]++
	}
	switch v.Class {
	case correlate.Late:
		c.lateness.Add(v.Lateness)
		if v.Answered {
			c.lateAnswered++
		}
	case correlate.Unknown:
		if int(v.Reason) < numReasons {
			c.reasons[v.Reason]++
		}
	}
	c.servers.add(r.Server, v.Class == correlate.Late, v.Class == correlate.Unsolicited)
	c.recent[c.recentNext] = r
	c.recentNext = (c.recentNext + 1) % RecentCap
	c.recentLen = min(c.recentLen+1, RecentCap)
}

// Reset clears every counter, the servers and the recent verdicts.
func (c *Collector) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flowEvents.Store(0)
	c.since = c.now()
	c.generation++
	c.classes, c.lateAnswered, c.reasons = [numClasses]uint64{}, 0, [numReasons]uint64{}
	c.lateness = Lateness{}
	c.lossWindows = 0 // an open window stays open
	c.servers = newServerTable(c.servers.limit)
	c.recent, c.recentNext, c.recentLen = [RecentCap]Recent{}, 0, 0
}

// Snapshot copies the counters. Status and Timeouts are left zero.
func (c *Collector) Snapshot() Snapshot {
	s := Snapshot{Recent: make([]Recent, 0, RecentCap)}
	var servers []ServerCount

	c.mu.Lock()
	s.Taken, s.Since, s.Generation = c.now(), c.since, c.generation
	s.Classes, s.LateAnswered, s.Reasons = c.classes, c.lateAnswered, c.reasons
	s.Lateness = c.lateness
	s.FlowEvents = c.flowEvents.Load()
	s.LossWindows, s.LossOpen = c.lossWindows, c.lossOpen
	servers = append(servers, c.servers.heap...)
	s.ServersEvicted = c.servers.evicted
	for i := range c.recentLen {
		s.Recent = append(s.Recent, c.recent[(c.recentNext-1-i+RecentCap)%RecentCap])
	}
	c.mu.Unlock()

	s.ServersTracked = len(servers)
	s.Servers = topServers(servers, TopServers)
	return s
}
