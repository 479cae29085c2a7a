package correlate

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// The fake clock: the correlator starts at t0, and scenarios run from base
// on, past the warm-up, unless they test the warm-up itself. Step times
// are offsets from base.
var (
	t0   = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	base = t0.Add(10 * time.Minute)
)

func at(d time.Duration) time.Time { return base.Add(d) }

// Lab addresses (198.18.0.0/15, fd00::/8). Reply tuples run from the
// server's port 53 to the resolver's query port.
func tuple(src, dst string) events.Tuple {
	return events.Tuple{
		Src: netip.MustParseAddrPort(src),
		Dst: netip.MustParseAddrPort(dst),
	}
}

var (
	tupleA  = tuple("198.18.0.53:53", "198.18.1.10:40001")
	tupleB  = tuple("198.18.0.53:53", "198.18.1.10:40002")
	tupleC  = tuple("198.18.0.54:53", "198.18.1.10:40001")
	tuple6  = tuple("[fd00::53]:53", "[fd00::10]:40001")
	tupleA6 = tuple("[::ffff:198.18.0.53]:53", "[::ffff:198.18.1.10]:40001")
)

// harness collects what a Correlator emits.
type harness struct {
	c        *Correlator
	verdicts []Verdict
	answers  []Answer
}

func newHarness(cfg Config) *harness {
	h := &harness{}
	cfg.Emit = func(v Verdict) { h.verdicts = append(h.verdicts, v) }
	cfg.OnAnswer = func(a Answer) { h.answers = append(h.answers, a) }
	h.c = New(cfg, t0)
	return h
}

// step is one input to the correlator.
type step func(h *harness)

type flowOpt func(*events.FlowEvent)

// timeout overrides the 30 s remaining lifetime NEW, UPDATE and dump
// entries carry by default; timeout(0) means the event carried none.
func timeout(d time.Duration) flowOpt {
	return func(ev *events.FlowEvent) { ev.Timeout = d }
}

// stamps sets the kernel's start and stop timestamps (offsets from base).
func stamps(start, stop time.Duration) flowOpt {
	return func(ev *events.FlowEvent) {
		ev.Start, ev.Stop = at(start), at(stop)
	}
}

// startStamp sets only the kernel's start timestamp, as dumps carry it.
func startStamp(start time.Duration) flowOpt {
	return func(ev *events.FlowEvent) { ev.Start = at(start) }
}

// natted gives the flow an original tuple that is not its reply tuple
// reversed: the resolver's inner address o was source-NATed.
func natted(o events.Tuple) flowOpt {
	return func(ev *events.FlowEvent) { ev.Orig = o }
}

// replied sets the SEEN_REPLY bit of a dump entry or DESTROY.
func replied(ev *events.FlowEvent) { ev.Replied = true }

func flowEv(typ events.FlowEventType, when time.Duration, id uint32,
	reply events.Tuple, opts ...flowOpt) step {
	ev := events.FlowEvent{
		Type:     typ,
		ID:       id,
		Orig:     events.Tuple{Src: reply.Dst, Dst: reply.Src},
		Reply:    reply,
		Received: at(when),
	}
	switch typ {
	case events.FlowStarted, events.FlowSeen:
		ev.Timeout = 30 * time.Second
	case events.FlowReplied:
		ev.Timeout, ev.Replied = 30*time.Second, true
	}
	for _, o := range opts {
		o(&ev)
	}
	return func(h *harness) { h.c.ObserveFlow(ev) }
}

func newFlow(when time.Duration, id uint32, r events.Tuple, o ...flowOpt) step {
	return flowEv(events.FlowStarted, when, id, r, o...)
}

func reply(when time.Duration, id uint32, r events.Tuple, o ...flowOpt) step {
	return flowEv(events.FlowReplied, when, id, r, o...)
}

func destroy(when time.Duration, id uint32, r events.Tuple, o ...flowOpt) step {
	return flowEv(events.FlowExpired, when, id, r, o...)
}

func seen(when time.Duration, id uint32, r events.Tuple, o ...flowOpt) step {
	return flowEv(events.FlowSeen, when, id, r, o...)
}

// drop hands over a drop that happened at when, at when.
func drop(when time.Duration, r events.Tuple) step { return lagDrop(when, when, r) }

// lagDrop hands over at now a drop that happened at when, as a slow
// kernel log does.
func lagDrop(when, now time.Duration, r events.Tuple) step {
	d := events.Drop{
		Source:   events.SourceNFLOG,
		Time:     at(when),
		Received: at(now),
		Proto:    17,
		Src:      r.Src,
		Dst:      r.Dst,
	}
	return func(h *harness) { h.c.AddDrop(d, at(now)) }
}

func advance(now time.Duration) step {
	return func(h *harness) { h.c.Advance(at(now)) }
}

// loss reports a resynced loss window [start, end].
func loss(start, end time.Duration) step {
	ev := events.LossEvent{Start: at(start), End: at(end), Resynced: true}
	return func(h *harness) { h.c.ObserveLoss(ev) }
}

// lossOpen reports a loss detected at start, not yet resynced.
func lossOpen(start time.Duration) step {
	ev := events.LossEvent{Start: at(start)}
	return func(h *harness) { h.c.ObserveLoss(ev) }
}

// outcome is the part of a Verdict the scenarios check, with times as
// offsets from base.
type outcome struct {
	Drop      time.Duration
	Class     Class
	Reason    Reason
	Answered  bool
	Lateness  time.Duration
	Age       time.Duration
	Estimated bool
	FlowID    uint32
	Decided   time.Duration
}

func outcomeOf(v Verdict) outcome {
	return outcome{
		Drop:      v.Drop.Time.Sub(base),
		Class:     v.Class,
		Reason:    v.Reason,
		Answered:  v.Answered,
		Lateness:  v.Lateness,
		Age:       v.Age,
		Estimated: v.Estimated,
		FlowID:    v.FlowID,
		Decided:   v.Decided.Sub(base),
	}
}

// checkOutcomes compares emitted verdicts with want, in order.
func checkOutcomes(t *testing.T, got []Verdict, want []outcome) {
	t.Helper()
	var have []outcome
	for _, v := range got {
		have = append(have, outcomeOf(v))
	}
	if slices.Equal(have, want) {
		return
	}
	for i := range max(len(have), len(want)) {
		var g, w string
		if i < len(have) {
			g = formatOutcome(have[i])
		}
		if i < len(want) {
			w = formatOutcome(want[i])
		}
		if g != w {
			t.Errorf("verdict %d:\n got  %s\n want %s", i, g, w)
		}
	}
}

func formatOutcome(o outcome) string {
	class := o.Class.String()
	if o.Reason != ReasonNone {
		class += "/" + o.Reason.String()
	}
	return fmt.Sprintf("drop@%v %s answered=%t estimated=%t lateness=%v "+
		"age=%v flow=%d decided@%v", o.Drop, class, o.Answered, o.Estimated,
		o.Lateness, o.Age, o.FlowID, o.Decided)
}
