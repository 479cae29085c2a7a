// Package events turns kernel messages into typed events: conntrack flow
// events from ctnetlink and drop records from NFLOG or kernel LOG lines.
//
// Nothing in this package knows about Prometheus, the terminal view or the
// verdicts built on top of these events; consumers receive plain values.
package events

import (
	"fmt"
	"net/netip"
	"time"
)

// Tuple is one direction of a UDP flow: the packet's source and destination.
// For a flow's reply direction Src is the server (port 53) and Dst the local
// socket as the server sees it, which behind SNAT is the translated address.
type Tuple struct {
	Src netip.AddrPort
	Dst netip.AddrPort
}

// String formats the tuple as "src -> dst".
func (t Tuple) String() string {
	return t.Src.String() + " -> " + t.Dst.String()
}

// FlowEventType says what happened to a flow.
type FlowEventType uint8

// Flow event types.
const (
	// FlowSeen is a flow found by a table dump rather than an event: it
	// existed before ctwatch started or inside a window of event loss.
	FlowSeen FlowEventType = iota + 1
	// FlowStarted is a ctnetlink NEW event.
	FlowStarted
	// FlowReplied is the UPDATE event that sets SEEN_REPLY: the first reply.
	FlowReplied
	// FlowExpired is a DESTROY event.
	FlowExpired
)

var flowEventNames = [...]string{
	FlowSeen:    "seen",
	FlowStarted: "new",
	FlowReplied: "reply",
	FlowExpired: "destroy",
}

// String returns the short lower-case name used in logs and labels.
func (t FlowEventType) String() string {
	if int(t) < len(flowEventNames) && flowEventNames[t] != "" {
		return flowEventNames[t]
	}
	return fmt.Sprintf("FlowEventType(%d)", t)
}

// FlowEvent is one conntrack event (or dump entry) for a watched UDP flow.
type FlowEvent struct {
	Type FlowEventType
	// ID is the kernel's conntrack id; unique among live entries only.
	ID   uint32
	Zone uint16
	// Orig is the original direction (resolver -> server), Reply the
	// direction answers take (server -> resolver, after NAT).
	Orig  Tuple
	Reply Tuple
	// Received is when ctwatch read the message (wall clock).
	Received time.Time
	// Start and Stop are the kernel's timestamps, present only when
	// nf_conntrack_timestamp was 1 when the flow was created. Stop is set on
	// FlowExpired only and is the real expiry time, not the event's arrival.
	Start time.Time
	Stop  time.Time
	// Timeout is the remaining lifetime the kernel reported (NEW, UPDATE
	// and dumps carry it; DESTROY does not). Resolution is one second.
	Timeout time.Duration
	// Replied is true once the flow has SEEN_REPLY.
	Replied bool
	// Counters are present only with nf_conntrack_acct=1 at creation.
	HasCounters  bool
	OrigPackets  uint64
	OrigBytes    uint64
	ReplyPackets uint64
	ReplyBytes   uint64
}

// LossEvent reports conntrack events the kernel could not deliver (ENOBUFS).
// Any flow event between Start and End may be missing. Each overflow is
// reported twice: at once, open (End zero, Resynced false), and again when
// the re-dump that follows has completed (End set); flows found by the
// re-dump arrive as FlowSeen events between the two.
type LossEvent struct {
	// Start is the arrival time of the last message read before the
	// overflow (or the start of the follower), End the time the resync
	// completed.
	Start time.Time
	End   time.Time
	// Resynced is false when the re-dump failed; the window then stays
	// open until a later resync succeeds.
	Resynced bool
	// Flows is the number of watched flows found by the re-dump.
	Flows int
	Err   error
}

// DropSource names where a drop record came from.
type DropSource uint8

// Drop sources.
const (
	SourceNFLOG DropSource = iota + 1
	SourceKernelLog
)

// String returns the label value used in metrics ("nflog", "kernel_log").
func (s DropSource) String() string {
	switch s {
	case SourceNFLOG:
		return "nflog"
	case SourceKernelLog:
		return "kernel_log"
	}
	return fmt.Sprintf("DropSource(%d)", s)
}

// Drop is a packet a firewall rule logged (and, we assume, dropped).
type Drop struct {
	Source DropSource
	// Time is when the kernel saw the packet: the NFLOG timestamp, or the
	// kernel log record's time converted to wall time.
	Time time.Time
	// Received is when ctwatch read the record.
	Received time.Time
	Prefix   string
	InIface  string
	OutIface string
	// Proto is the IP protocol number (17 for UDP).
	Proto  uint8
	Src    netip.AddrPort
	Dst    netip.AddrPort
	Length int
	TTL    int
	// DNS holds the decoded header and first question when the payload
	// carried a DNS message (NFLOG only).
	DNS *DNSInfo
}

// Tuple returns the drop's (source, destination) pair, the key matched
// against flows' reply tuples.
func (d Drop) Tuple() Tuple { return Tuple{Src: d.Src, Dst: d.Dst} }

// DNSInfo is the part of a DNS message ctwatch reports.
type DNSInfo struct {
	ID       uint16
	Response bool
	Opcode   uint8
	Rcode    uint16
	// Flags lists the set header flags, e.g. "qr rd ra".
	Flags string
	Name  string
	// Type is the question type as text, e.g. "A" or "AAAA".
	Type string
}
