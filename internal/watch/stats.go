package watch

import (
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/events/kernlog"
	"github.com/ctwatch/ctwatch/internal/metrics"
)

// MetricSources fills the scrape-time callbacks of opts from the
// pipeline's readers and correlator.
func (p *Pipeline) MetricSources(opts *metrics.Options) {
	opts.Conntrack = p.conntrackStats
	opts.Correlator = p.correlatorStats
	opts.IgnoredDrops = func() map[string]uint64 {
		return map[string]uint64{
			events.SourceNFLOG.String():     p.Ignored(events.SourceNFLOG),
			events.SourceKernelLog.String(): p.Ignored(events.SourceKernelLog),
		}
	}
	if len(p.nflogs) > 0 {
		opts.NFLOG = p.nflogStats
	}
	if p.klog != nil {
		opts.KernelLog = p.kernelLogStats
	}
	opts.UDPTimeouts = func() (t events.UDPTimeouts, err error) {
		err = p.cfg.NetNS.Do(func() error {
			t, err = events.ReadUDPTimeouts("/proc")
			return err
		})
		return t, err
	}
}

func (p *Pipeline) conntrackStats() metrics.ConntrackStats {
	st := p.follower.Stats()
	p.mu.Lock()
	last := p.lastFlow
	p.mu.Unlock()
	return metrics.ConntrackStats{
		Up:                 p.conntrack.Load(),
		LastMessage:        last,
		Messages:           st.Messages,
		DecodeErrors:       st.DecodeErrors,
		Filtered:           st.Ignored,
		EventsLost:         st.KernelDrops,
		EventsLostKnown:    st.KernelDropsKnown,
		ReceiveBufferBytes: st.ReadBuffer,
	}
}

func (p *Pipeline) kernelLogStats() metrics.KernelLogStats {
	s := p.klog.Snapshot()
	p.mu.Lock()
	last := p.lastDrop[events.SourceKernelLog]
	p.mu.Unlock()
	return metrics.KernelLogStats{
		Up:          p.klogUp.Load(),
		LastRecord:  last,
		Firewall:    s.Firewall,
		NotFirewall: s.NotFirewall,
		Malformed:   s.Malformed,
		RecordsLost: s.KmsgLost,
		Rotations:   s.Rotations + s.Truncations,
	}
}

func (p *Pipeline) nflogStats() []metrics.NFLOGGroupStats {
	p.mu.Lock()
	last := p.lastDrop[events.SourceNFLOG]
	p.mu.Unlock()
	out := make([]metrics.NFLOGGroupStats, len(p.nflogs))
	for i, r := range p.nflogs {
		s := r.Stats()
		errs := make(map[string]uint64, len(s.DecodeErrors))
		for reason, n := range s.DecodeErrors {
			errs[reason.String()] = n
		}
		out[i] = metrics.NFLOGGroupStats{
			Group:        p.cfg.NFLOGGroups[i],
			Up:           p.nflogUp[i].Load(),
			LastRecord:   last,
			Messages:     s.Messages,
			DecodeErrors: errs,
			Overflows:    s.Overruns,
			MessagesLost: s.Lost,
		}
	}
	return out
}

func (p *Pipeline) correlatorStats() metrics.CorrelatorStats {
	p.mu.Lock()
	s := p.corr.Stats()
	p.mu.Unlock()
	return metrics.CorrelatorStats{
		LiveFlows:      s.Live,
		ExpiredFlows:   s.Expired,
		Capacity:       p.capacity(),
		Evictions:      s.Evicted,
		PendingDrops:   s.PendingDrops,
		WarmUpComplete: p.WarmUpComplete(),
	}
}

func (p *Pipeline) capacity() int {
	if p.cfg.Correlate.MaxFlows > 0 {
		return p.cfg.Correlate.MaxFlows
	}
	return correlate.DefaultMaxFlows
}

// NetNSPath returns the path of the watched network namespace, or "" when
// the pipeline watches the current one.
func (p *Pipeline) NetNSPath() string { return p.cfg.NetNS.Path() }

// Horizon returns the correlator's horizon, which is also the warm-up.
func (p *Pipeline) Horizon() time.Duration {
	if p.cfg.Correlate.Horizon > 0 {
		return p.cfg.Correlate.Horizon
	}
	return correlate.DefaultHorizon
}

// WarmUpComplete reports whether ctwatch has watched for a whole horizon,
// after which an unmatched drop can be called unsolicited.
func (p *Pipeline) WarmUpComplete() bool {
	return p.now().Sub(p.started) >= p.Horizon()
}

// Ignored returns how many drop records each source delivered that were
// outside the filter (not UDP from the watched port, another interface,
// another prefix).
func (p *Pipeline) Ignored(src events.DropSource) uint64 {
	if int(src) >= len(p.ignored) {
		return 0
	}
	return p.ignored[src].Load()
}

// KernelLogStats returns the kernel log follower's counters, or nil when
// no kernel log is read.
func (p *Pipeline) KernelLogStats() *kernlog.StatsSnapshot {
	if p.klog == nil {
		return nil
	}
	s := p.klog.Snapshot()
	return &s
}
