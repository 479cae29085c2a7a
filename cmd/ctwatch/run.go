package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"golang.org/x/sync/errgroup"

	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/netns"
)

// usageError marks errors caused by the command line; they exit with 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// app holds the parsed command line. It is built fresh for every run so
// tests can call run concurrently.
type app struct {
	stdout, stderr io.Writer
	logConfig      promslog.Config

	watch watchFlags
}

type watchFlags struct {
	iface      string
	udpPort    uint16
	netnsPath  string
	readBuffer int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := &app{stdout: stdout, stderr: stderr}
	k := kingpin.New("ctwatch", "Tell late DNS answers from unsolicited packets dropped by a stateful firewall.")
	k.Writer(stderr)
	k.UsageWriter(stdout)
	k.Terminate(nil)
	k.HelpFlag.Short('h')
	promslogflag.AddFlags(k, &a.logConfig)

	watch := k.Command("watch", "Watch conntrack and drop records in the current network namespace (the default command).").Default()
	watch.Flag("iface", "Only count drops that arrived on this inbound interface.").StringVar(&a.watch.iface)
	watch.Flag("udp-port", "UDP server port whose flows are watched.").Default("53").Uint16Var(&a.watch.udpPort)
	watch.Flag("netns", "Watch the network namespace at this path (e.g. /run/netns/NAME) instead of the current one.").StringVar(&a.watch.netnsPath)
	watch.Flag("conntrack.read-buffer", "Receive buffer for conntrack events in bytes, set with SO_RCVBUFFORCE.").
		Default(fmt.Sprint(events.DefaultReadBuffer)).IntVar(&a.watch.readBuffer)

	versionCmd := k.Command("version", "Print the version and exit.")

	cmd, err := k.Parse(args)
	if err != nil {
		return usageError{err}
	}
	if cmd == "" { // --help or --version: kingpin printed and asked to exit
		return nil
	}
	a.logConfig.Writer = stderr
	logger := promslog.New(&a.logConfig)

	switch cmd {
	case versionCmd.FullCommand():
		fmt.Fprintln(stdout, version.Print("ctwatch"))
		return nil
	case watch.FullCommand():
		return a.runWatch(ctx, logger)
	}
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}

func (a *app) runWatch(ctx context.Context, logger *slog.Logger) error {
	ns, err := netns.Open(a.watch.netnsPath)
	if err != nil {
		return err
	}
	defer ns.Close()

	var settings events.KernelSettings
	if err := ns.Do(func() (err error) {
		settings, err = events.ReadKernelSettings("/proc")
		return err
	}); err != nil {
		logger.Warn("cannot read conntrack settings", "err", err)
	}
	logger.Info("conntrack settings",
		"timestamp", settings.Timestamp, "acct", settings.Accounting,
		"events", settings.Events, "udp_timeout", settings.UDPTimeout,
		"udp_timeout_stream", settings.UDPStreamTimeout,
		"precision", settings.Precision())

	var mu sync.Mutex
	enc := json.NewEncoder(a.stdout)
	f, err := events.NewFollower(events.FollowerConfig{
		Port:       a.watch.udpPort,
		NetNS:      ns.FD(),
		ReadBuffer: a.watch.readBuffer,
		Logger:     logger.With("component", "conntrack"),
		Flow: func(ev events.FlowEvent) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(ev)
		},
		Loss: func(ev events.LossEvent) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(ev)
		},
	})
	if err != nil {
		return err
	}
	defer f.Close()

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return f.Run(ctx) })
	return g.Wait()
}
