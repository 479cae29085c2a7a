package metrics

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

// t0 is the fixed wall clock of the fixtures.
var t0 = time.Date(2025, 3, 12, 14, 10, 18, 0, time.UTC)

// fakeProc writes a /proc tree with the two UDP timeout sysctls and
// returns its root.
func fakeProc(t *testing.T, udp, stream string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "net", "netfilter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"nf_conntrack_udp_timeout":        udp,
		"nf_conntrack_udp_timeout_stream": stream,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fixedOptions configures every source with fixed statistics.
func fixedOptions(procRoot string) Options {
	return Options{
		Conntrack: func() ConntrackStats {
			return ConntrackStats{
				Up:                 true,
				LastMessage:        t0.Add(-2 * time.Second),
				Messages:           1200,
				DecodeErrors:       1,
				Filtered:           3,
				EventsLost:         17,
				EventsLostKnown:    true,
				ReceiveBufferBytes: 128 << 20,
			}
		},
		KernelLog: func() KernelLogStats {
			return KernelLogStats{
				Up:          true,
				LastRecord:  t0.Add(-5 * time.Second),
				Firewall:    40,
				NotFirewall: 900,
				Malformed:   2,
				RecordsLost: 4,
				Rotations:   1,
			}
		},
		NFLOG: func() []NFLOGGroupStats {
			return []NFLOGGroupStats{{
				Group:        5,
				Up:           true,
				LastRecord:   t0.Add(-time.Second),
				Messages:     35,
				DecodeErrors: map[string]uint64{"truncated": 1, "attributes": 0},
				Overflows:    0,
				MessagesLost: 0,
			}}
		},
		IgnoredDrops: func() map[string]uint64 {
			return map[string]uint64{"nflog": 3, "kernel_log": 1}
		},
		Correlator: func() CorrelatorStats {
			return CorrelatorStats{
				LiveFlows:      12,
				ExpiredFlows:   340,
				Capacity:       1 << 20,
				Evictions:      0,
				PendingDrops:   1,
				WarmUpComplete: true,
			}
		},
		ProcRoot: procRoot,
	}
}

// drop returns a drop record from src to dst.
func drop(source events.DropSource, src, dst string) events.Drop {
	return events.Drop{
		Source:   source,
		Time:     t0,
		Received: t0,
		Proto:    17,
		Src:      netip.MustParseAddrPort(src),
		Dst:      netip.MustParseAddrPort(dst),
	}
}

// feedFixedEvents sends the fixed events the golden scrape is made from.
func feedFixedEvents(m *Metrics) {
	const server, client = "198.18.0.53:53", "198.18.1.2:40000"
	m.ObserveVerdict(correlate.Verdict{
		Drop: drop(events.SourceNFLOG, server, client), Class: correlate.Late,
		Answered: true, Lateness: 1500 * time.Millisecond, Age: 31500 * time.Millisecond,
	})
	m.ObserveVerdict(correlate.Verdict{
		Drop: drop(events.SourceKernelLog, server, client), Class: correlate.Late,
		Answered: false, Lateness: 12 * time.Second, Age: 42 * time.Second,
	})
	for range 2 {
		m.ObserveVerdict(correlate.Verdict{
			Drop: drop(events.SourceNFLOG, "203.0.113.9:53", client), Class: correlate.Unsolicited,
		})
	}
	m.ObserveVerdict(correlate.Verdict{
		Drop: drop(events.SourceKernelLog, server, client), Class: correlate.Tracked,
	})
	m.ObserveVerdict(correlate.Verdict{
		Drop: drop(events.SourceNFLOG, server, client), Class: correlate.Unknown,
		Reason: correlate.ReasonWarmUp,
	})
	m.ObserveVerdict(correlate.Verdict{
		Drop: drop(events.SourceKernelLog, server, client), Class: correlate.Unknown,
		Reason: correlate.ReasonEventLoss,
	})

	for _, ev := range []events.FlowEvent{
		{Type: events.FlowSeen},
		{Type: events.FlowStarted}, {Type: events.FlowStarted}, {Type: events.FlowStarted},
		{Type: events.FlowReplied, Replied: true}, {Type: events.FlowReplied, Replied: true},
		{Type: events.FlowExpired, Replied: true}, {Type: events.FlowExpired, Replied: true},
		{Type: events.FlowExpired},
	} {
		m.ObserveFlow(ev)
	}
	for _, ms := range []time.Duration{3, 40, 1200} {
		m.ObserveAnswerTime(ms * time.Millisecond)
	}

	// One window whose first resync failed and whose retry succeeded,
	// then a second window resynced at once.
	m.ObserveLoss(events.LossEvent{Start: t0, End: t0.Add(time.Second)})
	m.ObserveLoss(events.LossEvent{Start: t0, End: t0.Add(2 * time.Second), Resynced: true})
	m.ObserveLoss(events.LossEvent{
		Start: t0.Add(time.Minute), End: t0.Add(time.Minute + 500*time.Millisecond), Resynced: true,
	})
}

// newFixed returns a registry holding metrics with fixed sources.
func newFixed(t *testing.T) (*prometheus.Registry, *Metrics) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, fixedOptions(fakeProc(t, "30\n", "120\n")))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return reg, m
}

// gather gathers reg and indexes the families by name.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// seriesCount counts the series (label sets) reg exports.
func seriesCount(t *testing.T, reg prometheus.Gatherer) int {
	t.Helper()
	n := 0
	for _, mf := range gather(t, reg) {
		n += len(mf.GetMetric())
	}
	return n
}

// labelsOf returns a metric's labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	ls := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		ls[lp.GetName()] = lp.GetValue()
	}
	return ls
}

// find returns the series of family name whose labels include want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string,
	want map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := fams[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		ls := labelsOf(m)
		for k, v := range want {
			if ls[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s has no series with labels %v", name, want)
	return nil
}

// value returns the value of a counter or gauge series.
func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}
