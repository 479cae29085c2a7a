package nflog

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ctwatch/ctwatch/internal/events"
)

// BenchmarkDropLatency sends one DNS answer from port 53 at a time into the
// lab's logging rule and waits for the Reader to emit it. It reports the
// percentiles of send-to-emit and kernel-timestamp-to-emit latency; ns/op
// is the whole round (send, kernel, read, decode, emit).
func BenchmarkDropLatency(b *testing.B) {
	lab := newLab(b)
	r := lab.newReader(b, Config{})

	type seen struct {
		id         uint16
		kernel, at time.Time
	}
	ch := make(chan seen, 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- r.Run(ctx, func(d events.Drop) {
			at := time.Now()
			if d.DNS != nil {
				ch <- seen{d.DNS.ID, d.Time, at}
			}
		})
	}()

	conn := lab.sender(b, netip.AddrPortFrom(lab.up4, 53))
	dst := netip.AddrPortFrom(lab.in4, 40100)
	msg := dnsAnswer(0, "bench.example.", dns.TypeA, dns.RcodeSuccess)
	var sendToEmit, kernelToEmit []time.Duration

	for i := 0; b.Loop(); i++ {
		id := uint16(i)
		binary.BigEndian.PutUint16(msg, id)
		sent := time.Now()
		if _, err := conn.WriteToUDPAddrPort(msg, dst); err != nil {
			b.Fatalf("send: %v", err)
		}
		select {
		case s := <-ch:
			if s.id != id {
				b.Fatalf("drop %d, want %d", s.id, id)
			}
			sendToEmit = append(sendToEmit, s.at.Sub(sent))
			kernelToEmit = append(kernelToEmit, s.at.Round(0).Sub(s.kernel))
		case <-time.After(time.Second):
			b.Fatalf("drop %d not emitted within 1s", id)
		}
	}
	b.StopTimer()

	cancel()
	if err := <-errc; err != nil {
		b.Errorf("Run: %v", err)
	}
	if st := r.Stats(); st.Lost != 0 || st.Overruns != 0 {
		b.Errorf("lost messages: %+v", st)
	}
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), name+"-p50-ns")
		b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), name+"-p99-ns")
	}
	report("send-to-emit", sendToEmit)
	report("kernel-to-emit", kernelToEmit)
}
