package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrClosed is returned by a Lab's methods after Close.
var ErrClosed = errors.New("lab closed")

// teardownTimeout bounds the commands Close runs; Close has no context.
const teardownTimeout = 30 * time.Second

// Lab is a running set of lab namespaces. Its methods are safe for
// concurrent use.
type Lab struct {
	cfg    Config
	layout layout

	resolver, upstream, outside *Netns

	// ctx lives as long as the lab; Close cancels it to stop every
	// goroutine in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// undo holds teardown steps in the order they were set up; Close
	// runs them in reverse. Only Start and Close touch it.
	undo []func(context.Context) error
	// upConns are the upstream's listening sockets, closed by Close to
	// stop their readers.
	upConns []*net.UDPConn

	closeOnce sync.Once
	closeErr  error

	// mu guards the ground-truth record below, which the resolver,
	// upstream and spoofer goroutines all write.
	mu      sync.Mutex
	closed  bool               // Close has begun; no new goroutines
	nextID  int                // last query number handed out
	queries []*query           // every query, in order of ID
	pending map[planKey]*query // queries the upstream has not seen
	spoofs  []Spoofed          // every spoofed packet sent
	unsent  int                // planned answers not yet sent or given up
	changed chan struct{}      // closed and replaced when unsent falls
	// portBusy[family][port] is when a query port may be used again.
	portBusy map[int]map[uint16]time.Time
}

// Start builds a lab: namespaces, links, addresses, sysctls, the
// resolver's ruleset, and the upstream DNS responder. ctx bounds the
// build only; the lab lives until Close. On any error Start tears down
// what it built. Errors from a rejected config wrap ErrInvalidConfig.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	return start(ctx, cfg, "")
}

// errInjected is the failure tests ask start to simulate.
var errInjected = errors.New("injected failure")

// start is Start with fault injection: when failAt names a build step,
// start fails right after that step succeeds.
func start(ctx context.Context, cfg Config, failAt string) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	o, err := selfOwner()
	if err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	slot, err := lockSlot()
	if err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}

	l := &Lab{
		cfg:     cfg,
		layout:  newLayout(o, slot.slot),
		pending: make(map[planKey]*query),
		changed: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.undo = append(l.undo, func(context.Context) error { return slot.release() })

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"netns", l.createNetns},
		{"sysctl", l.setSysctls},
		{"wire", l.wire},
		{"probe", l.probeLinks},
		{"ruleset", l.installRuleset},
		{"kernel-log", l.enableKernelLog},
		{"upstream", l.startUpstream},
	}
	for _, step := range steps {
		err := step.fn(ctx)
		if err == nil && step.name == failAt {
			err = fmt.Errorf("%s: %w", step.name, errInjected)
		}
		if err != nil {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("tear down failed start: %w", cerr))
			}
			return nil, fmt.Errorf("start lab: %w", err)
		}
	}
	return l, nil
}

// createNetns creates the three namespaces.
func (l *Lab) createNetns(ctx context.Context) error {
	for _, dst := range []struct {
		ns   **Netns
		name string
	}{
		{&l.resolver, l.layout.resolverNS},
		{&l.upstream, l.layout.upstreamNS},
		{&l.outside, l.layout.outsideNS},
	} {
		ns, err := addNetns(ctx, dst.name)
		if err != nil {
			return err
		}
		*dst.ns = ns
		l.undo = append(l.undo, func(ctx context.Context) error {
			return deleteNetns(ctx, ns.Name)
		})
	}
	return nil
}

// setSysctls writes the settings interfaces must inherit, before any
// interface exists, and the resolver's conntrack settings, before any
// flow exists (timestamps and accounting attach at flow creation).
func (l *Lab) setSysctls(context.Context) error {
	for _, ns := range []*Netns{l.resolver, l.upstream, l.outside} {
		if err := ns.setSysctls(baseSysctls...); err != nil {
			return err
		}
	}
	return l.resolver.setSysctls(resolverSysctls(l.cfg)...)
}

// enableKernelLog takes this lab's hold on nf_log_all_netns when its
// rules write kernel LOG lines.
func (l *Lab) enableKernelLog(context.Context) error {
	if l.cfg.LogPrefix == "" {
		return nil
	}
	if err := acquireLogAllNetns(); err != nil {
		return err
	}
	l.undo = append(l.undo, func(context.Context) error { return releaseLogAllNetns() })
	return nil
}

// Close stops the lab's goroutines, deletes its namespaces (and with them
// every interface), and restores the sysctls it changed outside them.
// Close is idempotent; later calls return the first call's result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.teardown() })
	return l.closeErr
}

func (l *Lab) teardown() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()

	l.cancel()
	for _, c := range l.upConns {
		c.Close()
	}
	l.wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	var errs []error
	for i := len(l.undo) - 1; i >= 0; i-- {
		if err := l.undo[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	l.undo = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lab: %w", err)
	}
	return nil
}

// Config returns the lab's configuration with defaults filled in.
func (l *Lab) Config() Config { return l.cfg }

// Name returns the prefix shared by the lab's namespace names.
func (l *Lab) Name() string { return l.layout.name }

// Resolver returns the namespace of the stub resolver and its ruleset,
// where conntrack runs and drops happen.
func (l *Lab) Resolver() *Netns { return l.resolver }

// Upstream returns the namespace of the upstream DNS responder.
func (l *Lab) Upstream() *Netns { return l.upstream }

// Outside returns the namespace spoofed packets come from.
func (l *Lab) Outside() *Netns { return l.outside }

// ResolverIface returns the name of the resolver's interface facing the
// upstream; answers, and the drops of late ones, arrive on it.
func (l *Lab) ResolverIface() string { return l.layout.r2u }

// OutsideIface returns the name of the resolver's interface facing the
// outside namespace; spoofed packets arrive on it.
func (l *Lab) OutsideIface() string { return l.layout.r2o }

// UpstreamAddr returns the upstream's address in family 4 or 6.
func (l *Lab) UpstreamAddr(family int) netip.Addr {
	return l.layout.family(family).upstream
}

// ResolverAddr returns the resolver's address in family 4 or 6 that
// answers are sent to: its egress address, after SNAT if that is on.
func (l *Lab) ResolverAddr(family int) netip.Addr {
	return l.layout.family(family).resolverUp
}

// sourceAddr is the address the resolver's sockets bind to.
func (l *Lab) sourceAddr(family int) netip.Addr {
	fl := l.layout.family(family)
	if l.cfg.SNAT {
		return fl.inner
	}
	return fl.resolverUp
}

// Wait blocks until every planned answer of every query made so far has
// been sent (or given up: the lab closed, or the query never reached the
// upstream), or ctx ends.
func (l *Lab) Wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		unsent, changed := l.unsent, l.changed
		l.mu.Unlock()
		if unsent == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for answers: %w", ctx.Err())
		}
	}
}

// settle records that n planned answers are no longer pending. The
// caller holds l.mu.
func (l *Lab) settle(n int) {
	if n == 0 {
		return
	}
	l.unsent -= n
	close(l.changed)
	l.changed = make(chan struct{})
}

// checkOpen returns ErrClosed once Close has begun.
func (l *Lab) checkOpen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

// validFamily reports whether family is 4 or 6.
func validFamily(family int) bool { return family == 4 || family == 6 }
