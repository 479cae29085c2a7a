package correlate

import (
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

const (
	ms  = time.Millisecond
	sec = time.Second
)

func flush(now time.Duration) step {
	return func(h *harness) { h.c.Flush(at(now)) }
}

// TestVerdicts runs every ordering of drops and conntrack events the
// kernel produces, on the default configuration (Horizon 3m, Grace 250ms,
// EstimateMargin 2s, MaxDropLag 5s) unless a case says otherwise.
// innerOrig is tupleA's flow before SNAT: the resolver's inner address
// 198.18.2.10:40001 was translated to 198.18.1.10:40001. innerDrop is an
// answer after the kernel undid the translation.
var (
	innerOrig = tuple("198.18.2.10:40001", "198.18.0.53:53")
	innerDrop = tuple("198.18.0.53:53", "198.18.2.10:40001")
)

func TestVerdicts(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		want  []outcome
	}{
		// Late: the expiry is known when the drop comes, or within grace.
		{
			name: "late after GC: DESTROY long before drop, answered",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(20*ms, 1, tupleA),
				destroy(75*sec, 1, tupleA, stamps(-1*ms, 30*sec+20*ms)),
				drop(90*sec, tupleA),
			},
			want: []outcome{{Drop: 90 * sec, Class: Late, Answered: true,
				Lateness: 59*sec + 980*ms, Age: 90*sec + 1*ms, FlowID: 1,
				Decided: 90 * sec}},
		},
		{
			name: "late after GC: unanswered",
			steps: []step{
				newFlow(0, 2, tupleA),
				destroy(62*sec, 2, tupleA, stamps(-1*ms, 30*sec)),
				drop(70*sec, tupleA),
			},
			want: []outcome{{Drop: 70 * sec, Class: Late, Lateness: 40 * sec,
				Age: 70*sec + 1*ms, FlowID: 2, Decided: 70 * sec}},
		},
		{
			name: "late before GC: drop first, DESTROY within grace",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(10*ms, 1, tupleA),
				drop(40*sec, tupleA),
				destroy(40*sec+1*ms, 1, tupleA, stamps(-1*ms, 30*sec+10*ms)),
				advance(40*sec + 250*ms),
			},
			want: []outcome{{Drop: 40 * sec, Class: Late, Answered: true,
				Lateness: 9*sec + 990*ms, Age: 40*sec + 1*ms, FlowID: 1,
				Decided: 40*sec + 250*ms}},
		},
		{
			name: "late before GC: DESTROY read first, drop just after",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(10*ms, 1, tupleA),
				destroy(40*sec+1*ms, 1, tupleA, stamps(-1*ms, 30*sec+10*ms)),
				lagDrop(40*sec, 40*sec+1500*time.Microsecond, tupleA),
			},
			want: []outcome{{Drop: 40 * sec, Class: Late, Answered: true,
				Lateness: 9*sec + 990*ms, Age: 40*sec + 1*ms, FlowID: 1,
				Decided: 40*sec + 1500*time.Microsecond}},
		},
		{
			name: "SNAT: live flow, drop carries the untranslated tuple: tracked",
			steps: []step{
				newFlow(0, 7, tupleA, natted(innerOrig)),
				reply(10*ms, 7, tupleA),
				drop(1*sec, innerDrop),
				advance(1*sec + 250*ms),
			},
			want: []outcome{{Drop: 1 * sec, Class: Tracked, Answered: true,
				Age: 1 * sec, FlowID: 7, Decided: 1*sec + 250*ms}},
		},
		{
			name: "SNAT: after DESTROY the untranslated tuple matches nothing",
			steps: []step{
				newFlow(0, 7, tupleA, natted(innerOrig)),
				destroy(31*sec, 7, tupleA, stamps(-1*ms, 30*sec)),
				drop(32*sec, innerDrop),
				advance(32*sec + 250*ms),
			},
			want: []outcome{{Drop: 32 * sec, Class: Unsolicited, Decided: 32*sec + 250*ms}},
		},
		{
			name: "drop first, DESTROY after grace: tracked",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(10*ms, 1, tupleA),
				drop(40*sec, tupleA),
				advance(40*sec + 250*ms),
				destroy(41*sec, 1, tupleA, stamps(-1*ms, 30*sec+10*ms)),
				advance(42 * sec),
			},
			want: []outcome{{Drop: 40 * sec, Class: Tracked, Answered: true,
				Age: 40 * sec, FlowID: 1, Decided: 40*sec + 250*ms}},
		},
		{
			name: "DESTROY after grace but before the deadline is processed",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(10*ms, 1, tupleA),
				drop(40*sec, tupleA),
				destroy(40*sec+500*ms, 1, tupleA, stamps(-1*ms, 30*sec+10*ms)),
				advance(40*sec + 600*ms),
			},
			want: []outcome{{Drop: 40 * sec, Class: Late, Answered: true,
				Lateness: 9*sec + 990*ms, Age: 40*sec + 1*ms, FlowID: 1,
				Decided: 40*sec + 600*ms}},
		},
		{
			// The kernel counts an entry as expired once its timeout is
			// not in the future (nf_ct_is_expired uses <= 0).
			name: "late: a packet at the very expiry instant",
			steps: []step{
				newFlow(0, 1, tupleA),
				destroy(31*sec, 1, tupleA, stamps(0, 30*sec)),
				lagDrop(30*sec, 31*sec, tupleA),
			},
			want: []outcome{{Drop: 30 * sec, Class: Late, Age: 30 * sec,
				FlowID: 1, Decided: 31 * sec}},
		},
		{
			name: "lost UPDATE repaired by the DESTROY's replied bit",
			steps: []step{
				newFlow(0, 1, tupleA),
				destroy(60*sec, 1, tupleA, stamps(0, 30*sec), replied),
				drop(70*sec, tupleA),
			},
			want: []outcome{{Drop: 70 * sec, Class: Late, Answered: true,
				Lateness: 40 * sec, Age: 70 * sec, FlowID: 1,
				Decided: 70 * sec}},
		},

		// Tracked: a live flow matches.
		{
			name: "tracked: live flow, no DESTROY",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(10*ms, 1, tupleA),
				drop(5*sec, tupleA),
				advance(5*sec + 200*ms), // still within grace
				advance(5*sec + 250*ms),
			},
			want: []outcome{{Drop: 5 * sec, Class: Tracked, Answered: true,
				Age: 5 * sec, FlowID: 1, Decided: 5*sec + 250*ms}},
		},
		{
			name: "tracked: DESTROY within grace but expiry after the drop",
			steps: []step{
				newFlow(0, 1, tupleA),
				drop(29*sec+900*ms, tupleA),
				destroy(30*sec, 1, tupleA, stamps(-1*ms, 30*sec)),
				advance(30*sec + 150*ms),
			},
			want: []outcome{{Drop: 29*sec + 900*ms, Class: Tracked,
				Age: 29*sec + 901*ms, FlowID: 1, Decided: 30*sec + 150*ms}},
		},
		{
			name: "tracked: reply dropped before its NEW was read",
			steps: []step{
				lagDrop(2*ms, 3*ms, tupleA),
				newFlow(10*ms, 1, tupleA),
				advance(253 * ms),
			},
			want: []outcome{{Drop: 2 * ms, Class: Tracked, FlowID: 1,
				Decided: 253 * ms}},
		},

		// Unsolicited and the unknowns of an unmatched drop.
		{
			name: "unsolicited",
			steps: []step{
				drop(5*sec, tupleA),
				advance(5*sec + 250*ms),
			},
			want: []outcome{{Drop: 5 * sec, Class: Unsolicited,
				Decided: 5*sec + 250*ms}},
		},
		{
			name: "unsolicited: flows on other tuples do not match",
			steps: []step{
				newFlow(0, 1, tupleB),
				destroy(45*sec, 1, tupleB, stamps(0, 30*sec)),
				drop(50*sec, tupleA),
				drop(50*sec, tupleC),
				advance(50*sec + 250*ms),
			},
			want: []outcome{
				{Drop: 50 * sec, Class: Unsolicited, Decided: 50*sec + 250*ms},
				{Drop: 50 * sec, Class: Unsolicited, Decided: 50*sec + 250*ms},
			},
		},
		{
			name: "Flush decides pending drops at once",
			steps: []step{
				drop(5*sec, tupleA),
				flush(5*sec + 100*ms),
			},
			want: []outcome{{Drop: 5 * sec, Class: Unsolicited,
				Decided: 5*sec + 100*ms}},
		},
		{
			name: "warm-up: unknown within a horizon of start",
			steps: []step{
				drop(-9*time.Minute, tupleA),
				advance(-9*time.Minute + 250*ms),
			},
			want: []outcome{{Drop: -9 * time.Minute, Class: Unknown,
				Reason: ReasonWarmUp, Decided: -9*time.Minute + 250*ms}},
		},
		{
			name: "warm-up ends one horizon after start",
			steps: []step{
				drop(-7*time.Minute-1*ms, tupleA),
				drop(-7*time.Minute, tupleB),
				advance(-7*time.Minute + 250*ms),
			},
			want: []outcome{
				{Drop: -7*time.Minute - 1*ms, Class: Unknown,
					Reason: ReasonWarmUp, Decided: -7*time.Minute + 250*ms},
				{Drop: -7 * time.Minute, Class: Unsolicited,
					Decided: -7*time.Minute + 250*ms},
			},
		},
		{
			name: "loss window: unmatched drops unknown until Horizon past its end",
			steps: []step{
				loss(100*sec, 105*sec),
				lagDrop(99*sec+700*ms, 105*sec, tupleA), // before start-Grace
				lagDrop(99*sec+800*ms, 105*sec, tupleA),
				lagDrop(104*sec, 105*sec, tupleA),
				advance(105*sec + 250*ms),
				drop(285*sec, tupleA), // end + Horizon
				advance(285*sec + 250*ms),
				drop(285*sec+1*ms, tupleA),
				advance(285*sec + 251*ms),
			},
			want: []outcome{
				{Drop: 99*sec + 700*ms, Class: Unsolicited,
					Decided: 105*sec + 250*ms},
				{Drop: 99*sec + 800*ms, Class: Unknown,
					Reason: ReasonEventLoss, Decided: 105*sec + 250*ms},
				{Drop: 104 * sec, Class: Unknown, Reason: ReasonEventLoss,
					Decided: 105*sec + 250*ms},
				{Drop: 285 * sec, Class: Unknown, Reason: ReasonEventLoss,
					Decided: 285*sec + 250*ms},
				{Drop: 285*sec + 1*ms, Class: Unsolicited,
					Decided: 285*sec + 251*ms},
			},
		},
		{
			name: "loss window: live flow missing from the re-dump is unknown",
			steps: []step{
				newFlow(0, 1, tupleA),
				newFlow(0, 2, tupleB),
				// The re-dump finds A (refreshed by unseen traffic), not B:
				// B's DESTROY was lost.
				seen(52*sec, 1, tupleA, timeout(25*sec)),
				loss(50*sec, 55*sec),
				drop(60*sec, tupleA),
				drop(60*sec, tupleB),
				advance(60*sec + 250*ms),
			},
			want: []outcome{
				{Drop: 60 * sec, Class: Tracked, Age: 60 * sec, FlowID: 1,
					Decided: 60*sec + 250*ms},
				{Drop: 60 * sec, Class: Unknown, Reason: ReasonEventLoss,
					Age: 60 * sec, FlowID: 2, Decided: 60*sec + 250*ms},
			},
		},
		{
			name: "loss window: open until resync, then the DESTROY clears it",
			steps: []step{
				newFlow(0, 1, tupleA),
				lossOpen(20 * sec),
				drop(45*sec, tupleA), // live match in an open window
				advance(45*sec + 250*ms),
				loss(20*sec, 50*sec), // resync: A was not re-dumped
				drop(60*sec, tupleA),
				advance(60*sec + 250*ms),
				destroy(70*sec, 1, tupleA, stamps(0, 30*sec)), // not lost
				drop(80*sec, tupleA),
				drop(230*sec, tupleB), // end + Horizon
				advance(230*sec + 250*ms),
				drop(230*sec+1*ms, tupleB),
				advance(230*sec + 251*ms),
			},
			want: []outcome{
				{Drop: 45 * sec, Class: Unknown, Reason: ReasonEventLoss,
					Age: 45 * sec, FlowID: 1, Decided: 45*sec + 250*ms},
				{Drop: 60 * sec, Class: Unknown, Reason: ReasonEventLoss,
					Age: 60 * sec, FlowID: 1, Decided: 60*sec + 250*ms},
				{Drop: 80 * sec, Class: Late, Lateness: 50 * sec,
					Age: 80 * sec, FlowID: 1, Decided: 80 * sec},
				{Drop: 230 * sec, Class: Unknown, Reason: ReasonEventLoss,
					Decided: 230*sec + 250*ms},
				{Drop: 230*sec + 1*ms, Class: Unsolicited,
					Decided: 230*sec + 251*ms},
			},
		},
		{
			name: "capacity: evicted flow's tuple is unknown for a horizon",
			cfg:  Config{MaxFlows: 2},
			steps: []step{
				newFlow(0, 1, tupleA),
				newFlow(1*sec, 2, tupleB),
				destroy(40*sec, 1, tupleA, stamps(0, 30*sec)),
				destroy(41*sec, 2, tupleB, stamps(1*sec, 31*sec)),
				newFlow(50*sec, 3, tupleC), // evicts A, the oldest expired
				drop(60*sec, tupleA),
				drop(60*sec, tupleB),
				advance(60*sec + 250*ms),
				drop(211*sec, tupleA), // A's expiry + Horizon has passed
				advance(211*sec + 250*ms),
			},
			want: []outcome{
				{Drop: 60 * sec, Class: Late, Lateness: 29 * sec,
					Age: 59 * sec, FlowID: 2, Decided: 60 * sec},
				{Drop: 60 * sec, Class: Unknown, Reason: ReasonCapacity,
					Decided: 60*sec + 250*ms},
				{Drop: 211 * sec, Class: Unsolicited,
					Decided: 211*sec + 250*ms},
			},
		},
		{
			name: "horizon: late up to Horizon, then forgotten",
			steps: []step{
				newFlow(0, 1, tupleA),
				destroy(60*sec, 1, tupleA, stamps(0, 30*sec)),
				drop(210*sec, tupleA),
				drop(210*sec+1*ms, tupleA),
				advance(210*sec + 251*ms),
				advance(215*sec + 251*ms), // retention 185.25s: forgotten
				// A kernel log 7s behind: A could have explained it.
				lagDrop(209*sec, 216*sec, tupleA),
				advance(216*sec + 250*ms),
			},
			want: []outcome{
				{Drop: 210 * sec, Class: Late, Lateness: 180 * sec,
					Age: 210 * sec, FlowID: 1, Decided: 210 * sec},
				{Drop: 210*sec + 1*ms, Class: Unsolicited,
					Decided: 210*sec + 251*ms},
				{Drop: 209 * sec, Class: Unknown, Reason: ReasonDropLag,
					Decided: 216*sec + 250*ms},
			},
		},
		{
			name: "stale live flow is forgotten, later drops unsolicited",
			steps: []step{
				newFlow(0, 1, tupleA), // its DESTROY never comes
				advance(215*sec + 251*ms),
				drop(216*sec, tupleA),
				advance(216*sec + 250*ms),
			},
			want: []outcome{{Drop: 216 * sec, Class: Unsolicited,
				Decided: 216*sec + 250*ms}},
		},
		{
			name: "port reuse: each drop matches the flow live or last expired",
			steps: []step{
				newFlow(0, 1, tupleA),
				destroy(45*sec, 1, tupleA, stamps(-1*ms, 30*sec)),
				drop(50*sec, tupleA),
				newFlow(100*sec, 2, tupleA), // same source port again
				drop(110*sec, tupleA),
				advance(110*sec + 250*ms),
				destroy(150*sec, 2, tupleA, stamps(99*sec+999*ms, 130*sec)),
				drop(160*sec, tupleA),
				lagDrop(60*sec, 165*sec, tupleA),  // before the second flow
				lagDrop(115*sec, 166*sec, tupleA), // while it was live
				// 99ms before the second flow's kernel start: a kernel
				// timestamp is exact, so no slack lets it match.
				lagDrop(99*sec+900*ms, 167*sec, tupleA),
			},
			want: []outcome{
				{Drop: 50 * sec, Class: Late, Lateness: 20 * sec,
					Age: 50*sec + 1*ms, FlowID: 1, Decided: 50 * sec},
				{Drop: 110 * sec, Class: Tracked, Age: 10 * sec, FlowID: 2,
					Decided: 110*sec + 250*ms},
				{Drop: 160 * sec, Class: Late, Lateness: 30 * sec,
					Age: 60*sec + 1*ms, FlowID: 2, Decided: 160 * sec},
				{Drop: 60 * sec, Class: Late, Lateness: 30 * sec,
					Age: 60*sec + 1*ms, FlowID: 1, Decided: 165 * sec},
				{Drop: 115 * sec, Class: Tracked, Age: 15*sec + 1*ms,
					FlowID: 2, Decided: 166 * sec},
				{Drop: 99*sec + 900*ms, Class: Late,
					Lateness: 69*sec + 900*ms, Age: 99*sec + 901*ms,
					FlowID: 1, Decided: 167 * sec},
			},
		},
		{
			name: "IPv6",
			steps: []step{
				newFlow(0, 1, tuple6),
				reply(15*ms, 1, tuple6),
				destroy(70*sec, 1, tuple6, stamps(0, 30*sec+15*ms)),
				drop(80*sec, tuple6),
			},
			want: []outcome{{Drop: 80 * sec, Class: Late, Answered: true,
				Lateness: 49*sec + 985*ms, Age: 80 * sec, FlowID: 1,
				Decided: 80 * sec}},
		},
		{
			name: "IPv4-mapped drop matches an IPv4 flow",
			steps: []step{
				newFlow(0, 1, tupleA),
				destroy(70*sec, 1, tupleA, stamps(0, 30*sec)),
				drop(80*sec, tupleA6),
			},
			want: []outcome{{Drop: 80 * sec, Class: Late, Lateness: 50 * sec,
				Age: 80 * sec, FlowID: 1, Decided: 80 * sec}},
		},

		// No timestamps: the expiry is estimated.
		{
			name: "estimated: late, too close to tell, and before expiry",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(1*sec, 1, tupleA),    // expiry estimate 31s
				destroy(80*sec, 1, tupleA), // no stamps
				drop(85*sec, tupleA),
				lagDrop(32*sec, 86*sec, tupleA),
				lagDrop(28*sec, 87*sec, tupleA),
			},
			want: []outcome{
				{Drop: 85 * sec, Class: Late, Answered: true,
					Lateness: 54 * sec, Age: 85 * sec, Estimated: true,
					FlowID: 1, Decided: 85 * sec},
				{Drop: 32 * sec, Class: Unknown, Reason: ReasonNoTimestamp,
					Answered: true, Age: 32 * sec, Estimated: true,
					FlowID: 1, Decided: 86 * sec},
				{Drop: 28 * sec, Class: Tracked, Answered: true,
					Age: 28 * sec, Estimated: true, FlowID: 1,
					Decided: 87 * sec},
			},
		},
		{
			name: "estimated: drop first, DESTROY without stamps within grace",
			steps: []step{
				newFlow(0, 1, tupleA),
				drop(40*sec, tupleA),
				destroy(40*sec+1*ms, 1, tupleA),
				advance(40*sec + 250*ms),
			},
			want: []outcome{{Drop: 40 * sec, Class: Late, Lateness: 10 * sec,
				Age: 40 * sec, Estimated: true, FlowID: 1,
				Decided: 40*sec + 250*ms}},
		},
		{
			name: "estimated: an early DESTROY caps the estimate",
			steps: []step{
				newFlow(0, 1, tupleA),
				destroy(20*sec, 1, tupleA), // deleted before its timeout
				drop(25*sec, tupleA),
			},
			want: []outcome{{Drop: 25 * sec, Class: Late, Lateness: 5 * sec,
				Age: 25 * sec, Estimated: true, FlowID: 1,
				Decided: 25 * sec}},
		},
		{
			name: "estimated: configured timeouts when events carry none",
			steps: []step{
				newFlow(0, 1, tupleA, timeout(0)),   // +30s
				reply(1*sec, 1, tupleA, timeout(0)), // +30s: 31s
				reply(5*sec, 1, tupleA, timeout(0)), // ASSURED, +120s: 125s
				destroy(200*sec, 1, tupleA),
				drop(210*sec, tupleA),
			},
			want: []outcome{{Drop: 210 * sec, Class: Late, Answered: true,
				Lateness: 85 * sec, Age: 210 * sec, Estimated: true,
				FlowID: 1, Decided: 210 * sec}},
		},

		// Flows first met in a dump or a DESTROY.
		{
			name: "dump-seen flow: tracked before its estimated expiry, then predates",
			steps: []step{
				seen(0, 1, tupleA, timeout(20*sec), replied),
				drop(10*sec, tupleA),
				advance(10*sec + 250*ms),
				drop(25*sec, tupleA),
				advance(25*sec + 250*ms),
			},
			want: []outcome{
				{Drop: 10 * sec, Class: Tracked, Answered: true,
					Age: 10 * sec, FlowID: 1, Decided: 10*sec + 250*ms},
				{Drop: 25 * sec, Class: Unknown, Reason: ReasonPredates,
					Answered: true, Age: 25 * sec, Estimated: true,
					FlowID: 1, Decided: 25*sec + 250*ms},
			},
		},
		{
			name: "dump-seen flow with kernel start, then DESTROY",
			steps: []step{
				seen(0, 1, tupleA, timeout(20*sec), startStamp(-50*sec)),
				destroy(40*sec, 1, tupleA, stamps(-50*sec, 20*sec+500*ms)),
				drop(45*sec, tupleA),
			},
			want: []outcome{{Drop: 45 * sec, Class: Late,
				Lateness: 24*sec + 500*ms, Age: 95 * sec, FlowID: 1,
				Decided: 45 * sec}},
		},
		{
			name: "DESTROY of a flow never seen live",
			steps: []step{
				destroy(40*sec, 7, tupleA, stamps(0, 30*sec), replied),
				destroy(40*sec, 7, tupleA, stamps(0, 30*sec), replied),
				drop(50*sec, tupleA),
			},
			want: []outcome{{Drop: 50 * sec, Class: Late, Answered: true,
				Lateness: 20 * sec, Age: 50 * sec, FlowID: 7,
				Decided: 50 * sec}},
		},
		{
			name: "DESTROY of a flow never seen live, without stamps",
			steps: []step{
				destroy(40*sec, 7, tupleA),
				drop(45*sec, tupleA),
			},
			want: []outcome{{Drop: 45 * sec, Class: Late, Lateness: 5 * sec,
				Age: 5 * sec, Estimated: true, FlowID: 7,
				Decided: 45 * sec}},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.cfg)
			for _, s := range tt.steps {
				s(h)
			}
			checkOutcomes(t, h.verdicts, tt.want)
			checkInvariants(t, h.c)
		})
	}
}

// TestVerdictCarriesDrop checks the drop record reaches the verdict intact.
func TestVerdictCarriesDrop(t *testing.T) {
	h := newHarness(Config{})
	drop(5*sec, tupleA)(h)
	advance(6 * sec)(h)

	if len(h.verdicts) != 1 {
		t.Fatalf("got %d verdicts, want 1", len(h.verdicts))
	}
	d := h.verdicts[0].Drop
	if d.Src != tupleA.Src || d.Dst != tupleA.Dst || !d.Time.Equal(at(5*sec)) ||
		d.Source.String() != "nflog" || d.Proto != 17 {
		t.Errorf("verdict carries drop %+v", d)
	}
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  []Answer
	}{
		{
			name: "from the NEW's arrival, first reply only",
			steps: []step{
				newFlow(0, 1, tupleA),
				reply(20*ms, 1, tupleA),
				reply(3*sec, 1, tupleA), // ASSURED: not a first reply
			},
			want: []Answer{{FlowID: 1, Reply: tupleA, At: at(20 * ms),
				Delay: 20 * ms}},
		},
		{
			name: "from the kernel's start timestamp",
			steps: []step{
				newFlow(0, 1, tuple6, startStamp(-5*ms)),
				reply(20*ms, 1, tuple6),
			},
			want: []Answer{{FlowID: 1, Reply: tuple6, At: at(20 * ms),
				Delay: 25 * ms, Exact: true}},
		},
		{
			name: "none when the start is unknown",
			steps: []step{
				seen(0, 1, tupleA),      // start unknown, not replied
				reply(1*sec, 1, tupleA), // its first reply, but from when?
				reply(2*sec, 2, tupleB), // NEW missed
				newFlow(3*sec, 3, tupleC),
				destroy(40*sec, 3, tupleC), // never replied
			},
		},
		{
			name: "dump-seen flow with kernel start",
			steps: []step{
				seen(0, 1, tupleA, startStamp(-2*sec)),
				reply(1*sec, 1, tupleA),
			},
			want: []Answer{{FlowID: 1, Reply: tupleA, At: at(1 * sec),
				Delay: 3 * sec, Exact: true}},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(Config{})
			for _, s := range tt.steps {
				s(h)
			}
			if len(h.answers) != len(tt.want) {
				t.Fatalf("got answers %+v, want %+v", h.answers, tt.want)
			}
			for i := range tt.want {
				if g, w := h.answers[i], tt.want[i]; g.FlowID != w.FlowID ||
					g.Reply != w.Reply || !g.At.Equal(w.At) ||
					g.Delay != w.Delay || g.Exact != w.Exact {
					t.Errorf("answer %d: got %+v, want %+v", i, g, w)
				}
			}
			if got := h.c.Stats().Answers; got != uint64(len(tt.want)) {
				t.Errorf("Stats().Answers = %d, want %d", got, len(tt.want))
			}
		})
	}
}

func TestStats(t *testing.T) {
	h := newHarness(Config{MaxFlows: 3})
	for _, s := range []step{
		newFlow(0, 1, tupleA),
		reply(10*ms, 1, tupleA),
		newFlow(0, 2, tupleB),
		destroy(40*sec, 2, tupleB, stamps(0, 30*sec)),
		destroy(41*sec, 9, tupleC, stamps(0, 31*sec)), // orphan
		newFlow(42*sec, 3, tuple6),                    // evicts B
		drop(50*sec, tupleC),                          // late
		drop(50*sec, tupleA),                          // pending
		lossOpen(49 * sec),                            // reported at 50s
	} {
		s(h)
	}

	got := h.c.Stats()
	want := Stats{
		Live: 2, Expired: 1, PendingDrops: 1, LossWindows: 1, LossOpen: true,
		Evicted: 1, Orphans: 1, Answers: 1,
	}
	want.Verdicts[Late] = 1
	if got != want {
		t.Errorf("Stats() =\n %+v\nwant\n %+v", got, want)
	}

	// Past the grace: the tracked drop is decided, inside the open window.
	// Much later: everything is forgotten, the live flows as stale.
	advance(50*sec + 250*ms)(h)
	loss(49*sec, 52*sec)(h)
	advance(20 * time.Minute)(h)
	got = h.c.Stats()
	want = Stats{
		Evicted: 1, Orphans: 1, Answers: 1, Forgotten: 1, Stale: 2,
	}
	want.Verdicts[Late] = 1
	want.Verdicts[Unknown] = 1
	want.Unknown[ReasonEventLoss] = 1
	if got != want {
		t.Errorf("Stats() =\n %+v\nwant\n %+v", got, want)
	}
	checkInvariants(t, h.c)
}

func TestIgnoredEvents(t *testing.T) {
	h := newHarness(Config{})
	ev := flowEv(0, 0, 1, tupleA) // no type
	ev(h)
	h.c.ObserveFlow(events.FlowEvent{Type: events.FlowStarted, ID: 2,
		Reply: tupleB}) // no arrival time
	if got := h.c.Stats().Ignored; got != 2 {
		t.Errorf("Stats().Ignored = %d, want 2", got)
	}
	if got := h.c.Stats().Live; got != 0 {
		t.Errorf("Stats().Live = %d, want 0", got)
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{Grace: -1, MaxFlows: -5}.withDefaults()
	if got.Horizon != DefaultHorizon || got.Grace != DefaultGrace ||
		got.MaxFlows != DefaultMaxFlows || got.UDPTimeout != DefaultUDPTimeout ||
		got.StreamTimeout != DefaultStreamTimeout ||
		got.EstimateMargin != DefaultEstimateMargin ||
		got.MaxDropLag != DefaultMaxDropLag {
		t.Errorf("withDefaults() = %+v", got)
	}
	if got := (Config{MaxFlows: 1 << 40}).withDefaults().MaxFlows; got != maxMaxFlows {
		t.Errorf("MaxFlows clamps to %d, want %d", got, maxMaxFlows)
	}
}

func TestLabels(t *testing.T) {
	for _, c := range Classes {
		if s := c.String(); s == "" || s[0] == 'C' {
			t.Errorf("class %d has no label: %q", c, s)
		}
	}
	for _, r := range Reasons {
		if s := r.String(); s == "" || s[0] == 'R' {
			t.Errorf("reason %d has no label: %q", r, s)
		}
	}
	if len(Reasons) != numReasons-1 || len(Classes) != numClasses {
		t.Errorf("Reasons or Classes incomplete")
	}
}
