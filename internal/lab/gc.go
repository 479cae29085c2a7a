package lab

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
)

// gcAttempts bounds the dumps CollectGarbage makes; one suffices unless
// flows come and go meanwhile.
const gcAttempts = 10

// dialConntrack opens a ctnetlink socket in the resolver namespace that
// ctx's end closes. The caller closes it (and calls the returned stop).
func (l *Lab) dialConntrack(ctx context.Context) (*conntrack.Conn, func() bool, error) {
	if err := l.checkOpen(); err != nil {
		return nil, nil, err
	}
	ns, err := l.resolver.Open()
	if err != nil {
		return nil, nil, err
	}
	defer ns.Close()

	c, err := conntrack.Dial(&netlink.Config{NetNS: int(ns.Fd())})
	if err != nil {
		return nil, nil, fmt.Errorf("dial conntrack: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return c, stop, nil
}

// CollectGarbage makes the resolver's conntrack table drop entries that
// have expired but not yet been collected (the kernel's collector may
// take a minute to reach them), so their DESTROY events come now.
//
// It dumps the table: on this kernel (6.18) a ctnetlink dump evicts each
// expired entry it walks over and lists only live ones. It then checks
// that the table's entry count equals the number of live entries listed,
// dumping again if not, and fails if expired entries remain.
func (l *Lab) CollectGarbage(ctx context.Context) error {
	c, stop, err := l.dialConntrack(ctx)
	if err != nil {
		return fmt.Errorf("collect garbage: %w", err)
	}
	defer c.Close()
	defer stop()

	var live, entries int
	for attempt := range gcAttempts {
		if attempt > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		flows, err := c.Dump(nil)
		if err != nil {
			return fmt.Errorf("collect garbage: dump: %w", ctxErr(ctx, err))
		}
		entries, err = l.countEntries()
		if err != nil {
			return fmt.Errorf("collect garbage: %w", err)
		}
		live = len(flows)
		if entries <= live {
			return nil
		}
	}
	return fmt.Errorf("collect garbage: %d entries remain, %d of them live", entries, live)
}

// ConntrackCount returns the number of entries in the resolver's
// conntrack table (nf_conntrack_count), which includes expired entries
// the kernel has not collected yet; a dump would list only live ones.
func (l *Lab) ConntrackCount() (int, error) {
	n, err := l.countEntries()
	if err != nil {
		return 0, fmt.Errorf("count conntrack entries: %w", err)
	}
	return n, nil
}

// countEntries reads nf_conntrack_count in the resolver namespace.
// (ctnetlink's global stats request would say the same, but
// ti-mo/conntrack's StatsGlobal waits forever for the end of a dump the
// kernel never sends.)
func (l *Lab) countEntries() (int, error) {
	if err := l.checkOpen(); err != nil {
		return 0, err
	}
	v, err := l.resolver.Sysctl("net.netfilter.nf_conntrack_count")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("parse nf_conntrack_count %q: %w", v, err)
	}
	return n, nil
}

// ctxErr prefers ctx's error to err when ctx has ended: the socket was
// closed under the call.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
