package lab

import (
	"slices"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Class is what the lab expects to become of a packet it sent to the
// resolver, in the terms of ctwatch's verdicts.
type Class string

// Expectations.
const (
	// Accepted: the stateful rule let it through; no drop.
	Accepted Class = "accepted"
	// Late: the flow's entry had expired; dropped and logged.
	Late Class = "late"
	// Tracked: the flow was live, but the oversize rule dropped it.
	Tracked Class = "tracked"
	// Unsolicited: no flow ever had this tuple; dropped and logged.
	Unsolicited Class = "unsolicited"
)

// Truth is a snapshot of everything a lab has sent and what a conntrack
// model says should have happened to it.
type Truth struct {
	// UDPTimeout is the conntrack UDP timeout the model uses.
	UDPTimeout time.Duration
	Queries    []QueryTruth
	// Answers lists every answer sent so far, by query, in send order.
	Answers []AnswerTruth
	Spoofs  []Spoofed
}

// QueryTruth is the record of one query and its flow.
type QueryTruth struct {
	ID     int
	Family int
	Name   string
	DNSID  uint16
	// Orig is resolver socket -> upstream:53.
	Orig events.Tuple
	// Reply is upstream:53 -> the resolver's address after SNAT, valid
	// when Seen.
	Reply events.Tuple
	// Seen is true once the upstream has received the query.
	Seen bool
	// Sent is taken right before the resolver's send.
	Sent time.Time
	// Planned is the number of planned answers; Pending of those are not
	// sent yet. While any are pending, ExpectedExpiry may still move.
	Planned int
	Pending int
	// Listening is true while the resolver's socket is still reading;
	// until then an answer's Received may still turn true.
	Listening bool
	// ExpectedExpiry is when the model expects the entry to expire: the
	// kernel's DESTROY stop timestamp, to within milliseconds.
	ExpectedExpiry time.Time
	// Ambiguous is true when any answer is, so the expiry is uncertain.
	Ambiguous bool
}

// AnswerTruth is the record of one answer the upstream sent.
type AnswerTruth struct {
	// Query is the QueryTruth.ID, Index the answer's place in
	// QuerySpec.Answers.
	Query    int
	Index    int
	Family   int
	Oversize bool
	Orig     events.Tuple
	// Reply is the answer's tuple on the wire at the resolver:
	// upstream:53 -> the resolver's address and port after SNAT.
	Reply     events.Tuple
	QuerySent time.Time
	// Sent and SendDone are taken right before and right after the
	// upstream's sendto; the veth adds microseconds.
	Sent     time.Time
	SendDone time.Time
	// Received is true when the resolver's socket read it.
	Received bool

	// Expect is the model's verdict.
	Expect Class
	// Expiry is when the flow's entry expired (Late), or when it would
	// have had this answer not come (Accepted, Tracked).
	Expiry time.Time
	// Lateness is Sent - Expiry for Late answers, zero otherwise.
	Lateness time.Duration
	// LatenessLow and LatenessHigh bound the real lateness of a Late
	// answer. The lab stamps each packet right before and right after
	// its send call; on a busy machine the thread can be preempted in
	// between, so the packet left at some instant in that window, and
	// the expiry moved with the window of the packet that set it.
	LatenessLow, LatenessHigh time.Duration
	// Answered: an earlier answer of the flow had been accepted (for a
	// late one, "answered" rather than "unanswered").
	Answered bool
	// SeenReply: conntrack had seen an earlier reply of the flow, which
	// includes tracked answers the filter then dropped.
	SeenReply bool
	// Ambiguous: the answer was sent within AmbiguityWindow of an expiry,
	// or depends on one that was; the kernel may disagree with Expect.
	Ambiguous bool
}

// Truth returns a snapshot of the ground truth so far.
func (l *Lab) Truth() Truth {
	l.mu.Lock()
	defer l.mu.Unlock()

	t := Truth{UDPTimeout: l.cfg.UDPTimeout, Spoofs: slices.Clone(l.spoofs)}
	for _, q := range l.queries {
		qt := QueryTruth{
			ID:        q.id,
			Family:    q.family,
			Name:      q.name,
			DNSID:     q.dnsID,
			Orig:      q.orig,
			Reply:     q.reply,
			Seen:      q.seen,
			Sent:      q.sent,
			Planned:   len(q.answers),
			Pending:   q.pending,
			Listening: !isClosed(q.done),
		}

		packets := make([]flowPacket, len(q.sends))
		for i, s := range q.sends {
			packets[i] = flowPacket{at: s.start, oversize: q.answers[s.index].Oversize}
		}
		verdicts, expiry, ambiguous := model(q.sent, packets, l.cfg.UDPTimeout)
		qt.ExpectedExpiry, qt.Ambiguous = expiry, ambiguous
		t.Queries = append(t.Queries, qt)

		for i, s := range q.sends {
			v := verdicts[i]
			_, received := q.received[s.index]
			a := AnswerTruth{
				Query:     q.id,
				Index:     s.index,
				Family:    q.family,
				Oversize:  q.answers[s.index].Oversize,
				Orig:      q.orig,
				Reply:     q.reply,
				QuerySent: q.sent,
				Sent:      s.start,
				SendDone:  s.end,
				Received:  received,
				Expect:    v.class,
				Expiry:    v.expiry,
				Answered:  v.answered,
				SeenReply: v.seenReply,
				Ambiguous: v.ambiguous,
			}
			if v.class == Late {
				a.Lateness = s.start.Sub(v.expiry)
				a.LatenessLow = a.Lateness - sendWindow(q, i)
				a.LatenessHigh = s.end.Sub(v.expiry)
			}
			t.Answers = append(t.Answers, a)
		}
	}
	return t
}

// isClosed reports whether ch is closed, without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sendWindow is the widest send window (right after minus right before
// the send call) among the packets of q before answer i: the query and
// the answers sent earlier. Any of them may have set the expiry of the
// flow answer i found, so the expiry is known only to within it.
func sendWindow(q *query, i int) time.Duration {
	var w time.Duration
	if !q.sendDone.IsZero() {
		w = q.sendDone.Sub(q.sent)
	}
	for _, s := range q.sends[:i] {
		w = max(w, s.end.Sub(s.start))
	}
	return w
}
