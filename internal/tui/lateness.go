package tui

import (
	"fmt"
	"math"
	"time"
)

// chartEdges are the upper bounds of the lateness chart's buckets; a last
// bucket holds everything from the final edge up. They are fixed so that
// the chart keeps its shape while data comes in and golden files stay put.
var chartEdges = [...]time.Duration{
	100 * time.Millisecond,
	250 * time.Millisecond,
	500 * time.Millisecond,
	time.Second,
	2 * time.Second,
	3 * time.Second,
	5 * time.Second,
	10 * time.Second,
	20 * time.Second,
	30 * time.Second,
	60 * time.Second,
	90 * time.Second,
	120 * time.Second,
	180 * time.Second,
}

// ChartBuckets is the number of bars in the lateness chart.
const ChartBuckets = len(chartEdges) + 1

// MaxLatenessSeconds bounds the per-second lateness histogram behind the
// recommendation: lateness of this many seconds or more is counted in one
// overflow bucket. Expired flows are forgotten after the correlator's
// horizon (3 minutes by default), so real lateness stays far below it.
const MaxLatenessSeconds = 1024

// MinSamples is how many late answers the view wants before it makes a
// recommendation.
const MinSamples = 10

// RecommendQuantile is the share of late answers the recommended timeout
// would have accepted.
const RecommendQuantile = 0.99

// Lateness is the distribution of the lateness of late answers: coarse
// buckets for the chart and whole seconds for the recommendation. The
// zero value is empty and ready to use.
type Lateness struct {
	// Chart counts late answers by chart bucket: bucket i holds lateness
	// below ChartEdge(i) and at or above the edge before it.
	Chart [ChartBuckets]uint64
	// Seconds counts late answers by whole seconds of lateness: Seconds[k]
	// holds lateness in [k s, k+1 s).
	Seconds [MaxLatenessSeconds]uint64
	// Beyond counts late answers MaxLatenessSeconds or more late.
	Beyond uint64
	// Total counts every late answer added.
	Total uint64
}

// ChartEdge returns the upper bound of chart bucket i; the last bucket has
// none and returns 0.
func ChartEdge(i int) time.Duration {
	if i < 0 || i >= len(chartEdges) {
		return 0
	}
	return chartEdges[i]
}

// chartBucket returns the chart bucket that holds lateness d.
func chartBucket(d time.Duration) int {
	for i, e := range chartEdges {
		if d < e {
			return i
		}
	}
	return len(chartEdges)
}

// Add counts one late answer that came d after its flow expired. Negative
// lateness (which the correlator never reports) counts as zero.
func (l *Lateness) Add(d time.Duration) {
	d = max(d, 0)
	l.Total++
	l.Chart[chartBucket(d)]++
	if s := d / time.Second; s < MaxLatenessSeconds {
		l.Seconds[s]++
	} else {
		l.Beyond++
	}
}

// Quantile returns an upper bound, in whole seconds, of the lateness below
// which at least share q of the late answers fell: the end of the
// one-second bucket that holds the q-quantile. ok is false when there are
// no samples or when the quantile falls in the overflow bucket (then the
// bound is MaxLatenessSeconds and only a lower one).
func (l *Lateness) Quantile(q float64) (bound time.Duration, ok bool) {
	if l.Total == 0 {
		return 0, false
	}
	need := uint64(math.Ceil(q * float64(l.Total)))
	need = min(max(need, 1), l.Total)
	var cum uint64
	for k, n := range l.Seconds {
		cum += n
		if cum >= need {
			return time.Duration(k+1) * time.Second, true
		}
	}
	return MaxLatenessSeconds * time.Second, false
}

// Recommendation is what the view advises about the UDP timeout.
type Recommendation struct {
	// Samples is the number of late answers it is based on.
	Samples uint64
	// Enough is false when Samples is below MinSamples: no advice.
	Enough bool
	// Quantile is the share of late answers the advice covers.
	Quantile float64
	// Lateness is the extra lifetime the flows would have needed, whole
	// seconds; a lower bound when Beyond is set.
	Lateness time.Duration
	// Beyond is set when the quantile fell past MaxLatenessSeconds.
	Beyond bool
	// Current is the UDP timeout in force, and Timeout the one that would
	// have accepted the share: Current + Lateness, rounded up to a whole
	// second. Both are zero when the current timeout could not be read.
	Current time.Duration
	Timeout time.Duration
}

// Recommend computes the advice from the lateness seen and the current
// nf_conntrack_udp_timeout (zero when unknown): a timeout longer by the
// q-quantile of the lateness would have kept those flows alive until
// their late answers came.
func Recommend(l *Lateness, current time.Duration, q float64) Recommendation {
	r := Recommendation{Samples: l.Total, Quantile: q, Current: current}
	if l.Total < MinSamples {
		return r
	}
	r.Enough = true
	bound, ok := l.Quantile(q)
	r.Lateness, r.Beyond = bound, !ok
	if current > 0 {
		r.Timeout = (current + bound + time.Second - 1).Truncate(time.Second)
	}
	return r
}

// String says the advice in a sentence.
func (r Recommendation) String() string {
	pct := fmt.Sprintf("%g%%", r.Quantile*100)
	switch {
	case r.Samples == 0:
		return "No late answers seen yet: nothing to recommend."
	case !r.Enough:
		return fmt.Sprintf("Not enough data for a recommendation: %s late %s seen, %d needed.",
			count(r.Samples), plural(r.Samples, "answer", "answers"), MinSamples)
	case r.Beyond:
		return fmt.Sprintf("%s of the %s late answers came %s or more after expiry: "+
			"a longer UDP timeout will not help; look at the resolver or upstream.",
			pct, count(r.Samples), seconds(r.Lateness))
	case r.Timeout == 0:
		return fmt.Sprintf("A UDP timeout %s longer would have accepted %s of the %s "+
			"late answers seen (current timeout unknown).",
			seconds(r.Lateness), pct, count(r.Samples))
	}
	return fmt.Sprintf("A UDP timeout of %s would have accepted %s of the %s late answers seen (now %s).",
		seconds(r.Timeout), pct, count(r.Samples), seconds(r.Current))
}

// seconds formats a duration of whole seconds as "45 s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%d s", int64(math.Ceil(d.Seconds())))
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
