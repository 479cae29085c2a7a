package main

import (
	"context"
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

// outputFormat resolves --output=auto.
func (w *watchFlags) outputFormat(e env) string {
	if w.output != "auto" {
		return w.output
	}
	if e.isTerminal {
		return "tui"
	}
	return "json"
}

func (e env) watch(ctx context.Context, logger *slog.Logger, w *watchFlags) error {
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
	return e.serve(ctx, logger, w, p, nil)
}

// serve runs the pipeline with its outputs until ctx ends: metrics over
// HTTP unless disabled, and verdicts on stdout. extra runs beside them
// (the demo's traffic) and ends everything when it returns.
func (e env) serve(ctx context.Context, logger *slog.Logger, w *watchFlags, p *watch.Pipeline,
	extra func(context.Context) error) error {
	reg := prometheus.NewRegistry()
	opts := metrics.Options{Process: true, Logger: logger.With("component", "metrics")}
	p.MetricSources(&opts)
	m, err := metrics.New(reg, opts)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	p.AddObserver(m)

	format := w.outputFormat(e)
	if format == "tui" {
		// TODO(tui): the live view lands with its own issue; until then a
		// terminal gets plain lines.
		format = "plain"
	}
	out, err := output.NewWriter(e.stdout, output.Format(format))
	if err != nil {
		return usageError{err}
	}
	p.AddObserver(watch.ObserverFuncs{Verdict: out.Write})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(ctx) })
	if !w.noWeb {
		g.Go(func() error { return web.Serve(ctx, w.web.Config(), reg, logger.With("component", "web")) })
	}
	if extra != nil {
		g.Go(func() error {
			defer cancel()
			return extra(ctx)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return out.Err()
}
