package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/demo"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/lab"
	"github.com/ctwatch/ctwatch/internal/netns"
	"github.com/ctwatch/ctwatch/internal/watch"
	"github.com/ctwatch/ctwatch/internal/web"
)

type demoFlags struct {
	watch      watchFlags
	duration   time.Duration
	rate       float64
	firewall   string
	snat       bool
	source     string
	udpTimeout time.Duration
	gcEvery    time.Duration
	seed       uint64
	ipv4Only   bool
	linger     time.Duration
}

func (d *demoFlags) register(c *kingpin.CmdClause) {
	c.Flag("duration", "How long the demo sends new traffic; late answers follow for a few more seconds.").
		Default("30s").DurationVar(&d.duration)
	c.Flag("rate", "Queries and spoofed packets per second.").Default("20").Float64Var(&d.rate)
	c.Flag("firewall", "Resolver ruleset: nftables or iptables.").
		Default("nftables").EnumVar(&d.firewall, "nftables", "iptables")
	c.Flag("snat", "Source-NAT the resolver's queries on the way out.").BoolVar(&d.snat)
	c.Flag("drop-source", "How drops reach ctwatch: nflog or kernel-log (/dev/kmsg).").
		Default("nflog").EnumVar(&d.source, "nflog", "kernel-log")
	c.Flag("udp-timeout", "UDP conntrack timeout in the lab's resolver namespace (whole seconds).").
		Default("3s").DurationVar(&d.udpTimeout)
	c.Flag("gc-every", "Force conntrack garbage collection this often (0: leave it to the kernel).").
		Default("2s").DurationVar(&d.gcEvery)
	c.Flag("seed", "Seed of the traffic mix.").Default("1").Uint64Var(&d.seed)
	c.Flag("ipv4-only", "Send IPv4 traffic only (default: IPv4 and IPv6).").BoolVar(&d.ipv4Only)
	c.Flag("linger", "Keep serving /metrics this long after the traffic ends, for a last scrape.").
		Default("0s").DurationVar(&d.linger)
	c.Flag("output", "Verdict output: tui, plain or json; auto picks tui on a terminal, json otherwise.").
		Default("auto").EnumVar(&d.watch.output, "auto", "tui", "plain", "json")
	c.Flag("web.disable", "Do not serve /metrics.").BoolVar(&d.watch.noWeb)
	d.watch.web = web.AddFlags(c)
}

// demo builds a lab, watches its resolver namespace with the same pipeline
// as the watch command, runs the traffic mix, and prints the lab's ground
// truth beside ctwatch's verdicts. It fails when they disagree.
func (e env) demo(ctx context.Context, logger *slog.Logger, d *demoFlags) error {
	o, logger, err := d.watch.newOutputs(e, logger)
	if err != nil {
		return err
	}
	o.doneNote = "Demo finished: the counts are final. " +
		"Press q for the ground-truth report."
	if err := lab.Cleanup(); err != nil {
		logger.Warn("removing stale lab namespaces failed", "err", err)
	}
	const nflogGroup = 1
	lc := lab.Config{
		Firewall:   lab.Firewall(d.firewall),
		SNAT:       d.snat,
		UDPTimeout: d.udpTimeout,
		Timestamps: true,
		Accounting: true,
	}
	w := d.watch
	w.udpPort = 53
	w.readBuffer = events.DefaultReadBuffer
	switch d.source {
	case "nflog":
		lc.NFLOGGroup = nflogGroup
		w.nflogGroups = []uint16{nflogGroup}
	case "kernel-log":
		// LOG lines do not say which namespace wrote them: a prefix of
		// this process's own keeps other labs' lines out.
		lc.LogPrefix = fmt.Sprintf("ctwdemo%d: ", os.Getpid())
		w.kernelLog = watch.KernelLogKmsg
		w.logPrefix = lc.LogPrefix
	}
	l, err := lab.Start(ctx, lc)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer l.Close()
	logger.Info("lab ready", "name", l.Name(), "resolver_netns", l.Resolver().Path,
		"udp_timeout", l.Config().UDPTimeout, "drop_source", d.source)

	ns, err := netns.Open(l.Resolver().Path)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer ns.Close()
	cfg := w.pipelineConfig(logger, e)
	cfg.NetNS = ns
	cfg.NoWarmUp = true
	p, err := watch.New(cfg)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer p.Close()
	collected := &watch.VerdictLog{}
	p.AddObserver(collected)

	families := []int{4, 6}
	if d.ipv4Only {
		families = []int{4}
	}
	var sent [7]int
	traffic := func(ctx context.Context) error {
		select {
		case <-p.Ready():
		case <-ctx.Done():
			return nil
		}
		var err error
		sent, err = demo.Traffic(ctx, l, demo.Scenario{
			Duration: d.duration, Rate: d.rate, Families: families,
			GCEvery: d.gcEvery, Seed: d.seed,
		})
		if err != nil {
			return err
		}
		// Let the last drops through their grace window, then give
		// scrapers their last look.
		select {
		case <-time.After(2*correlate.DefaultGrace + 500*time.Millisecond + d.linger):
		case <-ctx.Done():
		}
		return nil
	}
	err = e.serve(ctx, logger, &w, p, o, traffic)
	if errors.Is(err, errQuitEarly) {
		fmt.Fprintln(e.stderr, "ctwatch demo: quit before the traffic ended: no ground-truth report")
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if ctx.Err() != nil {
		return nil // interrupted: no report on a partial run
	}

	report := demo.Compare(l.Truth(), collected.Verdicts())
	var out io.Writer = e.stdout
	if o.format == "json" {
		out = e.stderr // keep stdout a clean stream of JSON lines
	}
	fmt.Fprintf(out, "\nctwatch demo: %d items sent over %v (", total(sent), d.duration)
	for k, n := range sent {
		if k > 0 {
			fmt.Fprint(out, ", ")
		}
		fmt.Fprintf(out, "%s %d", demo.Kind(k), n)
	}
	fmt.Fprintln(out, ")")
	fmt.Fprintln(out)
	report.Print(out)
	if !report.OK() {
		return fmt.Errorf("demo: %d mismatched, %d missed, %d unexplained verdicts",
			len(report.Mismatches), len(report.Missed), len(report.Unexplained))
	}
	return nil
}

func total(a [7]int) int {
	n := 0
	for _, v := range a {
		n += v
	}
	return n
}
