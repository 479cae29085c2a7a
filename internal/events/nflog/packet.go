package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Family is the address family of a logged packet, as the kernel reports it
// in the nfgenmsg header of an NFLOG message.
type Family uint8

// Families DecodePacket understands.
const (
	// FamilyUnspec lets DecodePacket pick IPv4 or IPv6 from the version
	// nibble; the reader uses it for bridge and netdev tables, whose
	// messages carry NFPROTO_BRIDGE or NFPROTO_NETDEV instead.
	FamilyUnspec Family = unix.AF_UNSPEC
	FamilyIPv4   Family = unix.AF_INET  // NFPROTO_IPV4
	FamilyIPv6   Family = unix.AF_INET6 // NFPROTO_IPV6
)

// String returns "ipv4", "ipv6", "unspec" or the number.
func (f Family) String() string {
	switch f {
	case FamilyUnspec:
		return "unspec"
	case FamilyIPv4:
		return "ipv4"
	case FamilyIPv6:
		return "ipv6"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// IP protocol numbers DecodePacket looks at.
const (
	protoHopOpts  = unix.IPPROTO_HOPOPTS  // IPv6 hop-by-hop options
	protoUDP      = unix.IPPROTO_UDP      // 17
	protoRouting  = unix.IPPROTO_ROUTING  // IPv6 routing header
	protoFragment = unix.IPPROTO_FRAGMENT // IPv6 fragment header
	protoAH       = unix.IPPROTO_AH       // authentication header
	protoDstOpts  = unix.IPPROTO_DSTOPTS  // IPv6 destination options
)

const (
	ipv4MinHeader = 20
	ipv6Header    = 40
	udpHeader     = 8
	// maxExtHeaders bounds the IPv6 extension header walk. Real packets
	// carry one or two; a long chain is garbage or an evasion attempt.
	maxExtHeaders = 8
)

// Errors DecodePacket returns. Each maps to one Reason in Stats.
var (
	// ErrFamily means the message named a family other than IPv4, IPv6
	// or unspecified.
	ErrFamily = errors.New("unsupported address family")
	// ErrShortIP means the capture is shorter than the IP header.
	ErrShortIP = errors.New("packet shorter than its IP header")
	// ErrIPVersion means the version nibble is not 4 or 6, or does not
	// match the family the kernel reported.
	ErrIPVersion = errors.New("wrong IP version")
	// ErrIPHeader means an IPv4 header length or total length field is
	// impossible.
	ErrIPHeader = errors.New("malformed IP header")
	// ErrFragment means the packet is a non-first fragment: it has no
	// transport header. (Conntrack reassembles before the filter hooks,
	// so this is rare behind a stateful firewall.)
	ErrFragment = errors.New("non-first fragment")
	// ErrIPv6Extension means an IPv6 extension header chain is cut short,
	// too long or malformed.
	ErrIPv6Extension = errors.New("undecodable IPv6 extension headers")
	// ErrShortUDP means the capture ends inside the UDP header.
	ErrShortUDP = errors.New("truncated UDP header")
)

// Packet is the network and transport header of a logged packet.
type Packet struct {
	Family Family
	// Proto is the transport protocol: for IPv6, the header that follows
	// the extension headers DecodePacket skips.
	Proto uint8
	// Src and Dst carry ports only when Proto is UDP.
	Src netip.AddrPort
	Dst netip.AddrPort
	// Length is the packet's length on the wire as its IP header states
	// it, which exceeds the capture when the snap length cut the packet.
	Length int
	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL int
	// Payload is the UDP payload as captured: a slice of the input, cut to
	// the UDP length, and shorter than it when the capture was cut.
	Payload []byte
	// Truncated reports that the capture is shorter than Length.
	Truncated bool
}

// DecodePacket decodes the IP and UDP headers of payload, which starts at
// the IP header as NFLOG delivers it. family is the family of the NFLOG
// message; FamilyUnspec selects by the version nibble. Checksums are not
// verified: a logged packet is evidence whatever its checksum.
//
// Non-UDP packets decode without error and without ports. On error the
// returned Packet holds what was decoded before the failure (for example the
// addresses of a fragment). The errors are ErrFamily, ErrShortIP,
// ErrIPVersion, ErrIPHeader, ErrFragment, ErrIPv6Extension and ErrShortUDP.
func DecodePacket(payload []byte, family Family) (Packet, error) {
	if family == FamilyUnspec && len(payload) > 0 {
		switch payload[0] >> 4 {
		case 4:
			family = FamilyIPv4
		case 6:
			family = FamilyIPv6
		default:
			return Packet{}, ErrIPVersion
		}
	}

	switch family {
	case FamilyIPv4:
		return decodeIPv4(payload)
	case FamilyIPv6:
		return decodeIPv6(payload)
	case FamilyUnspec:
		return Packet{}, ErrShortIP
	}
	return Packet{}, ErrFamily
}

func decodeIPv4(b []byte) (Packet, error) {
	p := Packet{Family: FamilyIPv4}
	if len(b) < ipv4MinHeader {
		return p, ErrShortIP
	}
	if b[0]>>4 != 4 {
		return p, ErrIPVersion
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < ipv4MinHeader || total < ihl {
		return p, ErrIPHeader
	}
	if len(b) < ihl {
		return p, ErrShortIP
	}

	p.Proto = b[9]
	p.TTL = int(b[8])
	p.Length = total
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	p.Src = netip.AddrPortFrom(src, 0)
	p.Dst = netip.AddrPortFrom(dst, 0)

	// Bytes past the total length are link-layer padding, not packet.
	end := min(len(b), total)
	p.Truncated = len(b) < total
	if offset := binary.BigEndian.Uint16(b[6:8]) & 0x1fff; offset != 0 {
		return p, ErrFragment
	}
	if p.Proto != protoUDP {
		return p, nil
	}
	return decodeUDP(p, b[ihl:end])
}

func decodeIPv6(b []byte) (Packet, error) {
	p := Packet{Family: FamilyIPv6}
	if len(b) < ipv6Header {
		return p, ErrShortIP
	}
	if b[0]>>4 != 6 {
		return p, ErrIPVersion
	}

	p.TTL = int(b[7])
	p.Length = ipv6Header + int(binary.BigEndian.Uint16(b[4:6]))
	p.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), 0)
	p.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])), 0)
	end := min(len(b), p.Length)
	p.Truncated = len(b) < p.Length

	next, off := b[6], ipv6Header
	for range maxExtHeaders + 1 {
		var size int
		switch next {
		case protoHopOpts, protoRouting, protoDstOpts:
			if end-off < 2 {
				return p, ErrIPv6Extension
			}
			size = (int(b[off+1]) + 1) * 8
		case protoAH:
			if end-off < 2 {
				return p, ErrIPv6Extension
			}
			size = (int(b[off+1]) + 2) * 4
		case protoFragment:
			if end-off < 8 {
				return p, ErrIPv6Extension
			}
			size = 8
			if binary.BigEndian.Uint16(b[off+2:off+4])>>3 != 0 {
				p.Proto = b[off]
				return p, ErrFragment
			}
		default:
			// The transport header (or ESP, or "no next header").
			p.Proto = next
			if next != protoUDP {
				return p, nil
			}
			return decodeUDP(p, b[off:end])
		}
		if end-off < size {
			return p, ErrIPv6Extension
		}
		next, off = b[off], off+size
	}
	return p, ErrIPv6Extension
}

// decodeUDP adds the UDP header in b (cut to the IP packet's end) to p.
func decodeUDP(p Packet, b []byte) (Packet, error) {
	if len(b) < udpHeader {
		return p, ErrShortUDP
	}
	p.Src = netip.AddrPortFrom(p.Src.Addr(), binary.BigEndian.Uint16(b[0:2]))
	p.Dst = netip.AddrPortFrom(p.Dst.Addr(), binary.BigEndian.Uint16(b[2:4]))
	// A UDP length shorter than the header is malformed and a longer one
	// than the capture is a cut capture: either way keep what we have.
	if n := int(binary.BigEndian.Uint16(b[4:6])); n >= udpHeader && n < len(b) {
		b = b[:n]
	}
	p.Payload = b[udpHeader:]
	return p, nil
}
