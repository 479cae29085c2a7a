package correlate

import (
	"fmt"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Class is the verdict on a dropped packet.
type Class uint8

// Verdict classes; see the Verdicts section of the README.
const (
	// Unknown: cannot be told (warm-up, event loss, memory bounds, or a
	// flow that predates ctwatch and whose expiry was never observed).
	Unknown Class = iota
	// Late: a flow with this reply tuple expired before the packet came.
	Late
	// Unsolicited: no flow with this reply tuple within the horizon while
	// ctwatch watched without loss.
	Unsolicited
	// Tracked: a live, unexpired flow matches, yet the packet was dropped.
	Tracked
)

// Classes lists every class in label order, for pre-registering series.
var Classes = []Class{Late, Unsolicited, Tracked, Unknown}

// String returns the label value: "late", "unsolicited", "tracked",
// "unknown".
func (c Class) String() string {
	switch c {
	case Unknown:
		return "unknown"
	case Late:
		return "late"
	case Unsolicited:
		return "unsolicited"
	case Tracked:
		return "tracked"
	}
	return fmt.Sprintf("Class(%d)", c)
}

// Reason explains an Unknown verdict (and, for others, how it was reached).
type Reason uint8

// Reasons.
const (
	ReasonNone Reason = iota
	// ReasonWarmUp: ctwatch has not yet watched for a whole horizon, so
	// the flow may have expired before it started.
	ReasonWarmUp
	// ReasonEventLoss: the flow may lie in a window of lost events.
	ReasonEventLoss
	// ReasonPredates: the matching flow was found by the start-up dump and
	// its expiry was never observed.
	ReasonPredates
	// ReasonCapacity: flows were evicted from the index before their
	// horizon because of the memory bound.
	ReasonCapacity
	// ReasonNoTimestamp: the flow's expiry time is an estimate (no kernel
	// timestamps) too close to the drop to decide.
	ReasonNoTimestamp
	// ReasonDropLag: the drop was handed over so long after it happened
	// (a slow kernel log, a replayed file) that flows which could explain
	// it had already been forgotten; see Config.MaxDropLag.
	ReasonDropLag
)

// Counts of classes and reasons, for the arrays in Stats.
const (
	numClasses = int(Tracked) + 1
	numReasons = int(ReasonDropLag) + 1
)

// Reasons lists every reason an Unknown verdict can carry, for
// pre-registering series.
var Reasons = []Reason{
	ReasonWarmUp, ReasonEventLoss, ReasonPredates, ReasonCapacity,
	ReasonNoTimestamp, ReasonDropLag,
}

// String returns a short lower-case reason.
func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return ""
	case ReasonWarmUp:
		return "warm-up"
	case ReasonEventLoss:
		return "event-loss"
	case ReasonPredates:
		return "predates-ctwatch"
	case ReasonCapacity:
		return "index-full"
	case ReasonNoTimestamp:
		return "no-timestamp"
	case ReasonDropLag:
		return "drop-lag"
	}
	return fmt.Sprintf("Reason(%d)", r)
}

// Verdict is the correlator's decision about one drop.
type Verdict struct {
	Drop  events.Drop
	Class Class
	// Reason is set for Unknown verdicts.
	Reason Reason
	// Answered is meaningful for Late: whether the expired flow had seen a
	// reply (a duplicate or retransmitted answer) or not (the resolver had
	// given up waiting).
	Answered bool
	// Lateness is drop time minus flow expiry, set for Late verdicts only.
	// Age is drop time minus flow start, set whenever a flow matched
	// (Late, Tracked, and Unknown with ReasonPredates, ReasonEventLoss or
	// ReasonNoTimestamp); it is never negative. When the kernel gave no
	// start timestamp the start is the NEW event's arrival, or for a flow
	// first met in a dump or a DESTROY the arrival of that message, so Age
	// can fall short of the truth for such flows.
	Lateness time.Duration
	Age      time.Duration
	// Estimated is true when the expiry came from last event plus timeout
	// rather than the kernel's stop timestamp (Late, Tracked or Unknown with
	// ReasonNoTimestamp or ReasonPredates).
	Estimated bool
	// FlowID is the kernel conntrack id of the matched flow, 0 if none.
	FlowID uint32
	// Decided is when the verdict was made (after any grace window).
	Decided time.Time
}
