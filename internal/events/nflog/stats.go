package nflog

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Reason says why a message, or part of it, could not be decoded. Reasons
// are counted in Stats.DecodeErrors; nothing is logged per packet.
type Reason uint8

// Decode failure reasons. A message that fails at ReasonMessage through
// ReasonShortUDP produces no Drop; a DNS failure still produces one, with
// as much of DNSInfo as could be read.
const (
	// ReasonMessage: the netlink message or its NFLOG attributes are
	// malformed.
	ReasonMessage Reason = iota
	// ReasonNoPayload: no NFULA_PAYLOAD, e.g. a rule with snaplen 0 or
	// another copy mode.
	ReasonNoPayload
	ReasonFamily        // ErrFamily
	ReasonShortIP       // ErrShortIP
	ReasonIPVersion     // ErrIPVersion
	ReasonIPHeader      // ErrIPHeader
	ReasonFragment      // ErrFragment
	ReasonIPv6Extension // ErrIPv6Extension
	ReasonShortUDP      // ErrShortUDP
	ReasonShortDNS      // ErrShortDNS
	ReasonDNSTruncated  // ErrDNSTruncated
	ReasonDNSMalformed  // ErrDNSMalformed

	numReasons
)

var reasonNames = [numReasons]string{
	ReasonMessage:       "message",
	ReasonNoPayload:     "no_payload",
	ReasonFamily:        "family",
	ReasonShortIP:       "short_ip",
	ReasonIPVersion:     "ip_version",
	ReasonIPHeader:      "ip_header",
	ReasonFragment:      "fragment",
	ReasonIPv6Extension: "ipv6_extension",
	ReasonShortUDP:      "short_udp",
	ReasonShortDNS:      "short_dns",
	ReasonDNSTruncated:  "dns_truncated",
	ReasonDNSMalformed:  "dns_malformed",
}

// String returns the snake_case label value used in metrics.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// reasonErrors maps the decoders' errors to reasons, in the order tried.
var reasonErrors = [...]struct {
	err    error
	reason Reason
}{
	{errMessage, ReasonMessage},
	{ErrFamily, ReasonFamily},
	{ErrShortIP, ReasonShortIP},
	{ErrIPVersion, ReasonIPVersion},
	{ErrIPHeader, ReasonIPHeader},
	{ErrFragment, ReasonFragment},
	{ErrIPv6Extension, ReasonIPv6Extension},
	{ErrShortUDP, ReasonShortUDP},
	{ErrShortDNS, ReasonShortDNS},
	{ErrDNSTruncated, ReasonDNSTruncated},
	{ErrDNSMalformed, ReasonDNSMalformed},
}

// reasonOf returns the reason for a decoder error; unknown errors count as
// a malformed message.
func reasonOf(err error) Reason {
	for _, re := range reasonErrors {
		if errors.Is(err, re.err) {
			return re.reason
		}
	}
	return ReasonMessage
}

// Stats are a Reader's counters since New. All are cumulative.
type Stats struct {
	// Messages is the number of NFLOG packet messages read.
	Messages uint64
	// Drops is the number of Drops passed to emit.
	Drops uint64
	// DecodeErrors counts failures by reason. Every reason is present,
	// with zero when it never happened.
	DecodeErrors map[Reason]uint64
	// Overruns is the number of ENOBUFS errors read from the socket: each
	// says the receive buffer overflowed and one or more messages were
	// lost.
	Overruns uint64
	// Lost is the number of messages known to be lost, from gaps in the
	// kernel's per-group sequence numbers (NFULA_SEQ). It counts losses
	// between messages that arrived; a loss after the last one shows only
	// in Overruns until the next message.
	Lost uint64
	// NoTimestamp counts messages without NFULA_TIMESTAMP, whose Drop.Time
	// is the receive time. The kernel stamps packets only on the input
	// side (prerouting, input, forward), not in output or postrouting.
	NoTimestamp uint64
	// IfaceErrors counts interface lookups that failed (an unknown index,
	// or an rtnetlink error); the Drop then has an empty InIface or
	// OutIface.
	IfaceErrors uint64
}

// counters are the live Stats, updated by the Run goroutine and read by
// Stats from any goroutine.
type counters struct {
	messages    atomic.Uint64
	drops       atomic.Uint64
	decode      [numReasons]atomic.Uint64
	overruns    atomic.Uint64
	lost        atomic.Uint64
	noTimestamp atomic.Uint64
	ifaceErrors atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Messages:     c.messages.Load(),
		Drops:        c.drops.Load(),
		DecodeErrors: make(map[Reason]uint64, numReasons),
		Overruns:     c.overruns.Load(),
		Lost:         c.lost.Load(),
		NoTimestamp:  c.noTimestamp.Load(),
		IfaceErrors:  c.ifaceErrors.Load(),
	}
	for r := range numReasons {
		s.DecodeErrors[r] = c.decode[r].Load()
	}
	return s
}
