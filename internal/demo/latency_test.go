package demo_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/lab"
)

// BenchmarkDropToVerdict measures, through the whole pipeline watching a
// lab over NFLOG, the time from the kernel's timestamp of a dropped late
// answer to its verdict. Late answers whose entry was collected are
// decided as soon as the drop is read; unsolicited ones wait the grace
// window for a DESTROY by design, so they are reported apart.
//
// Run with -benchtime=1x: one iteration is one lab run of b.N-independent
// size.
func BenchmarkDropToVerdict(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchDropToVerdict(b)
	}
}

func benchDropToVerdict(b *testing.B) {
	const n = 300
	r := startWatchingB(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	timeout := r.lab.Config().UDPTimeout
	for i := 0; i < n; i++ {
		// Answers 2 s after expiry, after a forced collection at +1 s.
		delay := timeout + 2*time.Second + time.Duration(i)*3*time.Millisecond
		if _, err := r.lab.Query(ctx, lab.QuerySpec{Family: 4 + 2*(i%2), Answers: []lab.Answer{{Delay: delay}}}); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(timeout + time.Second)
	if err := r.lab.CollectGarbage(ctx); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := r.lab.Spoof(ctx, lab.SpoofSpec{Family: 4}); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.lab.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := r.stop(); err != nil {
		b.Fatal(err)
	}

	var late, unsol []time.Duration
	for _, v := range r.col.Verdicts() {
		d := v.Decided.Sub(v.Drop.Time)
		switch v.Class {
		case correlate.Late:
			late = append(late, d)
		case correlate.Unsolicited:
			unsol = append(unsol, d)
		}
	}
	if len(late) < n*9/10 {
		b.Fatalf("only %d late verdicts for %d late answers", len(late), n)
	}
	q := func(ds []time.Duration, p float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(late, 0.5), "late-p50-ms")
	b.ReportMetric(q(late, 0.99), "late-p99-ms")
	if len(unsol) > 0 {
		b.ReportMetric(q(unsol, 0.5), "unsolicited-p50-ms")
		b.ReportMetric(q(unsol, 0.99), "unsolicited-p99-ms")
	}
}
