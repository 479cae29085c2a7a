// Package nflog reads drop records from a netfilter log group (nftables
// "log group N", iptables "-j NFLOG --nflog-group N") and turns them into
// events.Drop values: kernel timestamp, interfaces, prefix, addresses and,
// for packets from the watched port, the DNS header and first question.
//
// The receive loop is our own, on a github.com/mdlayher/netlink socket, and
// the NFULA attributes are decoded here with netlink.AttributeDecoder.
// github.com/florianl/go-nflog/v2 v2.1.0 was evaluated and is not used:
//   - it wraps bind errors with %v, so a busy group cannot be told apart
//     from other failures without matching error strings;
//   - it configures the group in five round trips through Execute. A packet
//     logged between the bind and its acknowledgement makes Execute fail on
//     a sequence mismatch, and until the last message lands the group runs
//     with kernel defaults (batches of 100, a 1 s flush timeout);
//   - it sends NFULNL_CFG_CMD_PF_UNBIND and PF_BIND for AF_UNSPEC, which
//     changes the namespace's default logger, a side effect on others;
//   - it drops messages it cannot parse without counting them, and reads the
//     padding byte instead of the hook.
//
// Here one config message binds the group and sets copy mode, snap length,
// queue threshold, flush timeout and sequence numbers at once, and packets
// that race the acknowledgement are kept and delivered by Run.
package nflog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Defaults for the zero values of Config fields.
const (
	DefaultPort = 53
	// DefaultSnapLen covers an IPv6 header with a few extension headers,
	// the UDP header, the DNS header and a question with a long name.
	DefaultSnapLen = 512
	// DefaultReadBuffer is the SO_RCVBUFFORCE size. Netlink trims each
	// NFLOG message to its size, so a MiB queues about 2,500 messages of
	// small DNS packets (measured): 8 MiB rides out a burst of some
	// 20,000 while emit is slow.
	DefaultReadBuffer = 8 << 20
	// DefaultFlushTimeout is the kernel's batching timer. With a queue
	// threshold of 1 the kernel sends each message at once and never arms
	// it (a rule's queue-threshold can only lower ours); it is kept short
	// rather than the kernel's default of a second all the same.
	DefaultFlushTimeout = 10 * time.Millisecond
)

const (
	// maxSnapLen is NFULNL_COPY_RANGE_MAX.
	maxSnapLen = 0xffff
	// messageSlack is room for the netlink and NFLOG headers and every
	// attribute besides the payload; they add up to well under 1 KiB.
	messageSlack = 8 << 10
	// maxPending bounds the messages kept while waiting for the bind to be
	// acknowledged. Beyond it messages are dropped, and the sequence gap
	// counts them in Stats.Lost.
	maxPending = 1024
	// bindTimeout bounds the wait for the kernel's acknowledgement.
	bindTimeout = 5 * time.Second
)

// Errors returned by New and Run.
var (
	// ErrGroupBusy means another socket in the namespace owns the group.
	// Only one listener may own a group: the kernel refuses a second with
	// EPERM (EBUSY if the same socket binds twice). New has already proved
	// CAP_NET_ADMIN by setting SO_RCVBUFFORCE, so EPERM here means busy.
	ErrGroupBusy = errors.New("group already bound by another socket")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("nflog reader closed")
	// ErrRunning is returned by a second concurrent call to Run.
	ErrRunning = errors.New("nflog reader already running")
)

// Config selects and tunes the NFLOG group to read.
type Config struct {
	// Group is the NFLOG group number, as in "log group N".
	Group uint16
	// NetNS is a file descriptor of the network namespace to open the
	// socket in (e.g. of /run/netns/NAME); 0 is the current namespace.
	// The fd is used only by New and may be closed after it returns.
	NetNS int
	// Port is the watched DNS server port: UDP payloads from it are decoded
	// as DNS. 0 means DefaultPort.
	Port uint16
	// SnapLen is how many bytes of each packet the kernel copies, from the
	// IP header on. 0 means DefaultSnapLen; at most 65535. A rule's
	// snaplen can only shorten it.
	SnapLen uint32
	// ReadBuffer is the socket receive buffer in bytes, set with
	// SO_RCVBUFFORCE (needs CAP_NET_ADMIN). 0 means DefaultReadBuffer.
	ReadBuffer int
	// FlushTimeout is the kernel's batching timer, in steps of 10 ms.
	// 0 means DefaultFlushTimeout.
	FlushTimeout time.Duration
	// IfaceName resolves interface indexes to names. It is called from the
	// Run goroutine for every message with an interface, so it should
	// cache. Nil means a built-in cache that asks rtnetlink in NetNS.
	IfaceName func(index uint32) (string, error)
}

func (c Config) withDefaults() (Config, error) {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.SnapLen == 0 {
		c.SnapLen = DefaultSnapLen
	}
	if c.SnapLen > maxSnapLen {
		return c, fmt.Errorf("snap length %d: above %d", c.SnapLen, maxSnapLen)
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.ReadBuffer < 0 {
		return c, fmt.Errorf("read buffer %d: negative", c.ReadBuffer)
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = DefaultFlushTimeout
	}
	if c.FlushTimeout < 0 {
		return c, fmt.Errorf("flush timeout %v: negative", c.FlushTimeout)
	}
	return c, nil
}

// Reader owns one NFLOG group and turns its messages into drops.
type Reader struct {
	cfg  Config
	conn *netlink.Conn

	ifaceName  func(uint32) (string, error)
	closeIface func() error

	// pending holds messages that arrived before the bind was
	// acknowledged. Written by New, drained by the first Run.
	pending []pendingMessage
	// nextSeq is the NFULA_SEQ expected next; the kernel numbers a new
	// group from 0. Used by the Run goroutine only.
	nextSeq uint32

	running atomic.Bool
	closed  atomic.Bool
	stats   counters

	// tap, set only by tests, sees each packet message before decoding.
	tap func(netlink.Message)
}

type pendingMessage struct {
	msg      netlink.Message
	received time.Time
}

// New opens a netfilter netlink socket in cfg.NetNS, sets its receive buffer
// and binds cfg.Group in copy-packet mode with a queue threshold of 1, so
// each logged packet reaches Run at once. From here on the group's messages
// queue in the socket until Run reads them.
//
// New returns an error wrapping ErrGroupBusy when another socket owns the
// group, and one wrapping unix.EPERM when the caller lacks CAP_NET_ADMIN.
func New(cfg Config) (*Reader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("nflog config: %w", err)
	}

	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{
		NetNS:             cfg.NetNS,
		MessageBufferSize: int(cfg.SnapLen) + messageSlack,
	})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	r := &Reader{cfg: cfg, conn: conn, ifaceName: cfg.IfaceName}

	if r.ifaceName == nil {
		cache, err := newIfaceCache(cfg.NetNS)
		if err != nil {
			conn.Close()
			return nil, err
		}
		r.ifaceName, r.closeIface = cache.name, cache.close
	}
	if err := r.setReadBuffer(cfg.ReadBuffer); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.bind(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) setReadBuffer(size int) error {
	rc, err := r.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET,
			unix.SO_RCVBUFFORCE, size)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set receive buffer to %d bytes: %w", size, err)
	}
	return nil
}

// bind sends one NFULNL_MSG_CONFIG that creates the group's instance and
// configures it, so no packet is ever logged with the kernel defaults, and
// waits for the acknowledgement.
func (r *Reader) bind() error {
	group := r.cfg.Group
	// struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode;
	// __u8 _pad; } __packed
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, r.cfg.SnapLen)
	mode[4] = copyPacket
	// The kernel's timer runs in 1/100 s; round up so it is never 0.
	timeout := uint32((r.cfg.FlushTimeout + 10*time.Millisecond - 1) /
		(10 * time.Millisecond))

	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Bytes(cfgCmd, []byte{cmdBind})
	ae.Bytes(cfgMode, mode)
	ae.Uint32(cfgTimeout, timeout)
	ae.Uint32(cfgQThresh, 1)
	ae.Uint16(cfgFlags, flagSeq)
	attrs, err := ae.Encode()
	if err != nil {
		return fmt.Errorf("encode nflog config: %w", err)
	}
	// struct nfgenmsg; res_id is the group, big-endian.
	data := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(data[2:], group)

	req, err := r.conn.Send(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | msgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(data, attrs...),
	})
	if err != nil {
		return fmt.Errorf("bind nflog group %d: %w", group, err)
	}

	if err := r.conn.SetReadDeadline(time.Now().Add(bindTimeout)); err != nil {
		return fmt.Errorf("bind nflog group %d: %w", group, err)
	}
	defer r.conn.SetReadDeadline(time.Time{})
	for {
		acked, err := r.awaitAck(req.Header.Sequence)
		switch {
		case err == nil && acked:
			return nil
		case err == nil:
			continue
		case errors.Is(err, unix.ENOBUFS):
			r.stats.overruns.Add(1)
			continue
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EBUSY):
			return fmt.Errorf("bind nflog group %d: %w (%w)", group,
				ErrGroupBusy, err)
		}
		return fmt.Errorf("bind nflog group %d: %w", group, err)
	}
}

// awaitAck reads one datagram and reports whether it held the
// acknowledgement of request seq. Packet messages that raced it are kept
// for Run. A netlink error for seq is returned as the error.
func (r *Reader) awaitAck(seq uint32) (bool, error) {
	var acked bool
	for msg, err := range r.conn.ReceiveIter() {
		if err != nil {
			return false, err
		}
		switch {
		case msg.Header.Type == netlink.Error && msg.Header.Sequence == seq:
			acked = true
		case len(r.pending) < maxPending:
			r.pending = append(r.pending, pendingMessage{msg, time.Now()})
		}
	}
	return acked, nil
}

// Run reads the group until ctx ends and calls emit for every logged packet
// whose IP header decodes, on the calling goroutine, in kernel order.
// Packets of other protocols than UDP are emitted too, without ports; the
// consumer filters. Packets that do not decode are counted by reason in
// Stats, never logged.
//
// Warning: emit must be quick. While it runs nothing reads the socket; once
// the receive buffer is full the kernel drops messages, which Run counts
// (Stats.Overruns, Stats.Lost) and survives.
//
// Run returns nil when ctx ends, ErrClosed after Close, ErrRunning if
// another Run is active, and any other receive error, wrapped.
func (r *Reader) Run(ctx context.Context, emit func(events.Drop)) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	if r.closed.Load() {
		return ErrClosed
	}

	if err := r.conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("receive nflog group %d: %w", r.cfg.Group, err)
	}
	// A read deadline in the past wakes a blocked receive when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		_ = r.conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()

	for _, p := range r.pending {
		r.handle(p.msg, p.received, emit)
	}
	r.pending = nil

	for ctx.Err() == nil {
		err := r.receive(emit)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case r.closed.Load():
			return ErrClosed
		case errors.Is(err, unix.ENOBUFS):
			r.stats.overruns.Add(1)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The AfterFunc of an earlier Run's ctx fired late.
			if err := r.conn.SetReadDeadline(time.Time{}); err != nil {
				return fmt.Errorf("receive nflog group %d: %w", r.cfg.Group, err)
			}
		default:
			return fmt.Errorf("receive nflog group %d: %w", r.cfg.Group, err)
		}
	}
	return nil
}

// receive reads one datagram and handles the messages in it.
func (r *Reader) receive(emit func(events.Drop)) error {
	for msg, err := range r.conn.ReceiveIter() {
		if err != nil {
			return err
		}
		r.handle(msg, time.Now(), emit)
	}
	return nil
}

// handle turns one netlink message into a Drop, or counts why it could not.
func (r *Reader) handle(msg netlink.Message, received time.Time,
	emit func(events.Drop)) {
	if msg.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8|msgPacket) {
		// NLMSG_DONE after a batch, or a stray acknowledgement.
		return
	}
	r.stats.messages.Add(1)
	if r.tap != nil {
		r.tap(msg)
	}

	rec, err := parseRecord(msg.Data)
	if err != nil {
		r.stats.decode[ReasonMessage].Add(1)
		return
	}
	if rec.hasSeq {
		// uint32 arithmetic survives the wrap of the kernel's counter.
		if gap := rec.seq - r.nextSeq; gap != 0 && gap < 1<<31 {
			r.stats.lost.Add(uint64(gap))
		}
		r.nextSeq = rec.seq + 1
	}
	if rec.payload == nil {
		r.stats.decode[ReasonNoPayload].Add(1)
		return
	}
	pkt, err := DecodePacket(rec.payload, rec.family)
	if err != nil {
		r.stats.decode[reasonOf(err)].Add(1)
		return
	}

	d := events.Drop{
		Source:   events.SourceNFLOG,
		Time:     rec.time,
		Received: received,
		Prefix:   rec.prefix,
		InIface:  r.iface(rec.inDev),
		OutIface: r.iface(rec.outDev),
		Proto:    pkt.Proto,
		Src:      pkt.Src,
		Dst:      pkt.Dst,
		Length:   pkt.Length,
		TTL:      pkt.TTL,
	}
	if !rec.hasTime {
		d.Time = received
		r.stats.noTimestamp.Add(1)
	}
	if pkt.Proto == protoUDP && pkt.Src.Port() == r.cfg.Port {
		info, err := DecodeDNS(pkt.Payload)
		if err != nil {
			r.stats.decode[reasonOf(err)].Add(1)
		}
		d.DNS = info
	}

	emit(d)
	r.stats.drops.Add(1)
}

// iface names interface index; 0 means none.
func (r *Reader) iface(index uint32) string {
	if index == 0 {
		return ""
	}
	name, err := r.ifaceName(index)
	if err != nil {
		r.stats.ifaceErrors.Add(1)
		return ""
	}
	return name
}

// Stats returns the counters. It is safe to call from any goroutine.
func (r *Reader) Stats() Stats { return r.stats.snapshot() }

// Close closes the socket, which releases the group, and ends a running Run
// with ErrClosed. Close is safe to call more than once.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	err := r.conn.Close()
	if r.closeIface != nil {
		err = errors.Join(err, r.closeIface())
	}
	if err != nil {
		return fmt.Errorf("close nflog reader: %w", err)
	}
	return nil
}
