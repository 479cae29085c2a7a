package correlate

import (
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Defaults for the zero fields of Config.
const (
	// DefaultHorizon is one garbage-collection interval (60 s, the longest
	// a DESTROY lags the expiry) plus two minutes of lateness worth
	// reporting.
	DefaultHorizon = 3 * time.Minute
	// DefaultGrace is well above the ~1 ms that separates a late packet's
	// drop from the DESTROY of the entry it evicted, leaving room for
	// scheduling and batching in the readers.
	DefaultGrace = 250 * time.Millisecond
	// DefaultMaxFlows bounds the index to about 100 MiB.
	DefaultMaxFlows = 1 << 20
	// DefaultUDPTimeout and DefaultStreamTimeout are the kernel defaults
	// of nf_conntrack_udp_timeout and nf_conntrack_udp_timeout_stream.
	DefaultUDPTimeout    = 30 * time.Second
	DefaultStreamTimeout = 120 * time.Second
	// DefaultEstimateMargin covers the one-second resolution of the
	// timeout the kernel reports, plus event latency.
	DefaultEstimateMargin = 2 * time.Second
	// DefaultMaxDropLag tolerates a kernel log read through syslog or a
	// journal a few seconds behind the packets.
	DefaultMaxDropLag = 5 * time.Second
)

// maxMaxFlows keeps record indices within uint32 with room for the nil
// sentinel.
const maxMaxFlows = 1 << 31

// Config tunes a Correlator. Zero or negative durations and counts take
// the defaults above; callbacks may be nil.
type Config struct {
	// Horizon is how long an expired flow is remembered and how late a
	// packet may be to count as Late: a drop more than Horizon after the
	// expiry no longer matches the flow. It also bounds the warm-up after
	// start and the tail of a loss window.
	Horizon time.Duration
	// Grace is how long an unmatched drop, or one matching a live flow,
	// waits for a DESTROY before its verdict.
	Grace time.Duration
	// MaxFlows bounds the flows remembered, live and expired together.
	MaxFlows int
	// UDPTimeout and StreamTimeout are the kernel's UDP timeouts, used only
	// to estimate an expiry when an event carried no timeout and the
	// DESTROY no stop timestamp. StreamTimeout applies after a second
	// FlowReplied (the ASSURED update: traffic both ways after 2 s).
	UDPTimeout    time.Duration
	StreamTimeout time.Duration
	// EstimateMargin is how close a drop may come to an estimated expiry
	// before the verdict is Unknown with ReasonNoTimestamp.
	EstimateMargin time.Duration
	// MaxDropLag is how far behind the current time a drop's own time may
	// be while every flow that could explain it is still remembered: flows
	// are kept Horizon+Grace+MaxDropLag past their expiry. A drop that lags
	// further may get ReasonDropLag.
	MaxDropLag time.Duration

	// Emit receives every verdict, in the order they are decided. It runs
	// on the caller's goroutine inside AddDrop, Advance or Flush and must
	// not call back into the Correlator.
	Emit func(Verdict)
	// OnAnswer receives the answer delay of each flow whose first reply is
	// observed, for ctwatch_flow_answer_seconds. Same rules as Emit.
	OnAnswer func(Answer)
}

// withDefaults returns cfg with zero or out-of-range fields replaced.
func (cfg Config) withDefaults() Config {
	dur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	dur(&cfg.Horizon, DefaultHorizon)
	dur(&cfg.Grace, DefaultGrace)
	dur(&cfg.UDPTimeout, DefaultUDPTimeout)
	dur(&cfg.StreamTimeout, DefaultStreamTimeout)
	dur(&cfg.EstimateMargin, DefaultEstimateMargin)
	dur(&cfg.MaxDropLag, DefaultMaxDropLag)
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	cfg.MaxFlows = min(cfg.MaxFlows, maxMaxFlows)
	return cfg
}

// Answer is the first reply of a flow, reported through Config.OnAnswer.
type Answer struct {
	FlowID uint32
	Reply  events.Tuple
	// At is when the FlowReplied event arrived.
	At time.Time
	// Delay is At minus the flow's start: the kernel's start timestamp when
	// the flow had one (Exact), else the NEW event's arrival.
	Delay time.Duration
	Exact bool
}
