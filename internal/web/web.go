// Package web serves ctwatch's metrics over HTTP the way Prometheus
// exporters do: prometheus/exporter-toolkit for the listeners, TLS and
// basic authentication (--web.config.file), a landing page, and the
// metrics of one registry on --web.telemetry-path.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/coreos/go-systemd/v22/activation"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	toolkit "github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

// DefaultListenAddress is where ctwatch serves unless told otherwise.
//
// Port 9612 was marked free in the copy of the Prometheus default port
// allocation list available to us. The usual alternative for a DNS tool,
// 9153, belongs to CoreDNS, which often runs on the very resolvers ctwatch
// watches; 9119 (bind_exporter), 9167 (unbound_exporter), 9318
// (conntrack_exporter) and 9100 (node_exporter) are other neighbours to
// avoid. The 9100-9999 range has since been fully allocated, so the
// current list must be checked before the port is claimed there.
const DefaultListenAddress = ":9612"

// DefaultTelemetryPath is the default of --web.telemetry-path.
const DefaultTelemetryPath = "/metrics"

// DefaultShutdownTimeout bounds how long Serve waits for requests in
// flight once its context ends.
const DefaultShutdownTimeout = 5 * time.Second

// readHeaderTimeout bounds how long a client may take to send request
// headers, so that idle half-open connections cannot pile up.
const readHeaderTimeout = 10 * time.Second

// FlagGroup is what flags can be added to: a *kingpin.Application or a
// *kingpin.CmdClause.
type FlagGroup interface {
	Flag(name, help string) *kingpin.FlagClause
}

// FlagConfig holds the parsed web flags. Read it with Config after the
// command line has been parsed.
type FlagConfig struct {
	toolkit       *toolkit.FlagConfig
	telemetryPath *string
}

// AddFlags adds the exporter-toolkit flags (--web.listen-address,
// repeatable, default DefaultListenAddress; --web.config.file; and on
// Linux --web.systemd-socket) and --web.telemetry-path to app.
func AddFlags(app FlagGroup) *FlagConfig {
	return &FlagConfig{
		toolkit: kingpinflag.AddFlags(app, DefaultListenAddress),
		telemetryPath: app.Flag("web.telemetry-path",
			"Path under which to expose metrics.").
			Default(DefaultTelemetryPath).String(),
	}
}

// Config returns the configuration the flags describe.
func (f *FlagConfig) Config() Config {
	c := Config{TelemetryPath: *f.telemetryPath}
	if f.toolkit.WebListenAddresses != nil {
		c.ListenAddresses = append(c.ListenAddresses, *f.toolkit.WebListenAddresses...)
	}
	if f.toolkit.WebSystemdSocket != nil {
		c.SystemdSocket = *f.toolkit.WebSystemdSocket
	}
	if f.toolkit.WebConfigFile != nil {
		c.ConfigFile = *f.toolkit.WebConfigFile
	}
	return c
}

// Config configures Serve.
type Config struct {
	// ListenAddresses are host:port pairs (or vsock://:port) to serve on,
	// one server each.
	ListenAddresses []string
	// SystemdSocket serves on the sockets systemd passed in instead.
	SystemdSocket bool
	// ConfigFile is an exporter-toolkit web configuration file (TLS,
	// basic authentication, rate limit, headers); "" serves plain HTTP.
	ConfigFile string
	// TelemetryPath is where the metrics are; "" means
	// DefaultTelemetryPath.
	TelemetryPath string
	// ShutdownTimeout bounds the graceful shutdown; 0 means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Registry is where the metrics come from and where the HTTP handler's
// own metrics (promhttp_metric_handler_*) go: normally a
// *prometheus.Registry.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// ErrConfig is returned (wrapped) when Config or the web configuration
// file is invalid.
var ErrConfig = errors.New("invalid web configuration")

// NewHandler returns the HTTP handler Serve uses: the metrics of reg on
// the telemetry path and the landing page on "/". It registers the
// handler's own metrics on reg.
func NewHandler(cfg Config, reg Registry, logger *slog.Logger) (http.Handler, error) {
	path := cfg.TelemetryPath
	if path == "" {
		path = DefaultTelemetryPath
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%w: telemetry path %q does not start with /", ErrConfig, path)
	}

	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
		// A failing collector should cost its own series, not the
		// whole scrape; promhttp_metric_handler_errors_total counts it.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
	mux := http.NewServeMux()
	mux.Handle(path, promhttp.InstrumentMetricHandler(reg, metrics))
	if path != "/" {
		landing, err := toolkit.NewLandingPage(toolkit.LandingConfig{
			Name: "ctwatch",
			Description: "Tells late DNS answers from unsolicited packets " +
				"by correlating conntrack events with firewall drops.",
			Version:   version.Info(),
			Links:     []toolkit.LandingLinks{{Address: path, Text: "Metrics"}},
			Profiling: "false",
		})
		if err != nil {
			return nil, fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// Serve serves the metrics of reg until ctx ends, then shuts the servers
// down gracefully, waiting at most cfg.ShutdownTimeout for requests in
// flight. It returns nil after a shutdown caused by ctx, an error wrapping
// ErrConfig for an invalid configuration, and any other error (a port in
// use, a broken certificate) as soon as a server fails, after stopping
// the others.
func Serve(ctx context.Context, cfg Config, reg Registry, logger *slog.Logger) error {
	if len(cfg.ListenAddresses) == 0 && !cfg.SystemdSocket {
		return fmt.Errorf("%w: %w", ErrConfig, toolkit.ErrNoListeners)
	}
	if cfg.ConfigFile != "" {
		if err := toolkit.Validate(cfg.ConfigFile); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, cfg.ConfigFile, err)
		}
	}
	handler, err := NewHandler(cfg, reg, logger)
	if err != nil {
		return err
	}
	runs, err := newRuns(cfg, handler, logger)
	if err != nil {
		return err
	}

	errc := make(chan error, len(runs))
	for _, r := range runs {
		go func() { errc <- r.serve(logger) }()
	}

	var first error
	pending := len(runs)
	select {
	case <-ctx.Done():
	case err := <-errc:
		pending--
		first = fmt.Errorf("serve: %w", err)
	}

	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	for _, r := range runs {
		r.stop(stopCtx, logger)
	}
	for ; pending > 0; pending-- {
		if err := <-errc; first == nil && !errors.Is(err, http.ErrServerClosed) {
			first = fmt.Errorf("serve: %w", err)
		}
	}
	return first
}

// run is one http.Server with its one listener.
//
// Each listen address and each systemd socket gets its own server:
// exporter-toolkit installs its TLS and authentication wrapper by
// rewriting the server's Handler, which races (the race detector agrees)
// when one server serves several listeners with a web config file.
type run struct {
	srv   *http.Server
	flags *toolkit.FlagConfig
	// listener is a socket systemd passed; nil means that ListenAndServe
	// binds the one address in flags.
	listener net.Listener
}

// newRuns prepares one run per listen address or systemd socket.
func newRuns(cfg Config, handler http.Handler, logger *slog.Logger) ([]run, error) {
	newRun := func(addr string, l net.Listener) run {
		addrs, systemd, file := []string{addr}, false, cfg.ConfigFile
		return run{
			srv: &http.Server{
				Handler:           handler,
				ReadHeaderTimeout: readHeaderTimeout,
				// TLS handshake failures from scanners and plain-HTTP
				// clients are per connection: debug, not error.
				ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
			},
			flags: &toolkit.FlagConfig{
				WebListenAddresses: &addrs,
				WebSystemdSocket:   &systemd,
				WebConfigFile:      &file,
			},
			listener: l,
		}
	}

	var runs []run
	if !cfg.SystemdSocket {
		for _, a := range cfg.ListenAddresses {
			runs = append(runs, newRun(a, nil))
		}
		return runs, nil
	}
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("systemd sockets: %w", err)
	}
	for _, l := range ls {
		if l != nil {
			runs = append(runs, newRun("", l))
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w: systemd socket activation asked for, "+
			"but systemd passed no sockets", ErrConfig)
	}
	logger.Info("serving on sockets passed by systemd", "sockets", len(runs))
	return runs, nil
}

// serve runs the server until it is shut down or fails.
func (r run) serve(logger *slog.Logger) error {
	if r.listener != nil {
		return toolkit.Serve(r.listener, r.srv, r.flags, logger)
	}
	return toolkit.ListenAndServe(r.srv, r.flags, logger)
}

// stop shuts the server down gracefully until ctx ends, then closes what
// is left. A systemd socket is closed too, in case the server failed
// before it took the socket over.
func (r run) stop(ctx context.Context, logger *slog.Logger) {
	if err := r.srv.Shutdown(ctx); err != nil {
		logger.Warn("graceful shutdown incomplete; closing connections", "err", err)
		r.srv.Close()
	}
	if r.listener != nil {
		_ = r.listener.Close()
	}
}
