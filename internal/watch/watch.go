// Package watch wires ctwatch's pipeline: the conntrack follower and the
// drop sources feed one correlator, whose verdicts go to observers
// (metrics, the live view, line output). It owns no kernel plumbing and no
// output format of its own; it only decides what runs, in which order, and
// how it stops.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/events/kernlog"
	"github.com/ctwatch/ctwatch/internal/events/nflog"
	"github.com/ctwatch/ctwatch/internal/netns"
)

// Observer receives everything the pipeline learns. Calls come from the
// pipeline's goroutines, serialised by its lock, and must be quick.
type Observer interface {
	ObserveFlow(events.FlowEvent)
	ObserveLoss(events.LossEvent)
	ObserveVerdict(correlate.Verdict)
	ObserveAnswerTime(time.Duration)
}

// Kernel log paths with a special meaning in Config.KernelLog.
const (
	KernelLogStdin = "-"
	KernelLogKmsg  = "/dev/kmsg"
)

// DefaultTick is how often pending drops are re-examined: well inside the
// correlator's grace window, so verdicts come at most this much after it.
const DefaultTick = 25 * time.Millisecond

// Config configures a Pipeline.
type Config struct {
	// Port is the watched UDP server port.
	Port uint16
	// Iface, when set, keeps only drops that came in on this interface.
	Iface string
	// NetNS is the watched network namespace; nil means the current one.
	NetNS *netns.Handle
	// ReadBuffer is the conntrack event socket's receive buffer.
	ReadBuffer int
	// NFLOGGroups are the NFLOG groups to read drops from.
	NFLOGGroups []uint16
	// KernelLog is a file to follow, KernelLogStdin or KernelLogKmsg; empty
	// for none. Stdin is read when it is KernelLogStdin.
	KernelLog string
	Stdin     io.Reader
	// LogPrefix keeps only kernel log records whose prefix contains it.
	LogPrefix string
	// Correlate tunes the correlator; its Emit and OnAnswer are set by
	// the pipeline.
	Correlate correlate.Config
	// Logger receives state changes and failures.
	Logger *slog.Logger
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// Tick: see DefaultTick.
	Tick time.Duration
	// NoWarmUp declares the namespace new (the demo's lab): no flow can
	// have expired in it before the pipeline started, so unmatched drops
	// are unsolicited from the first moment instead of unknown.
	NoWarmUp bool
}

// Pipeline runs the readers and the correlator.
type Pipeline struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	started  time.Time
	settings events.KernelSettings

	follower *events.Follower
	nflogs   []*nflog.Reader
	klog     *kernlog.Stats

	// mu serialises the correlator and the observers: the follower, each
	// drop source and the ticker call in from their own goroutines.
	mu        sync.Mutex
	corr      *correlate.Correlator
	observers []Observer
	lastFlow  time.Time
	lastDrop  [3]time.Time // by events.DropSource

	ignored   [3]atomic.Uint64 // drops outside the filter, by source
	conntrack atomic.Bool      // follower running
	klogUp    atomic.Bool
	nflogUp   []atomic.Bool
}

// New opens the sockets: the conntrack event socket first, so no event
// is missed between it and the start-up dump, then the NFLOG groups. The
// kernel log is opened by Run. Close releases what New opened.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Port == 0 {
		cfg.Port = 53
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	// The parser trims prefixes; trim the filter the same way so that
	// "dns-drop: " as written in the rule matches.
	cfg.LogPrefix = strings.TrimSpace(cfg.LogPrefix)
	p := &Pipeline{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}

	if err := cfg.NetNS.Do(func() (err error) {
		p.settings, err = events.ReadKernelSettings("/proc")
		return err
	}); err != nil {
		p.log.Warn("cannot read conntrack settings", "err", err)
	}
	p.log.Info("conntrack settings",
		"timestamp", p.settings.Timestamp, "acct", p.settings.Accounting,
		"events", p.settings.Events, "udp_timeout", p.settings.UDP.Timeout,
		"udp_timeout_stream", p.settings.UDP.StreamTimeout,
		"precision", p.settings.Precision())

	cc := cfg.Correlate
	if cc.UDPTimeout == 0 {
		cc.UDPTimeout = p.settings.UDP.Timeout
	}
	if cc.StreamTimeout == 0 {
		cc.StreamTimeout = p.settings.UDP.StreamTimeout
	}
	cc.Emit = p.emit
	cc.OnAnswer = func(a correlate.Answer) {
		for _, o := range p.observers {
			o.ObserveAnswerTime(a.Delay)
		}
	}
	p.started = p.now()
	if cfg.NoWarmUp {
		p.started = p.started.Add(-p.Horizon())
	}
	p.corr = correlate.New(cc, p.started)

	f, err := events.NewFollower(events.FollowerConfig{
		Port:       cfg.Port,
		NetNS:      cfg.NetNS.FD(),
		ReadBuffer: cfg.ReadBuffer,
		Flow:       p.flow,
		Loss:       p.loss,
		Logger:     p.log.With("component", "conntrack"),
		Now:        p.now,
	})
	if err != nil {
		return nil, err
	}
	p.follower = f

	p.nflogUp = make([]atomic.Bool, len(cfg.NFLOGGroups))
	for _, g := range cfg.NFLOGGroups {
		r, err := nflog.New(nflog.Config{Group: g, NetNS: cfg.NetNS.FD(), Port: cfg.Port})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("nflog group %d: %w", g, err)
		}
		p.nflogs = append(p.nflogs, r)
	}
	if cfg.KernelLog != "" {
		p.klog = new(kernlog.Stats)
	}
	return p, nil
}

// AddObserver adds an observer; call it before Run.
func (p *Pipeline) AddObserver(o Observer) { p.observers = append(p.observers, o) }

// Ready is closed once the conntrack table has been dumped at start.
func (p *Pipeline) Ready() <-chan struct{} { return p.follower.Ready() }

// Started returns when the pipeline (and its warm-up) started.
func (p *Pipeline) Started() time.Time { return p.started }

// Close releases the sockets. Call it after Run has returned.
func (p *Pipeline) Close() error {
	var errs []error
	if p.follower != nil {
		errs = append(errs, p.follower.Close())
	}
	for _, r := range p.nflogs {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// Run runs every reader and the ticker until ctx ends or one of them
// fails; then it stops the others, decides the pending drops and returns
// the first error (nil when ctx ended). A kernel log read from a file or
// stdin that ends (EOF without follow) does not stop the rest.
func (p *Pipeline) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)

	g.Go(func() error {
		p.conntrack.Store(true)
		defer p.conntrack.Store(false)
		if err := p.follower.Run(ctx); err != nil {
			return fmt.Errorf("conntrack follower: %w", err)
		}
		return nil
	})
	for i, r := range p.nflogs {
		group := p.cfg.NFLOGGroups[i]
		g.Go(func() error {
			p.nflogUp[i].Store(true)
			defer p.nflogUp[i].Store(false)
			if err := r.Run(ctx, p.drop); err != nil {
				return fmt.Errorf("nflog group %d: %w", group, err)
			}
			return nil
		})
	}
	if p.cfg.KernelLog != "" {
		g.Go(func() error { return p.runKernelLog(ctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(p.cfg.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				p.mu.Lock()
				p.corr.Advance(p.now())
				p.mu.Unlock()
			}
		}
	})

	err := g.Wait()
	p.mu.Lock()
	p.corr.Flush(p.now())
	p.mu.Unlock()
	return err
}

func (p *Pipeline) runKernelLog(ctx context.Context) error {
	opts := kernlog.Options{Stats: p.klog}
	h := func(e *kernlog.Entry) error {
		if e.Result != kernlog.Firewall {
			return nil // counted in Stats by the follower
		}
		if p.cfg.LogPrefix != "" && !strings.Contains(e.Record.Prefix, p.cfg.LogPrefix) {
			p.ignored[events.SourceKernelLog].Add(1)
			return nil
		}
		d, ok := e.Record.Drop()
		if !ok {
			p.ignored[events.SourceKernelLog].Add(1)
			return nil
		}
		d.Received = p.now()
		p.drop(d)
		return nil
	}

	p.klogUp.Store(true)
	defer p.klogUp.Store(false)
	var err error
	switch p.cfg.KernelLog {
	case KernelLogStdin:
		err = kernlog.ReadStream(ctx, p.cfg.Stdin, opts, h)
		if err == nil {
			p.log.Info("kernel log input ended", "component", "kernel_log")
		}
	case KernelLogKmsg:
		err = kernlog.FollowKmsg(ctx, opts, h)
	default:
		err = kernlog.FollowFile(ctx, p.cfg.KernelLog, opts, h)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("kernel log %s: %w", p.cfg.KernelLog, err)
	}
	return nil
}

func (p *Pipeline) flow(ev events.FlowEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastFlow = ev.Received
	p.corr.ObserveFlow(ev)
	for _, o := range p.observers {
		o.ObserveFlow(ev)
	}
}

func (p *Pipeline) loss(ev events.LossEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.corr.ObserveLoss(ev)
	for _, o := range p.observers {
		o.ObserveLoss(ev)
	}
}

// drop filters a drop record and hands it to the correlator. Records that
// are not UDP from the watched port, or came in on another interface than
// --iface, are counted as ignored.
func (p *Pipeline) drop(d events.Drop) {
	src := d.Source
	if int(src) >= len(p.ignored) {
		src = 0
	}
	if d.Proto != unix.IPPROTO_UDP || d.Src.Port() != p.cfg.Port ||
		(p.cfg.Iface != "" && d.InIface != p.cfg.Iface) {
		p.ignored[src].Add(1)
		return
	}
	if d.Received.IsZero() {
		d.Received = p.now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastDrop[src] = d.Received
	p.corr.AddDrop(d, d.Received)
}

// emit runs under p.mu, inside the correlator.
func (p *Pipeline) emit(v correlate.Verdict) {
	for _, o := range p.observers {
		o.ObserveVerdict(v)
	}
}
