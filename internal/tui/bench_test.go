package tui

import (
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/metrics"
)

// observer is watch.Observer, restated so that this package's tests do
// not import the pipeline.
type observer interface {
	ObserveFlow(events.FlowEvent)
	ObserveLoss(events.LossEvent)
	ObserveVerdict(correlate.Verdict)
	ObserveAnswerTime(time.Duration)
}

// benchRate is the event rate the overhead is judged at; the synthetic
// clock advances by 1/benchRate per event, so the correlator holds the
// flows it would hold at that rate.
const benchRate = 50_000

// Synthetic traffic: flows live benchTimeout, their DESTROY comes
// benchDestroyLag after expiry, and some drops follow.
const (
	benchTimeout    = 3 * time.Second
	benchDestroyLag = 500 * time.Millisecond
	benchStep       = time.Second / benchRate
	benchTick       = 25 * time.Millisecond // watch.DefaultTick
)

// rig does the pipeline's per-event work without sockets, the way
// watch.Pipeline does it: one lock around the correlator and the
// observers, a verdict fan-out, and Advance at every tick.
type rig struct {
	mu        sync.Mutex
	corr      *correlate.Correlator
	observers []observer
	now       time.Time
	lastTick  time.Time
	// flow counts flows started; starts holds their start times, by
	// flow number modulo its length, for their DESTROY.
	flow   int
	starts []time.Time
	events uint64
}

func newRig(start time.Time, observers ...observer) *rig {
	r := &rig{now: start, lastTick: start, observers: observers}
	// Enough slots for the flows between a start and its DESTROY.
	flowsPerSecond := benchRate / 3
	r.starts = make([]time.Time, int((benchTimeout+benchDestroyLag+time.Second).Seconds())*flowsPerSecond)
	r.corr = correlate.New(correlate.Config{
		Emit: func(v correlate.Verdict) {
			for _, o := range r.observers {
				o.ObserveVerdict(v)
			}
		},
		OnAnswer: func(a correlate.Answer) {
			for _, o := range r.observers {
				o.ObserveAnswerTime(a.Delay)
			}
		},
	}, start.Add(-correlate.DefaultHorizon)) // no warm-up, as in the demo
	return r
}

// benchReply is the reply tuple of flow f: 64 servers, 2^24 local ports
// and addresses, so that tuples recur only after the index forgot them.
func benchReply(f int) events.Tuple {
	return events.Tuple{
		Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(f & 63)}), 53),
		Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(f >> 22), byte(f >> 14)}),
			uint16(1024+f>>6&0xff<<6|f&63)),
	}
}

func (r *rig) flowEvent(ev events.FlowEvent) {
	r.mu.Lock()
	r.corr.ObserveFlow(ev)
	for _, o := range r.observers {
		o.ObserveFlow(ev)
	}
	r.mu.Unlock()
}

func (r *rig) dropEvent(d events.Drop) {
	r.mu.Lock()
	r.corr.AddDrop(d, d.Received)
	r.mu.Unlock()
}

// next sends one flow's events: NEW, the reply, the DESTROY of an older
// flow, and every 8th flow a late drop, every 16th an unsolicited one.
func (r *rig) next() {
	f := r.flow
	r.flow++
	tick := func() {
		r.now = r.now.Add(benchStep)
		r.events++
		if r.now.Sub(r.lastTick) >= benchTick {
			r.lastTick = r.now
			r.mu.Lock()
			r.corr.Advance(r.now)
			r.mu.Unlock()
		}
	}

	reply := benchReply(f)
	r.starts[f%len(r.starts)] = r.now
	r.flowEvent(events.FlowEvent{Type: events.FlowStarted, ID: uint32(f), Reply: reply,
		Received: r.now, Timeout: benchTimeout})
	tick()
	r.flowEvent(events.FlowEvent{Type: events.FlowReplied, ID: uint32(f), Reply: reply,
		Received: r.now, Timeout: benchTimeout, Replied: f%4 != 0})
	tick()

	// The flow whose expiry plus lag has just passed.
	lagFlows := int((benchTimeout + benchDestroyLag).Seconds() * benchRate / 3)
	if old := f - lagFlows; old >= 0 {
		start := r.starts[old%len(r.starts)]
		r.flowEvent(events.FlowEvent{Type: events.FlowExpired, ID: uint32(old), Reply: benchReply(old),
			Received: r.now, Start: start, Stop: start.Add(benchTimeout), Replied: old%4 != 0})
		tick()
		if f%8 == 0 {
			tu := benchReply(old - 100)
			r.dropEvent(events.Drop{Source: events.SourceNFLOG, Time: r.now, Received: r.now,
				Proto: 17, Src: tu.Src, Dst: tu.Dst,
				DNS: &events.DNSInfo{Response: true, Name: "q.lab.test.", Type: "A"}})
			tick()
		}
	}
	if f%16 == 0 {
		d := events.Drop{Source: events.SourceNFLOG, Time: r.now, Received: r.now, Proto: 17,
			Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(f >> 4)}), 53),
			Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, 255, 1}), uint16(f>>4))}
		r.dropEvent(d)
		tick()
	}
}

// run sends at least n events and returns how long they took.
func (r *rig) run(n uint64) time.Duration {
	start := time.Now()
	for end := r.events + n; r.events < end; {
		r.next()
	}
	return time.Since(start)
}

// renderer redraws the view of c at 120x40, with colour, every period
// until stop is closed, as the live view does; it reports the renders
// made and the time they took.
func renderer(c *Collector, period time.Duration, stop <-chan struct{}) (renders int, spent time.Duration) {
	m := NewModel(Config{Namespace: "/run/netns/bench", Started: time.Now(),
		Status: func() Status { return Status{Sources: []SourceHealth{{"conntrack", true}}} }}, c)
	m.width, m.height = 120, 40
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return renders, spent
		case <-t.C:
			began := time.Now()
			s := c.Snapshot()
			s.Status = m.cfg.Status()
			m.apply(s, false)
			_, _ = io.WriteString(io.Discard, m.Render())
			spent += time.Since(began)
			renders++
		}
	}
}

// BenchmarkViewOverhead measures what the live view costs the pipeline:
// the same synthetic events (NEW, reply, DESTROY, late and unsolicited
// drops; the clock moving as at 50,000 events/s) go through the
// correlator and the metrics observer, once as is and once with a
// Collector added and a goroutine taking snapshots and rendering at
// 4 Hz. The two run in alternating phases of one run, so that both see
// the same machine load; it reports both throughputs, the throughput
// lost in percent, and the share of one CPU the view adds at 50,000
// events/s (per-event cost difference plus four renders a second).
func BenchmarkViewOverhead(b *testing.B) {
	const phase = 1 << 19 // events per phase, about a third of a second
	start := time.Date(2026, 3, 12, 14, 0, 0, 0, time.UTC)

	newMetrics := func() *metrics.Metrics {
		m, err := metrics.New(prometheus.NewRegistry(), metrics.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	base := newRig(start, newMetrics())
	col := NewCollector(CollectorConfig{Now: func() time.Time { return time.Now() }})
	view := newRig(start, newMetrics(), col)

	// Warm both up past the first DESTROYs, untimed.
	base.run(4 * phase)
	view.run(4 * phase)

	var baseTime, viewTime, renderTime time.Duration
	var baseEvents, viewEvents uint64
	renders, round := 0, 0
	runView := func() {
		stop := make(chan struct{})
		done := make(chan struct{})
		var n int
		var spent time.Duration
		go func() {
			defer close(done)
			n, spent = renderer(col, MinRefresh, stop)
		}()
		before := view.events
		viewTime += view.run(phase)
		viewEvents += view.events - before
		close(stop)
		<-done
		renders += n
		renderTime += spent
	}
	runBase := func() {
		before := base.events
		baseTime += base.run(phase)
		baseEvents += base.events - before
	}
	for b.Loop() {
		// Alternate the order so that neither always runs first.
		if round%2 == 0 {
			runBase()
			runView()
		} else {
			runView()
			runBase()
		}
		round++
	}

	baseRate := float64(baseEvents) / baseTime.Seconds()
	viewRate := float64(viewEvents) / viewTime.Seconds()
	b.ReportMetric(baseRate, "base-events/s")
	b.ReportMetric(viewRate, "view-events/s")
	b.ReportMetric(100*(baseRate-viewRate)/baseRate, "overhead-%")
	perEvent := viewTime.Seconds()/float64(viewEvents) - baseTime.Seconds()/float64(baseEvents)
	perRender := 0.0
	if renders > 0 {
		perRender = renderTime.Seconds() / float64(renders)
	}
	b.ReportMetric(100*(perEvent*benchRate+perRender*4), "cpu-%-at-50k/s")
	b.ReportMetric(perRender*1e3, "ms/render")
	s := col.Snapshot()
	if s.Classes[correlate.Late] == 0 || s.Classes[correlate.Unsolicited] == 0 {
		b.Fatalf("the synthetic traffic gave no late or unsolicited verdicts: %v", s.Classes)
	}
	b.Logf("%d events each, %d renders; verdicts late %d, unsolicited %d, tracked %d, unknown %d",
		viewEvents, renders, s.Classes[correlate.Late], s.Classes[correlate.Unsolicited],
		s.Classes[correlate.Tracked], s.Classes[correlate.Unknown])
}
