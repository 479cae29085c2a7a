package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/metrics"
	"github.com/ctwatch/ctwatch/internal/netns"
	"github.com/ctwatch/ctwatch/internal/output"
	"github.com/ctwatch/ctwatch/internal/tui"
	"github.com/ctwatch/ctwatch/internal/watch"
	"github.com/ctwatch/ctwatch/internal/web"
)

// watchFlags are the flags of the watch command (and, shared, of demo).
type watchFlags struct {
	iface       string
	udpPort     uint16
	netnsPath   string
	readBuffer  int
	nflogGroups []uint16
	kernelLog   string
	logPrefix   string
	output      string
	horizon     time.Duration
	grace       time.Duration
	maxFlows    int
	noWeb       bool
	web         *web.FlagConfig
}

func (w *watchFlags) register(c *kingpin.CmdClause) {
	c.Flag("iface", "Only count drops that came in on this interface.").StringVar(&w.iface)
	c.Flag("udp-port", "UDP server port whose flows and drops are watched.").
		Default("53").Uint16Var(&w.udpPort)
	c.Flag("nflog-group", "Read drop records from this NFLOG group (repeatable).").
		Uint16ListVar(&w.nflogGroups)
	c.Flag("kernel-log", "Read LOG lines from this file (followed across rotation), - for stdin, or /dev/kmsg.").
		StringVar(&w.kernelLog)
	c.Flag("log-prefix", "Only use kernel LOG records whose prefix contains this text.").
		StringVar(&w.logPrefix)
	c.Flag("output", "Verdict output: tui (live view), plain or json lines; auto picks tui on a terminal, json otherwise.").
		Default("auto").EnumVar(&w.output, "auto", "tui", "plain", "json")
	c.Flag("netns", "Watch the network namespace at this path (e.g. /run/netns/NAME) instead of the current one.").
		StringVar(&w.netnsPath)
	c.Flag("conntrack.read-buffer", "Receive buffer for conntrack events in bytes, set with SO_RCVBUFFORCE.").
		Default(fmt.Sprint(events.DefaultReadBuffer)).IntVar(&w.readBuffer)
	c.Flag("correlate.horizon", "How long expired flows are remembered; also the warm-up after start.").
		Default(correlate.DefaultHorizon.String()).DurationVar(&w.horizon)
	c.Flag("correlate.grace", "How long a drop waits for the DESTROY event that may explain it.").
		Default(correlate.DefaultGrace.String()).DurationVar(&w.grace)
	c.Flag("correlate.max-flows", "Most flows remembered, live and expired; older ones are evicted and counted.").
		Default(fmt.Sprint(correlate.DefaultMaxFlows)).IntVar(&w.maxFlows)
	c.Flag("web.disable", "Do not serve /metrics.").BoolVar(&w.noWeb)
}

func (w *watchFlags) pipelineConfig(logger *slog.Logger, e env) watch.Config {
	return watch.Config{
		Port:        w.udpPort,
		Iface:       w.iface,
		ReadBuffer:  w.readBuffer,
		NFLOGGroups: w.nflogGroups,
		KernelLog:   w.kernelLog,
		Stdin:       e.stdin,
		LogPrefix:   w.logPrefix,
		Correlate: correlate.Config{
			Horizon:  w.horizon,
			Grace:    w.grace,
			MaxFlows: w.maxFlows,
		},
		Logger: logger,
	}
}

// resolveOutput resolves --output=auto (the live view on a terminal, JSON
// lines otherwise) and refuses the live view without a terminal.
func (w *watchFlags) resolveOutput(e env) (string, error) {
	switch {
	case w.output == "auto" && e.isTerminal:
		return "tui", nil
	case w.output == "auto":
		return "json", nil
	case w.output == "tui" && !e.isTerminal:
		return "", usageError{errors.New(
			"--output=tui needs a terminal on stdout; use --output=plain or --output=json")}
	}
	return w.output, nil
}

// outputs says how serve shows verdicts.
type outputs struct {
	// format is tui, plain or json.
	format string
	// logs holds log records back while the live view is shown; set
	// with format tui.
	logs *logHold
	// doneNote is what the live view says once the extra work given to
	// serve (the demo's traffic) has ended.
	doneNote string
}

// newOutputs resolves the output format and, for the live view, wraps
// logger so that nothing is written over the view.
func (w *watchFlags) newOutputs(e env, logger *slog.Logger) (outputs, *slog.Logger, error) {
	format, err := w.resolveOutput(e)
	if err != nil {
		return outputs{}, nil, err
	}
	o := outputs{format: format}
	if format == "tui" {
		o.logs = newLogHold(logger.Handler())
		logger = slog.New(o.logs)
	}
	return o, logger, nil
}

func (e env) watch(ctx context.Context, logger *slog.Logger, w *watchFlags) error {
	o, logger, err := w.newOutputs(e, logger)
	if err != nil {
		return err
	}
	if len(w.nflogGroups) == 0 && w.kernelLog == "" {
		logger.Warn("no drop source given (--nflog-group or --kernel-log): only flows are followed")
	}
	ns, err := netns.Open(w.netnsPath)
	if err != nil {
		return err
	}
	defer ns.Close()

	cfg := w.pipelineConfig(logger, e)
	cfg.NetNS = ns
	p, err := watch.New(cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	return e.serve(ctx, logger, w, p, o, nil)
}

// errQuitEarly says that the user left the live view before the extra
// work given to serve had finished.
var errQuitEarly = errors.New("live view closed before the end")

// serve runs the pipeline with its outputs until ctx ends: metrics over
// HTTP unless disabled, and verdicts on stdout as lines or in the live
// view. extra runs beside them (the demo's traffic). Without the view
// its end ends everything; with the view it stops the pipeline, the view
// shows the final counts and o.doneNote, and serve returns when the user
// quits; it returns errQuitEarly when that was before extra ended.
func (e env) serve(ctx context.Context, logger *slog.Logger, w *watchFlags, p *watch.Pipeline,
	o outputs, extra func(context.Context) error) error {
	reg := prometheus.NewRegistry()
	opts := metrics.Options{Process: true, Logger: logger.With("component", "metrics")}
	p.MetricSources(&opts)
	m, err := metrics.New(reg, opts)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	p.AddObserver(m)

	var (
		view *tui.Collector
		out  *output.Writer
	)
	if o.format == "tui" {
		view = tui.NewCollector(tui.CollectorConfig{})
		p.AddObserver(view)
	} else {
		out, err = output.NewWriter(e.stdout, output.Format(o.format))
		if err != nil {
			return usageError{err}
		}
		p.AddObserver(watch.ObserverFuncs{Verdict: out.Write})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// The pipeline and extra share a context of their own, so that the
	// view can outlive them.
	pctx, stopPipeline := context.WithCancel(gctx)
	defer stopPipeline()
	pipelineDone := make(chan struct{})
	g.Go(func() error {
		defer close(pipelineDone)
		return p.Run(pctx)
	})
	if !w.noWeb {
		g.Go(func() error { return web.Serve(gctx, w.web.Config(), reg, logger.With("component", "web")) })
	}
	if extra != nil {
		g.Go(func() error {
			if view != nil {
				defer stopPipeline()
			} else {
				defer cancel()
			}
			return extra(pctx)
		})
	}
	quitEarly := false
	if view != nil {
		var done <-chan struct{}
		if extra != nil {
			done = pipelineDone
		}
		g.Go(func() error {
			defer cancel() // leaving the view ends everything
			err := e.runView(gctx, w, p, opts, o, view, done)
			if done != nil {
				select {
				case <-done:
				default:
					quitEarly = true
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if quitEarly && ctx.Err() == nil {
		return errQuitEarly
	}
	if out != nil {
		return out.Err()
	}
	return nil
}

// runView shows the live view of the pipeline until the user quits or
// ctx ends. Logs are held back meanwhile and written once it has ended.
func (e env) runView(ctx context.Context, w *watchFlags, p *watch.Pipeline, opts metrics.Options,
	o outputs, view *tui.Collector, done <-chan struct{}) error {
	cfg := tui.Config{
		Namespace: p.NetNSPath(),
		Iface:     w.iface,
		Port:      w.udpPort,
		// The pipeline's start is moved back by a horizon when there is
		// no warm-up (the demo); the uptime counts from here.
		Started:     time.Now(),
		WarmUpEnd:   p.Started().Add(p.Horizon()),
		NoColor:     noColor(),
		Status:      func() tui.Status { return viewStatus(opts, o.logs) },
		UDPTimeouts: opts.UDPTimeouts,
		Done:        done,
		DoneNote:    o.doneNote,
	}
	keys, closeKeys := keyInput(e.stdin, w.kernelLog == watch.KernelLogStdin)
	defer closeKeys()
	if o.logs != nil {
		o.logs.hold()
		defer o.logs.release()
	}
	return tui.Run(ctx, cfg, view, keys, e.stdout)
}

// viewStatus reads the sources' health and losses for the live view from
// the callbacks the metrics read at scrape time.
func viewStatus(opts metrics.Options, logs *logHold) tui.Status {
	var s tui.Status
	if opts.Conntrack != nil {
		ct := opts.Conntrack()
		s.Sources = append(s.Sources, tui.SourceHealth{Name: "conntrack", Up: ct.Up})
		s.EventsLost, s.EventsLostKnown = ct.EventsLost, ct.EventsLostKnown
	}
	if opts.NFLOG != nil {
		for _, g := range opts.NFLOG() {
			s.Sources = append(s.Sources, tui.SourceHealth{Name: fmt.Sprintf("nflog:%d", g.Group), Up: g.Up})
			s.RecordsLost += g.MessagesLost
		}
	}
	if opts.KernelLog != nil {
		k := opts.KernelLog()
		s.Sources = append(s.Sources, tui.SourceHealth{Name: "kernel-log", Up: k.Up})
		s.RecordsLost += k.RecordsLost
	}
	if logs != nil {
		s.HeldLogs = logs.heldCount()
	}
	return s
}
