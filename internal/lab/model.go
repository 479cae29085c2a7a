package lab

import (
	"time"
)

// AmbiguityWindow is how close to an expiry a packet may arrive before
// the lab will not promise which side of it the kernel saw: timers tick
// in jiffies, and the send and the kernel's clock are microseconds apart.
const AmbiguityWindow = 150 * time.Millisecond

// maxBranches bounds the alternatives the model follows for one flow;
// past it every later packet is ambiguous.
const maxBranches = 64

// flowPacket is one answer as the model sees it.
type flowPacket struct {
	at       time.Time
	oversize bool
}

// verdict is the model's expectation for one answer.
type verdict struct {
	class Class
	// expiry is when the flow's entry expired (late) or would have
	// expired had this packet not arrived (accepted, tracked).
	expiry    time.Time
	answered  bool // an earlier answer was accepted
	seenReply bool // conntrack had seen an earlier reply
	ambiguous bool
}

// flowState is the entry as the model tracks it.
type flowState struct {
	expiry    time.Time
	dead      bool // expired: every later packet is late against expiry
	answered  bool
	seenReply bool
}

// step returns the class of p in state s and the state after it, taking
// p to arrive on the given side of the expiry.
func (s flowState) step(p flowPacket, timeout time.Duration, alive bool) (Class, flowState) {
	if !alive {
		s.dead = true
		return Late, s
	}
	// Conntrack refreshes the entry before the filter rules run, so an
	// oversize answer that is then dropped still extends the flow and
	// marks it replied; only an accepted one answers the query.
	s.expiry = p.at.Add(timeout)
	s.seenReply = true
	if p.oversize {
		return Tracked, s
	}
	s.answered = true
	return Accepted, s
}

// model predicts the verdict of each answer of one flow, given in the
// order they were sent, and the time the entry expires.
//
// The entry is created when the query is sent, with the UDP timeout; every
// packet conntrack sees before the expiry moves it to that packet's time
// plus the timeout (the lab sets the stream timeout equal, so a flow that
// becomes a stream keeps the same lifetime). A packet at or after the
// expiry finds the entry gone, is dropped as late, and never revives it.
//
// A packet within AmbiguityWindow of the expiry could fall on either side,
// so the model follows both; an answer is ambiguous when its own arrival
// is that close or when the alternatives disagree about it.
func model(querySent time.Time, packets []flowPacket, timeout time.Duration) (
	verdicts []verdict, expiry time.Time, ambiguous bool) {

	branches := []flowState{{expiry: querySent.Add(timeout)}}
	overflow := false
	for _, p := range packets {
		var next []flowState
		var v verdict
		classes := make(map[Class]bool)
		for i, b := range branches {
			alive := !b.dead && p.at.Before(b.expiry)
			near := !b.dead && absDuration(p.at.Sub(b.expiry)) < AmbiguityWindow

			class, after := b.step(p, timeout, alive)
			classes[class] = true
			if i == 0 {
				v = verdict{class: class, expiry: b.expiry,
					answered: b.answered, seenReply: b.seenReply, ambiguous: near}
			}
			next = append(next, after)
			if near {
				otherClass, other := b.step(p, timeout, !alive)
				classes[otherClass] = true
				next = append(next, other)
			}
		}
		if len(next) > maxBranches {
			next, overflow = next[:maxBranches], true
		}
		v.ambiguous = v.ambiguous || len(classes) > 1 || overflow
		ambiguous = ambiguous || v.ambiguous
		verdicts = append(verdicts, v)
		branches = next
	}
	return verdicts, branches[0].expiry, ambiguous
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
