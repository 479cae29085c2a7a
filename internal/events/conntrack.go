package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Netfilter multicast groups for conntrack events (NFNLGRP_CONNTRACK_*).
const (
	groupConntrackNew     = 1
	groupConntrackUpdate  = 2
	groupConntrackDestroy = 3
)

// DefaultReadBuffer is the receive buffer the follower asks for. Measured
// here: the kernel default (~208 KiB) overflows within seconds at a few
// thousand flows per second, 64 MiB lost nothing at 40k NEW/s plus 30k
// DESTROY/s.
const DefaultReadBuffer = 64 << 20

// batchPause is how long the reader rests after draining the queue. It
// bounds the extra delay of a conntrack event; drops wait far longer (the
// correlator's grace window) for the DESTROY they may need.
const batchPause = time.Millisecond

// ErrSubscribe is returned (wrapped) when the follower cannot open or
// subscribe its netlink socket: no CAP_NET_ADMIN, or no ctnetlink.
var ErrSubscribe = errors.New("subscribe to conntrack events")

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Port is the watched UDP server port, 53 by default.
	Port uint16
	// NetNS is a network namespace file descriptor; 0 means the current
	// namespace.
	NetNS int
	// ReadBuffer is the socket receive buffer in bytes, set with
	// SO_RCVBUFFORCE. 0 means DefaultReadBuffer.
	ReadBuffer int
	// NoKernelFilter disables the BPF socket filter so that every
	// conntrack event reaches userspace (for benchmarks and debugging).
	NoKernelFilter bool
	// Flow receives every flow event; Loss receives every loss window
	// after its resync. Both are called from Run's goroutine only and
	// must not block for long: the kernel keeps queueing meanwhile.
	Flow func(FlowEvent)
	Loss func(LossEvent)
	// Logger receives state changes and failures, never per-event lines.
	Logger *slog.Logger
	// Now returns the wall clock; nil means time.Now.
	Now func() time.Time
}

// FollowerStats are cumulative counters, safe to read while Run runs.
type FollowerStats struct {
	Messages       uint64 // netlink messages read from the event socket
	New            uint64 // NEW events for watched flows
	Update         uint64 // UPDATE events for watched flows
	Destroy        uint64 // DESTROY events for watched flows
	Dumped         uint64 // watched flows found by table dumps
	Ignored        uint64 // events for other flows that passed the kernel filter
	DecodeErrors   uint64 // messages that could not be decoded
	Overflows      uint64 // ENOBUFS: the kernel dropped events for us
	Resyncs        uint64 // table re-dumps that completed
	ResyncFailures uint64 // table re-dumps that failed
	ReadBuffer     uint64 // receive buffer in bytes as the kernel reports it
	// KernelDrops is the kernel's count of events it could not queue for
	// this socket (SK_MEMINFO_DROPS); valid when KernelDropsKnown.
	KernelDrops      uint64
	KernelDropsKnown bool
}

// Follower follows ctnetlink events for UDP flows to one server port.
//
// It owns its receive loop instead of using conntrack.Conn.Listen, whose
// workers exit on the first read error (ENOBUFS included) and report it on
// an unbuffered channel: a caller that does not drain it loses events
// silently. Here ENOBUFS is counted, the table is dumped again, and the
// loop keeps reading.
type Follower struct {
	cfg    FollowerConfig
	events *netlink.Conn
	dumper *conntrack.Conn
	now    func() time.Time
	log    *slog.Logger

	ready     chan struct{} // closed once the start-up dump is done
	readyOnce sync.Once

	messages, created, updated, destroyed, dumped atomic.Uint64
	ignored, decodeErrors, overflows              atomic.Uint64
	resyncs, resyncFailures, readBuffer           atomic.Uint64
}

// NewFollower opens and subscribes the event socket, so that events from
// this moment on are queued for Run. Errors wrap ErrSubscribe.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if cfg.Port == 0 {
		cfg.Port = 53
	}
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.Flow == nil || cfg.Loss == nil {
		return nil, errors.New("new follower: Flow and Loss callbacks are required")
	}
	f := &Follower{cfg: cfg, now: cfg.Now, log: cfg.Logger, ready: make(chan struct{})}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}

	ev, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("%w: dial netlink: %w", ErrSubscribe, err)
	}
	f.events = ev
	if err := f.setup(); err != nil {
		ev.Close()
		return nil, err
	}

	dumper, err := conntrack.Dial(&netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		ev.Close()
		return nil, fmt.Errorf("%w: dial dump socket: %w", ErrSubscribe, err)
	}
	f.dumper = dumper
	return f, nil
}

// setup sizes the buffer, attaches the filter and joins the groups. The
// filter goes on before the groups are joined so that no unfiltered event
// is ever queued.
func (f *Follower) setup() error {
	rc, err := f.events.SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: raw conn: %w", ErrSubscribe, err)
	}
	var sockErr error
	err = rc.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, f.cfg.ReadBuffer)
		if sockErr != nil {
			return
		}
		var n int
		n, sockErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		f.readBuffer.Store(uint64(n))
	})
	if err := errors.Join(err, sockErr); err != nil {
		return fmt.Errorf("%w: set receive buffer to %d bytes (needs CAP_NET_ADMIN): %w",
			ErrSubscribe, f.cfg.ReadBuffer, err)
	}

	if !f.cfg.NoKernelFilter {
		prog, err := filterProgram(f.cfg.Port)
		if err != nil {
			return err
		}
		if err := f.events.SetBPF(prog); err != nil {
			return fmt.Errorf("%w: attach socket filter: %w", ErrSubscribe, err)
		}
	}

	for _, g := range []uint32{groupConntrackNew, groupConntrackUpdate, groupConntrackDestroy} {
		if err := f.events.JoinGroup(g); err != nil {
			return fmt.Errorf("%w: join group %d: %w", ErrSubscribe, g, err)
		}
	}
	return nil
}

// Ready is closed once Run has delivered the start-up dump: from then on
// every flow is reported by its own events.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// Stats returns the follower's counters.
func (f *Follower) Stats() FollowerStats {
	st := FollowerStats{
		Messages:       f.messages.Load(),
		New:            f.created.Load(),
		Update:         f.updated.Load(),
		Destroy:        f.destroyed.Load(),
		Dumped:         f.dumped.Load(),
		Ignored:        f.ignored.Load(),
		DecodeErrors:   f.decodeErrors.Load(),
		Overflows:      f.overflows.Load(),
		Resyncs:        f.resyncs.Load(),
		ResyncFailures: f.resyncFailures.Load(),
		ReadBuffer:     f.readBuffer.Load(),
	}
	if n, err := f.kernelDrops(); err == nil {
		st.KernelDrops, st.KernelDropsKnown = n, true
	}
	return st
}

// kernelDrops reads SK_MEMINFO_DROPS with getsockopt(SO_MEMINFO): the
// exact number of events the kernel dropped for this socket because its
// buffer was full. Events rejected by the socket filter are not counted.
func (f *Follower) kernelDrops() (uint64, error) {
	const (
		soMeminfo      = unix.SO_MEMINFO
		skMeminfoDrops = 8
		skMeminfoVars  = 9
	)
	rc, err := f.events.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		info [skMeminfoVars]uint32
		serr error
	)
	err = rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(info))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, soMeminfo,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
		if errno != 0 {
			serr = errno
		}
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("getsockopt SO_MEMINFO: %w", serr)
	}
	return uint64(info[skMeminfoDrops]), nil
}

// Close releases the sockets. Call it after Run has returned.
func (f *Follower) Close() error {
	return errors.Join(f.events.Close(), f.dumper.Close())
}

// Run dumps the table (flows older than the process arrive as FlowSeen),
// then delivers events until ctx ends. It returns nil when ctx ends and an
// error only for a failure it cannot recover from; ENOBUFS is not one.
func (f *Follower) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		// Unblock the read; the loop then sees ctx.Err().
		_ = f.events.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()

	n, err := f.dump()
	if err != nil {
		return fmt.Errorf("dump conntrack table: %w", err)
	}
	f.log.Info("conntrack table dumped", "watched_flows", n)
	f.readyOnce.Do(func() { close(f.ready) })

	rc, err := f.events.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw conn: %w", err)
	}

	// Every kernel event is its own datagram, so reading one per system
	// call (and one poller wake-up per read) would dominate the cost.
	// recvmmsg takes up to a batch at a time into buffers that live as
	// long as the loop: messages are decoded before the next read, and
	// the decoder copies what it keeps.
	batch := newRecvBatch(recvBatchSize, recvBufferSize)
	lastGood := f.now()
	for {
		var (
			n       int
			readErr error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, readErr = batch.recv(int(fd))
			return readErr != unix.EAGAIN && readErr != unix.EINTR
		})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = readErr
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOBUFS):
			f.overflow(lastGood, err)
			lastGood = f.now()
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		default:
			return fmt.Errorf("read conntrack events: %w", err)
		}

		now := f.now()
		lastGood = now
		for i := 0; i < n; i++ {
			b, truncated := batch.datagram(i)
			if truncated {
				f.decodeErrors.Add(1)
				continue
			}
			f.handle(b, now)
		}
		if n < recvBatchSize/2 {
			// A short batch means the queue is drained. Waiting a moment
			// lets events accumulate, so the next call returns many
			// instead of waking per event; the 64 MiB buffer absorbs far
			// more than arrives in this time.
			time.Sleep(batchPause)
		}
	}
}

// overflow handles ENOBUFS: the kernel could not queue some events. How
// many is unknown, so the window from the last good read to the end of a
// successful re-dump is reported as lost. The window is reported open
// (Resynced false, End zero) before the re-dump starts, so drops judged
// while it runs already know about the loss, and closed after it.
func (f *Follower) overflow(lastGood time.Time, cause error) {
	f.overflows.Add(1)
	f.cfg.Loss(LossEvent{Start: lastGood, Err: cause})

	n, err := f.dump()
	ev := LossEvent{Start: lastGood, End: f.now(), Resynced: err == nil, Flows: n, Err: cause}
	if err != nil {
		f.resyncFailures.Add(1)
		f.log.Error("conntrack events lost and resync failed", "err", err)
		ev.Err = errors.Join(cause, err)
	} else {
		f.resyncs.Add(1)
		f.log.Warn("conntrack events lost; table re-dumped",
			"watched_flows", n, "overflows", f.overflows.Load())
	}
	f.cfg.Loss(ev)
}

// dump lists the table and emits a FlowSeen for every watched flow. A dump
// also makes the kernel evict entries that expired but were not yet
// collected, so their DESTROY events follow on the event socket.
func (f *Follower) dump() (int, error) {
	var (
		flows []conntrack.Flow
		err   error
	)
	// A dump can be interrupted by concurrent table changes; retry a few
	// times before giving up.
	for attempt := 0; attempt < 5; attempt++ {
		flows, err = f.dumper.Dump(nil)
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	now := f.now()
	n := 0
	for i := range flows {
		fl := &flows[i]
		if !f.watched(fl) {
			continue
		}
		ev := flowEvent(FlowSeen, fl, now)
		n++
		f.dumped.Add(1)
		f.cfg.Flow(ev)
	}
	return n, nil
}

func (f *Follower) watched(fl *conntrack.Flow) bool {
	p := fl.TupleOrig.Proto
	return p.Protocol == unix.IPPROTO_UDP && p.DestinationPort == f.cfg.Port
}

// handle decodes one datagram of netlink messages.
func (f *Follower) handle(b []byte, now time.Time) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			f.decodeErrors.Add(1)
			return
		}
		msg := netlink.Message{
			Header: netlink.Header{
				Length:   uint32(l),
				Type:     netlink.HeaderType(binary.NativeEndian.Uint16(b[4:6])),
				Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:8])),
				Sequence: binary.NativeEndian.Uint32(b[8:12]),
				PID:      binary.NativeEndian.Uint32(b[12:16]),
			},
			Data: b[unix.NLMSG_HDRLEN:l],
		}
		f.messages.Add(1)
		f.message(msg, now)

		next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next >= len(b) {
			return
		}
		b = b[next:]
	}
}

func (f *Follower) message(msg netlink.Message, now time.Time) {
	var ev conntrack.Event
	if err := ev.Unmarshal(msg); err != nil || ev.Flow == nil {
		f.decodeErrors.Add(1)
		return
	}
	if !f.watched(ev.Flow) {
		f.ignored.Add(1)
		return
	}

	var t FlowEventType
	switch ev.Type {
	case conntrack.EventNew:
		t = FlowStarted
		f.created.Add(1)
	case conntrack.EventUpdate:
		f.updated.Add(1)
		if !ev.Flow.Status.SeenReply() {
			// An update that is not about the reply (a mark or label
			// change) says nothing about lateness.
			return
		}
		t = FlowReplied
	case conntrack.EventDestroy:
		t = FlowExpired
		f.destroyed.Add(1)
	default:
		f.ignored.Add(1)
		return
	}
	f.cfg.Flow(flowEvent(t, ev.Flow, now))
}

func flowEvent(t FlowEventType, fl *conntrack.Flow, now time.Time) FlowEvent {
	ev := FlowEvent{
		Type:     t,
		ID:       fl.ID,
		Zone:     fl.Zone,
		Orig:     tuple(fl.TupleOrig),
		Reply:    tuple(fl.TupleReply),
		Received: now,
		Start:    fl.Timestamp.Start,
		Timeout:  time.Duration(fl.Timeout) * time.Second,
		Replied:  fl.Status.SeenReply(),
	}
	if t == FlowExpired {
		ev.Stop = fl.Timestamp.Stop
	}
	if fl.CountersOrig.Packets != 0 || fl.CountersReply.Packets != 0 {
		ev.HasCounters = true
		ev.OrigPackets, ev.OrigBytes = fl.CountersOrig.Packets, fl.CountersOrig.Bytes
		ev.ReplyPackets, ev.ReplyBytes = fl.CountersReply.Packets, fl.CountersReply.Bytes
	}
	return ev
}

func tuple(t conntrack.Tuple) Tuple {
	return Tuple{
		Src: netip.AddrPortFrom(t.IP.SourceAddress.Unmap(), t.Proto.SourcePort),
		Dst: netip.AddrPortFrom(t.IP.DestinationAddress.Unmap(), t.Proto.DestinationPort),
	}
}
