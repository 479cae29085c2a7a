package kernlog

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Result says what a logical line turned out to be.
type Result uint8

// Results of parsing one logical line.
const (
	// NotFirewall is any line that is not an IP netfilter LOG record:
	// other kernel and daemon messages, blank lines, journal fields. ARP
	// records (arp, bridge and netdev families) carry no IP packet and are
	// reported as NotFirewall too. Callers count and skip these.
	NotFirewall Result = iota
	// Firewall is a complete IP LOG record; the Record is filled in.
	Firewall
	// Malformed is a line that carries the LOG signature (IN=... OUT=...)
	// but whose fields are bad or missing. The error says which.
	Malformed
)

var resultNames = [...]string{
	NotFirewall: "not_firewall",
	Firewall:    "firewall",
	Malformed:   "malformed",
}

// String returns the snake_case name used in metrics and JSON.
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("Result(%d)", r)
}

// MarshalText implements encoding.TextMarshaler.
func (r Result) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Clock says where a record's timestamp came from.
type Clock uint8

// Clocks.
const (
	// ClockNone: the line had no timestamp at all.
	ClockNone Clock = iota
	// ClockWall: Time came from a wall-clock header (syslog, RFC 5424,
	// journal, dmesg -T or --time-format=iso).
	ClockWall
	// ClockBoot: the only stamp is SinceBoot, the kernel's printk clock
	// (/dev/kmsg, dmesg brackets). Time is zero unless a BootClock
	// converted it.
	ClockBoot
)

// String returns "none", "wall" or "boot".
func (c Clock) String() string {
	switch c {
	case ClockNone:
		return "none"
	case ClockWall:
		return "wall"
	case ClockBoot:
		return "boot"
	}
	return fmt.Sprintf("Clock(%d)", c)
}

// MarshalText implements encoding.TextMarshaler.
func (c Clock) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Flags is the set of single-word flags a LOG record carries: the IPv4
// CE/DF/MF bits and the TCP flags. It is a bit set so that a Record stays
// a plain value that can be copied without sharing memory; it encodes to
// JSON as an array of the kernel's words, e.g. ["DF"] or ["ACK","SYN"].
type Flags uint16

// Flag bits, in the order the kernel prints them.
const (
	FlagCE Flags = 1 << iota
	FlagDF
	FlagMF
	FlagCWR
	FlagECE
	FlagURG
	FlagACK
	FlagPSH
	FlagRST
	FlagSYN
	FlagFIN
)

// flagWords lists the kernel's word for each bit, bit 0 first.
var flagWords = [...]string{
	"CE", "DF", "MF", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN",
}

// ipFlags are the IPv4 header flags; the rest are TCP flags.
const ipFlags = FlagCE | FlagDF | FlagMF

// flagByWord returns the bit for a kernel flag word, or 0.
func flagByWord(w []byte) Flags {
	switch string(w) {
	case "CE":
		return FlagCE
	case "DF":
		return FlagDF
	case "MF":
		return FlagMF
	case "CWR":
		return FlagCWR
	case "ECE":
		return FlagECE
	case "URG":
		return FlagURG
	case "ACK":
		return FlagACK
	case "PSH":
		return FlagPSH
	case "RST":
		return FlagRST
	case "SYN":
		return FlagSYN
	case "FIN":
		return FlagFIN
	}
	return 0
}

// Has reports whether every bit of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Strings returns the set flags as the kernel's words, in kernel order.
func (f Flags) Strings() []string {
	var out []string
	for i, w := range flagWords {
		if f&(1<<i) != 0 {
			out = append(out, w)
		}
	}
	return out
}

// String joins the flag words with spaces.
func (f Flags) String() string { return strings.Join(f.Strings(), " ") }

// MarshalJSON encodes the flags as an array of words.
func (f Flags) MarshalJSON() ([]byte, error) {
	s := f.Strings()
	if s == nil {
		s = []string{}
	}
	return json.Marshal(s)
}

// UnmarshalJSON decodes an array of flag words; unknown words are an
// error.
func (f *Flags) UnmarshalJSON(b []byte) error {
	var words []string
	if err := json.Unmarshal(b, &words); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	var out Flags
	for _, w := range words {
		bit := flagByWord([]byte(w))
		if bit == 0 {
			return fmt.Errorf("flags: unknown flag %q", w)
		}
		out |= bit
	}
	*f = out
	return nil
}

// Record is one netfilter LOG record and the header around it.
//
// A Record holds no slices or pointers: copying it is safe and shares no
// memory with the parser, so a callback may keep a copy.
//
// For Firewall and Malformed results the header fields (Time, Clock,
// SinceBoot, Seq, Host) are set from the line's header and the packet
// fields as far as parsing got. A line without "IN=" is rejected as
// NotFirewall before its header is read, so its Record stays empty.
type Record struct {
	// Time is the record's wall-clock time in UTC: from the header, or
	// converted from SinceBoot by a BootClock.
	Time time.Time `json:"time,omitzero"`
	// Clock says where Time or SinceBoot came from.
	Clock Clock `json:"clock,omitempty"`
	// SinceBoot is the kernel's printk timestamp (time since boot, not
	// counting suspend), from /dev/kmsg, a dmesg bracket or the journal's
	// _SOURCE_MONOTONIC_TIMESTAMP. Zero when absent.
	SinceBoot time.Duration `json:"since_boot_ns,omitempty"`
	// Seq is the /dev/kmsg sequence number, when the line had one.
	Seq uint64 `json:"kmsg_seq,omitempty"`
	// Host is the host name from a syslog or journal header.
	Host string `json:"host,omitempty"`
	// Received is when ctwatch read the line; followers set it, the
	// parser does not.
	Received time.Time `json:"-"`

	// Prefix is the rule's --log-prefix (or nft log prefix), with
	// surrounding white space removed.
	Prefix   string `json:"prefix,omitempty"`
	InIface  string `json:"in_iface,omitempty"`
	OutIface string `json:"out_iface,omitempty"`
	// PhysIn and PhysOut are the bridge ports (br_netfilter only).
	PhysIn  string `json:"phys_in,omitempty"`
	PhysOut string `json:"phys_out,omitempty"`
	// MAC is the link-layer header as the kernel printed it: destination,
	// source and EtherType bytes joined by colons.
	MAC string `json:"mac,omitempty"`

	Src netip.Addr `json:"src,omitzero"`
	Dst netip.Addr `json:"dst,omitzero"`
	// Length is the IP packet length (IPv4 LEN, IPv6 payload + 40).
	Length int `json:"length,omitempty"`
	// TOS is the IPv4 TOS field as printed (TOS & 0x1E), or the IPv6
	// traffic class (TC). Prec is the IPv4 precedence bits (TOS & 0xE0).
	TOS  uint8 `json:"tos,omitempty"`
	Prec uint8 `json:"prec,omitempty"`
	// TTL is the IPv4 TTL or the IPv6 HOPLIMIT.
	TTL int `json:"ttl,omitempty"`
	// ID is the IPv4 identification, or the IPv6 fragment header's
	// identification.
	ID        uint32 `json:"id,omitempty"`
	FlowLabel uint32 `json:"flow_label,omitempty"`
	Flags     Flags  `json:"flags,omitempty"`
	// FragOffset is the fragment offset in bytes; non-zero means the
	// record has no transport header.
	FragOffset uint16 `json:"frag_offset,omitempty"`

	// Proto is the protocol as the kernel printed it ("UDP", "ICMPv6",
	// or a number such as "47"); empty when the record had no PROTO=.
	// ProtoNum is its IP protocol number.
	Proto    string `json:"proto,omitempty"`
	ProtoNum uint8  `json:"proto_num,omitempty"`
	// SrcPort and DstPort are valid when HasPorts (TCP, UDP, UDPLITE).
	SrcPort  uint16 `json:"src_port,omitempty"`
	DstPort  uint16 `json:"dst_port,omitempty"`
	HasPorts bool   `json:"-"`
	// UDPLength is the UDP header's length field.
	UDPLength int `json:"udp_length,omitempty"`
	// ICMPType and ICMPCode are valid when HasICMP.
	ICMPType uint8 `json:"icmp_type,omitempty"`
	ICMPCode uint8 `json:"icmp_code,omitempty"`
	HasICMP  bool  `json:"-"`
	// Incomplete is set when the kernel could not read the whole header
	// it wanted to print ("INCOMPLETE [n bytes]" or "TRUNCATED").
	Incomplete bool   `json:"incomplete,omitempty"`
	Mark       uint32 `json:"mark,omitempty"`

	// HasInner is set when an ICMP error quoted the offending packet in
	// brackets. Inner holds the quoted packet's addresses and ports; they
	// are never copied to the outer fields.
	HasInner bool        `json:"-"`
	Inner    InnerPacket `json:"-"`
}

// InnerPacket is the packet quoted inside an ICMP or ICMPv6 error.
type InnerPacket struct {
	Src      netip.Addr `json:"src,omitzero"`
	Dst      netip.Addr `json:"dst,omitzero"`
	Proto    string     `json:"proto,omitempty"`
	ProtoNum uint8      `json:"proto_num,omitempty"`
	SrcPort  uint16     `json:"src_port,omitempty"`
	DstPort  uint16     `json:"dst_port,omitempty"`
}

// recordJSON is Record's JSON form: the same snake_case names as
// Record's tags, in reading order, with pointers for the fields that are
// present or absent rather than zero.
type recordJSON struct {
	Time      time.Time     `json:"time,omitzero"`
	Clock     Clock         `json:"clock,omitempty"`
	SinceBoot time.Duration `json:"since_boot_ns,omitempty"`
	Seq       uint64        `json:"kmsg_seq,omitempty"`
	Host      string        `json:"host,omitempty"`

	Prefix   string `json:"prefix,omitempty"`
	InIface  string `json:"in_iface,omitempty"`
	OutIface string `json:"out_iface,omitempty"`
	PhysIn   string `json:"phys_in,omitempty"`
	PhysOut  string `json:"phys_out,omitempty"`

	Src      netip.Addr `json:"src,omitzero"`
	Dst      netip.Addr `json:"dst,omitzero"`
	Proto    string     `json:"proto,omitempty"`
	ProtoNum *uint8     `json:"proto_num,omitempty"`
	SrcPort  *uint16    `json:"src_port,omitempty"`
	DstPort  *uint16    `json:"dst_port,omitempty"`

	Length     int    `json:"length,omitempty"`
	TOS        uint8  `json:"tos,omitempty"`
	Prec       uint8  `json:"prec,omitempty"`
	TTL        int    `json:"ttl,omitempty"`
	ID         uint32 `json:"id,omitempty"`
	FlowLabel  uint32 `json:"flow_label,omitempty"`
	Flags      Flags  `json:"flags,omitempty"`
	FragOffset uint16 `json:"frag_offset,omitempty"`

	UDPLength  int          `json:"udp_length,omitempty"`
	ICMPType   *uint8       `json:"icmp_type,omitempty"`
	ICMPCode   *uint8       `json:"icmp_code,omitempty"`
	ICMPInner  bool         `json:"icmp_inner,omitempty"`
	Inner      *InnerPacket `json:"inner,omitempty"`
	Incomplete bool         `json:"incomplete,omitempty"`
	Mark       uint32       `json:"mark,omitempty"`
	MAC        string       `json:"mac,omitempty"`
}

// MarshalJSON writes the record as one JSON object with snake_case keys.
// Ports, ICMP type and code and the protocol number appear exactly when
// the record has them, so port 0 and ICMP type 0 are not lost; the
// quoted packet of an ICMP error appears as "inner".
func (r Record) MarshalJSON() ([]byte, error) {
	out := recordJSON{
		Time: r.Time, Clock: r.Clock, SinceBoot: r.SinceBoot, Seq: r.Seq,
		Host: r.Host, Prefix: r.Prefix, InIface: r.InIface,
		OutIface: r.OutIface, PhysIn: r.PhysIn, PhysOut: r.PhysOut,
		Src: r.Src, Dst: r.Dst, Proto: r.Proto, Length: r.Length,
		TOS: r.TOS, Prec: r.Prec, TTL: r.TTL, ID: r.ID,
		FlowLabel: r.FlowLabel, Flags: r.Flags, FragOffset: r.FragOffset,
		UDPLength: r.UDPLength, ICMPInner: r.HasInner,
		Incomplete: r.Incomplete, Mark: r.Mark, MAC: r.MAC,
	}
	if r.Proto != "" {
		out.ProtoNum = &r.ProtoNum
	}
	if r.HasPorts {
		out.SrcPort, out.DstPort = &r.SrcPort, &r.DstPort
	}
	if r.HasICMP {
		out.ICMPType, out.ICMPCode = &r.ICMPType, &r.ICMPCode
	}
	if r.HasInner {
		out.Inner = &r.Inner
	}
	return json.Marshal(out)
}

// Drop converts a UDP record into the drop event the correlator matches.
// It reports false for other protocols and for records without both
// addresses and ports. Call it only for Firewall results. Drop.Time is
// r.Time, which is zero when the line had no wall-clock stamp and no
// BootClock converted its boot-relative one.
func (r *Record) Drop() (events.Drop, bool) {
	if r.ProtoNum != 17 || r.Proto == "" || !r.HasPorts ||
		!r.Src.IsValid() || !r.Dst.IsValid() {
		return events.Drop{}, false
	}
	return events.Drop{
		Source:   events.SourceKernelLog,
		Time:     r.Time,
		Received: r.Received,
		Prefix:   r.Prefix,
		InIface:  r.InIface,
		OutIface: r.OutIface,
		Proto:    17,
		Src:      netip.AddrPortFrom(r.Src, r.SrcPort),
		Dst:      netip.AddrPortFrom(r.Dst, r.DstPort),
		Length:   r.Length,
		TTL:      r.TTL,
	}, true
}
