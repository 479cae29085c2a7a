package correlate

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// benchTuple returns the i-th of 1<<24 distinct reply tuples, spread over
// 16 servers the way a resolver spreads queries.
func benchTuple(i int) events.Tuple {
	return events.Tuple{
		Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i & 15)}), 53),
		Dst: netip.AddrPortFrom(
			netip.AddrFrom4([4]byte{198, 19, byte(i >> 16), byte(i >> 8)}),
			uint16(1024+(i>>4&15)<<8|i&0xff)),
	}
}

// fill remembers n flows, one NEW per microsecond, each expired 30 s
// later by a timestamped DESTROY unless live is set, and calls Advance as
// a pipeline would.
func fill(c *Correlator, n int, live bool) {
	for i := range n {
		start := base.Add(time.Duration(i) * time.Microsecond)
		ev := events.FlowEvent{
			Type:     events.FlowStarted,
			ID:       uint32(i + 1),
			Reply:    benchTuple(i),
			Received: start,
			Timeout:  30 * time.Second,
		}
		c.ObserveFlow(ev)
		if !live {
			ev.Type = events.FlowExpired
			ev.Received = start.Add(40 * time.Second)
			ev.Start, ev.Stop = start, start.Add(30*time.Second)
			ev.Timeout = 0
			c.ObserveFlow(ev)
		}
		if i%4096 == 0 {
			c.Advance(start)
		}
	}
	c.Advance(base.Add(50 * time.Second))
}

// BenchmarkMemoryPerFlow measures the heap a remembered flow costs, with a
// million flows in the index, all expired (the state most remembered flows
// are in) or all live.
func BenchmarkMemoryPerFlow(b *testing.B) {
	const flows = 1 << 20
	for _, bc := range []struct {
		name string
		live bool
	}{{"expired", false}, {"live", true}} {
		b.Run(bc.name, func(b *testing.B) {
			var perFlow float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)

				c := New(Config{MaxFlows: flows}, t0)
				fill(c, flows, bc.live)

				runtime.GC()
				runtime.ReadMemStats(&after)
				if s := c.Stats(); s.Live+s.Expired != flows {
					b.Fatalf("remembered %d flows, want %d", s.Live+s.Expired, flows)
				}
				perFlow = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / flows
				runtime.KeepAlive(c)
			}
			b.ReportMetric(perFlow, "bytes/flow")
		})
	}
}

// BenchmarkMatch measures drops judged per second against a million
// remembered flows: late ones (decided at once), tracked and unsolicited
// ones (decided when their grace ends, by Advance).
func BenchmarkMatch(b *testing.B) {
	const flows = 1 << 20
	for _, bc := range []struct {
		name string
		live bool
		// offset picks drop tuples: 0 hits remembered flows, flows misses.
		offset int
		want   Class
	}{
		{"late", false, 0, Late},
		{"tracked", true, 0, Tracked},
		{"unsolicited", false, flows, Unsolicited},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var got [numClasses]int
			c := New(Config{
				MaxFlows: flows,
				Emit:     func(v Verdict) { got[v.Class]++ },
			}, t0)
			fill(c, flows, bc.live)

			// Drops cycle through the flows in a scattered order so the
			// lookups miss the CPU caches as real traffic does.
			const stride = 7919 // prime, so it visits every flow
			drops := make([]events.Drop, flows)
			for i := range drops {
				tu := benchTuple(bc.offset + i*stride%flows)
				drops[i] = events.Drop{Source: events.SourceNFLOG,
					Proto: 17, Src: tu.Src, Dst: tu.Dst}
			}

			now := base.Add(60 * time.Second)
			i := 0
			for b.Loop() {
				now = now.Add(time.Microsecond)
				d := &drops[i&(flows-1)]
				d.Time, d.Received = now, now
				c.AddDrop(*d, now)
				if i%1024 == 0 {
					c.Advance(now)
				}
				i++
			}
			c.Flush(now)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "drops/s")
			if got[bc.want] != b.N {
				b.Fatalf("verdicts %v, want %d %v", got, b.N, bc.want)
			}
		})
	}
}

// BenchmarkObserve measures conntrack events handled per second: a NEW, a
// reply and a DESTROY per flow, with a full index turning over.
func BenchmarkObserve(b *testing.B) {
	const flows = 1 << 20
	c := New(Config{MaxFlows: flows}, t0)
	fill(c, flows, false)

	now := base.Add(60 * time.Second)
	i := 0
	for b.Loop() {
		now = now.Add(time.Microsecond)
		tu := benchTuple(flows + i%(1<<23))
		ev := events.FlowEvent{Type: events.FlowStarted, ID: uint32(i),
			Reply: tu, Received: now, Timeout: 30 * time.Second}
		c.ObserveFlow(ev)
		ev.Type, ev.Replied = events.FlowReplied, true
		c.ObserveFlow(ev)
		ev.Type, ev.Timeout = events.FlowExpired, 0
		ev.Start, ev.Stop = now, now
		c.ObserveFlow(ev)
		if i%1024 == 0 {
			c.Advance(now)
		}
		i++
	}
	b.ReportMetric(3*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
