package watch

import (
	"sync"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

// ObserverFuncs adapts functions to an Observer; nil fields are skipped.
type ObserverFuncs struct {
	Flow       func(events.FlowEvent)
	Loss       func(events.LossEvent)
	Verdict    func(correlate.Verdict)
	AnswerTime func(time.Duration)
}

// ObserveFlow calls o.Flow.
func (o ObserverFuncs) ObserveFlow(ev events.FlowEvent) {
	if o.Flow != nil {
		o.Flow(ev)
	}
}

// ObserveLoss calls o.Loss.
func (o ObserverFuncs) ObserveLoss(ev events.LossEvent) {
	if o.Loss != nil {
		o.Loss(ev)
	}
}

// ObserveVerdict calls o.Verdict.
func (o ObserverFuncs) ObserveVerdict(v correlate.Verdict) {
	if o.Verdict != nil {
		o.Verdict(v)
	}
}

// ObserveAnswerTime calls o.AnswerTime.
func (o ObserverFuncs) ObserveAnswerTime(d time.Duration) {
	if o.AnswerTime != nil {
		o.AnswerTime(d)
	}
}

// VerdictLog is an Observer that keeps every verdict, for the demo's
// closing comparison and for tests. It grows without bound: use it only
// for runs of bounded length.
type VerdictLog struct {
	ObserverFuncs
	mu sync.Mutex // guards v: the pipeline calls from several goroutines
	v  []correlate.Verdict
}

// ObserveVerdict records v.
func (l *VerdictLog) ObserveVerdict(v correlate.Verdict) {
	l.mu.Lock()
	l.v = append(l.v, v)
	l.mu.Unlock()
}

// Verdicts returns a copy of the verdicts so far, in decision order.
func (l *VerdictLog) Verdicts() []correlate.Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]correlate.Verdict(nil), l.v...)
}
