package demo

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/lab"
)

// matchWindow is how far a drop's time may be from the moment the lab
// sent the packet: the veth and the NFLOG path take microseconds, a
// kernel log line in syslog format carries whole seconds.
const matchWindow = 1500 * time.Millisecond

// Report compares verdicts with ground truth, packet by packet.
type Report struct {
	// Truth and Got count drops by class: what the lab's model expects
	// and what ctwatch said. Late is further split by Answered.
	Truth, Got map[string]int
	// Agree counts packets where ctwatch's class equals the truth's.
	Agree int
	// Mismatches lists the packets where they differ, Missed the
	// expected drops ctwatch gave no verdict for, Unexplained the
	// verdicts that match no packet the lab sent.
	Mismatches  []Mismatch
	Missed      []string
	Unexplained []correlate.Verdict
	// Ambiguous counts packets left out because they were sent too close
	// to an expiry for the truth to be certain.
	Ambiguous int
	// MaxLatenessError is the largest distance of ctwatch's lateness
	// from the true lateness over late packets both agree on;
	// LatenessSamples how many. The lab knows the true lateness only to
	// within its send windows (see lab.AnswerTruth.LatenessLow), so the
	// distance is taken to that interval; MaxTruthUncertainty is the
	// widest such interval, which a busy machine widens.
	MaxLatenessError    time.Duration
	LatenessSamples     int
	MaxTruthUncertainty time.Duration
}

// Mismatch is one packet whose verdict differs from the truth.
type Mismatch struct {
	Tuple  events.Tuple
	Sent   time.Time
	Want   string
	Got    string
	Reason string
	// Age and FlowID are ctwatch's, to tell which flow it matched.
	Age    time.Duration
	FlowID uint32
}

// OK reports whether every verdict matched the truth.
func (r *Report) OK() bool {
	return len(r.Mismatches) == 0 && len(r.Missed) == 0 && len(r.Unexplained) == 0
}

type expected struct {
	tuple    events.Tuple
	sent     time.Time
	alias    events.Tuple // another tuple the drop may carry (after de-NAT)
	class    string       // as ctwatch names it, with /answered or /unanswered
	lateness time.Duration
	// low and high bound the true lateness.
	low, high time.Duration
	used      bool
}

func label(class correlate.Class, answered bool) string {
	if class != correlate.Late {
		return class.String()
	}
	if answered {
		return "late/answered"
	}
	return "late/unanswered"
}

// Compare matches every verdict to the packet it is about (same tuple,
// nearest send time) and tallies agreement.
func Compare(t lab.Truth, verdicts []correlate.Verdict) *Report {
	r := &Report{Truth: map[string]int{}, Got: map[string]int{}}
	var want []*expected
	for _, a := range t.Answers {
		if a.Expect == lab.Accepted {
			continue
		}
		if a.Ambiguous {
			r.Ambiguous++
			continue
		}
		cls := correlate.Tracked
		if a.Expect == lab.Late {
			cls = correlate.Late
		}
		e := &expected{tuple: a.Reply, sent: a.Sent, class: label(cls, a.SeenReply),
			lateness: a.Lateness, low: a.LatenessLow, high: a.LatenessHigh}
		if cls == correlate.Tracked {
			// While the entry lives the kernel undoes SNAT before the
			// input hook, so the drop carries the original tuple.
			e.alias = events.Tuple{Src: a.Orig.Dst, Dst: a.Orig.Src}
		}
		want = append(want, e)
	}
	for _, s := range t.Spoofs {
		want = append(want, &expected{tuple: s.Tuple, sent: s.Sent, class: correlate.Unsolicited.String()})
	}
	byTuple := map[events.Tuple][]*expected{}
	for _, e := range want {
		byTuple[e.tuple] = append(byTuple[e.tuple], e)
		if e.alias.Src.IsValid() && e.alias != e.tuple {
			byTuple[e.alias] = append(byTuple[e.alias], e)
		}
		r.Truth[e.class]++
	}

	for _, v := range verdicts {
		got := label(v.Class, v.Answered)
		r.Got[got]++
		var best *expected
		for _, e := range byTuple[v.Drop.Tuple()] {
			d := absDur(e.sent.Sub(v.Drop.Time))
			if e.used || d > matchWindow {
				continue
			}
			if best == nil || d < absDur(best.sent.Sub(v.Drop.Time)) {
				best = e
			}
		}
		if best == nil {
			r.Unexplained = append(r.Unexplained, v)
			continue
		}
		best.used = true
		if best.class != got {
			r.Mismatches = append(r.Mismatches, Mismatch{
				Tuple: best.tuple, Sent: best.sent, Want: best.class, Got: got, Reason: v.Reason.String(),
				Age: v.Age, FlowID: v.FlowID,
			})
			continue
		}
		r.Agree++
		if v.Class == correlate.Late {
			r.LatenessSamples++
			r.MaxLatenessError = max(r.MaxLatenessError, distance(v.Lateness, best.low, best.high))
			r.MaxTruthUncertainty = max(r.MaxTruthUncertainty, best.high-best.low)
		}
	}
	for _, e := range want {
		if !e.used {
			r.Missed = append(r.Missed, fmt.Sprintf("%s %s at %s", e.class, e.tuple, e.sent.Format(time.StampMilli)))
		}
	}
	return r
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Print writes the truth beside ctwatch's counts, then every
// disagreement.
func (r *Report) Print(w io.Writer) {
	classes := map[string]bool{}
	for c := range r.Truth {
		classes[c] = true
	}
	for c := range r.Got {
		classes[c] = true
	}
	names := make([]string, 0, len(classes))
	for c := range classes {
		names = append(names, c)
	}
	sort.Strings(names)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "verdict\tground truth\tctwatch\t")
	for _, c := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", c, r.Truth[c], r.Got[c])
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d of %d expected drops labelled as the ground truth says", r.Agree, sum(r.Truth))
	if r.Ambiguous > 0 {
		fmt.Fprintf(w, " (%d sent too close to an expiry to judge were left out)", r.Ambiguous)
	}
	fmt.Fprintln(w, ".")
	if r.LatenessSamples > 0 {
		fmt.Fprintf(w, "lateness: largest error %v over %d late answers "+
			"(ground truth known to within %v).\n",
			r.MaxLatenessError.Round(10*time.Microsecond), r.LatenessSamples,
			r.MaxTruthUncertainty.Round(10*time.Microsecond))
	}
	for _, m := range r.Mismatches {
		fmt.Fprintf(w, "MISMATCH %s sent %s: truth %s, ctwatch %s %s (flow %d, age %v)\n",
			m.Tuple, m.Sent.Format(time.StampMilli), m.Want, m.Got, m.Reason, m.FlowID, m.Age)
	}
	for _, m := range r.Missed {
		fmt.Fprintf(w, "MISSED %s\n", m)
	}
	for _, v := range r.Unexplained {
		fmt.Fprintf(w, "UNEXPLAINED %s %s at %s\n", label(v.Class, v.Answered), v.Drop.Tuple(),
			v.Drop.Time.Format(time.StampMilli))
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// distance is how far d lies outside [low, high]; zero inside it.
func distance(d, low, high time.Duration) time.Duration {
	switch {
	case d < low:
		return low - d
	case d > high:
		return d - high
	}
	return 0
}
