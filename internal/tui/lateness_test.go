package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// dist builds a lateness distribution: n answers at each lateness given.
func dist(parts ...struct {
	n int
	d time.Duration
}) *Lateness {
	var l Lateness
	for _, p := range parts {
		for range p.n {
			l.Add(p.d)
		}
	}
	return &l
}

type part = struct {
	n int
	d time.Duration
}

func TestRecommend(t *testing.T) {
	const s = time.Second
	uniform := &Lateness{}
	for k := range 100 { // one answer in the middle of each second 0..99
		uniform.Add(time.Duration(k)*s + s/2)
	}
	for _, tc := range []struct {
		name    string
		l       *Lateness
		current time.Duration
		want    Recommendation
		text    string
	}{
		{
			name: "no late answers",
			l:    dist(), current: 30 * s,
			want: Recommendation{Quantile: 0.99, Current: 30 * s},
			text: "No late answers seen yet: nothing to recommend.",
		},
		{
			name: "too few",
			l:    dist(part{MinSamples - 1, 2 * s}), current: 30 * s,
			want: Recommendation{Samples: MinSamples - 1, Quantile: 0.99, Current: 30 * s},
			text: "Not enough data for a recommendation: 9 late answers seen, 10 needed.",
		},
		{
			// 99 of 100 came within 2 s: the one outlier at 40 s is
			// the 1% the advice gives up.
			name: "one outlier in a hundred",
			l:    dist(part{99, 1500 * time.Millisecond}, part{1, 40 * s}), current: 30 * s,
			want: Recommendation{Samples: 100, Enough: true, Quantile: 0.99,
				Lateness: 2 * s, Current: 30 * s, Timeout: 32 * s},
			text: "A UDP timeout of 32 s would have accepted 99% of the 100 late answers seen (now 30 s).",
		},
		{
			name: "uniform over 100 s",
			l:    uniform, current: 30 * s,
			want: Recommendation{Samples: 100, Enough: true, Quantile: 0.99,
				Lateness: 99 * s, Current: 30 * s, Timeout: 129 * s},
			text: "A UDP timeout of 129 s would have accepted 99% of the 100 late answers seen (now 30 s).",
		},
		{
			name: "exactly 1% in the tail",
			l:    dist(part{990, 200 * time.Millisecond}, part{10, 50 * s}), current: 30 * s,
			want: Recommendation{Samples: 1000, Enough: true, Quantile: 0.99,
				Lateness: 1 * s, Current: 30 * s, Timeout: 31 * s},
			text: "A UDP timeout of 31 s would have accepted 99% of the 1,000 late answers seen (now 30 s).",
		},
		{
			name: "just over 1% in the tail",
			l:    dist(part{989, 200 * time.Millisecond}, part{11, 50 * s}), current: 30 * s,
			want: Recommendation{Samples: 1000, Enough: true, Quantile: 0.99,
				Lateness: 51 * s, Current: 30 * s, Timeout: 81 * s},
			text: "A UDP timeout of 81 s would have accepted 99% of the 1,000 late answers seen (now 30 s).",
		},
		{
			// A whole second of lateness lies in the next second's
			// bucket: the bound is never below the lateness.
			name: "on a second boundary",
			l:    dist(part{20, 2 * s}), current: 30 * s,
			want: Recommendation{Samples: 20, Enough: true, Quantile: 0.99,
				Lateness: 3 * s, Current: 30 * s, Timeout: 33 * s},
			text: "A UDP timeout of 33 s would have accepted 99% of the 20 late answers seen (now 30 s).",
		},
		{
			name: "all beyond the last chart bucket",
			l:    dist(part{20, 200*s + 300*time.Millisecond}), current: 30 * s,
			want: Recommendation{Samples: 20, Enough: true, Quantile: 0.99,
				Lateness: 201 * s, Current: 30 * s, Timeout: 231 * s},
			text: "A UDP timeout of 231 s would have accepted 99% of the 20 late answers seen (now 30 s).",
		},
		{
			name: "all beyond the histogram",
			l:    dist(part{12, 2000 * s}), current: 30 * s,
			want: Recommendation{Samples: 12, Enough: true, Quantile: 0.99,
				Lateness: MaxLatenessSeconds * s, Beyond: true, Current: 30 * s, Timeout: 1054 * s},
			text: "99% of the 12 late answers came 1024 s or more after expiry: " +
				"a longer UDP timeout will not help; look at the resolver or upstream.",
		},
		{
			name: "current timeout unknown",
			l:    dist(part{50, 700 * time.Millisecond}, part{50, 4200 * time.Millisecond}),
			want: Recommendation{Samples: 100, Enough: true, Quantile: 0.99, Lateness: 5 * s},
			text: "A UDP timeout 5 s longer would have accepted 99% of the 100 late answers seen " +
				"(current timeout unknown).",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Recommend(tc.l, tc.current, RecommendQuantile)
			if got != tc.want {
				t.Errorf("Recommend = %+v, want %+v", got, tc.want)
			}
			if s := got.String(); s != tc.text {
				t.Errorf("String = %q, want %q", s, tc.text)
			}
		})
	}
}

func TestLatenessAdd(t *testing.T) {
	l := dist(part{1, -time.Second}, part{1, 99 * time.Millisecond}, part{1, 100 * time.Millisecond},
		part{1, 179 * time.Second}, part{1, 180 * time.Second}, part{1, MaxLatenessSeconds * time.Second})
	if l.Total != 6 {
		t.Errorf("Total = %d, want 6", l.Total)
	}
	for _, tc := range []struct {
		bucket int
		want   uint64
	}{{0, 2}, {1, 1}, {ChartBuckets - 2, 1}, {ChartBuckets - 1, 2}} {
		if got := l.Chart[tc.bucket]; got != tc.want {
			t.Errorf("Chart[%d] = %d, want %d", tc.bucket, got, tc.want)
		}
	}
	if l.Seconds[0] != 3 || l.Seconds[179] != 1 || l.Seconds[180] != 1 || l.Beyond != 1 {
		t.Errorf("Seconds[0,179,180] = %d,%d,%d, Beyond %d; want 3,1,1,1",
			l.Seconds[0], l.Seconds[179], l.Seconds[180], l.Beyond)
	}
}

func TestQuantileEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		l     *Lateness
		q     float64
		bound time.Duration
		ok    bool
	}{
		{"empty", dist(), 0.99, 0, false},
		{"single", dist(part{1, 7500 * time.Millisecond}), 0.99, 8 * time.Second, true},
		{"median", dist(part{5, time.Second / 2}, part{5, 10 * time.Second}), 0.5, time.Second, true},
		{"q zero takes the first", dist(part{3, 4 * time.Second}), 0, 5 * time.Second, true},
		{"tail beyond", dist(part{1, time.Second / 2}, part{1, time.Hour}), 0.99,
			MaxLatenessSeconds * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bound, ok := tc.l.Quantile(tc.q)
			if bound != tc.bound || ok != tc.ok {
				t.Errorf("Quantile(%g) = %v, %v; want %v, %v", tc.q, bound, ok, tc.bound, tc.ok)
			}
		})
	}
}

// TestRecommendationOnScreen checks that the view says the advice and
// marks the quantile's bucket in the chart.
func TestRecommendationOnScreen(t *testing.T) {
	snap := Snapshot{Taken: t0, Timeouts: events.UDPTimeouts{Timeout: 30 * time.Second, StreamTimeout: 120 * time.Second}}
	snap.Lateness = *dist(part{99, 1500 * time.Millisecond}, part{1, 40 * time.Second})
	snap.Classes[0] = 100
	got := render(t, Config{NoColor: true, Location: time.UTC}, []Snapshot{snap}, 120, 40)
	for _, want := range []string{
		"A UDP timeout of 32 s would have accepted 99% of the 100 late answers",
		"1-2s │", "◂ 99% below 2 s", "◂ stream timeout",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("view lacks %q:\n%s", want, got)
		}
	}
}
