package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/ctwatch/ctwatch/internal/events"
)

const dnsHeader = 12

// Errors DecodeDNS returns. Each maps to one Reason in Stats.
var (
	// ErrShortDNS means fewer than the 12 bytes of a DNS header.
	ErrShortDNS = errors.New("shorter than a DNS header")
	// ErrDNSTruncated means the header is intact but the capture ends
	// inside the first question (usually the snap length).
	ErrDNSTruncated = errors.New("DNS question truncated")
	// ErrDNSMalformed means the first question cannot be decoded: a bad
	// compression pointer, an over-long name or a reserved label type.
	ErrDNSMalformed = errors.New("malformed DNS question")
)

// DecodeDNS decodes the header and the first question of the DNS message
// in b, a UDP payload that may have been cut by the snap length.
//
// With at least 12 bytes DecodeDNS always returns the header. When the first
// question is missing because the header counts none, Name and Type are
// empty and the error is nil. When it is cut short or malformed, DecodeDNS
// returns the header, with whatever of the question it could read, together
// with an error wrapping ErrDNSTruncated or ErrDNSMalformed. Fewer than 12
// bytes give a nil DNSInfo and ErrShortDNS.
func DecodeDNS(b []byte) (*events.DNSInfo, error) {
	if len(b) < dnsHeader {
		return nil, ErrShortDNS
	}
	// Unpacking just the header never fails on 12 bytes; the question is
	// decoded by hand below so that a cut answer section, which the snap
	// length makes common, is not an error.
	var m dns.Msg
	if err := m.Unpack(b[:dnsHeader]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShortDNS, err)
	}
	info := &events.DNSInfo{
		ID:       m.Id,
		Response: m.Response,
		Opcode:   uint8(m.Opcode),
		Rcode:    uint16(m.Rcode),
		Flags:    headerFlags(&m.MsgHdr),
	}
	if binary.BigEndian.Uint16(b[4:6]) == 0 {
		return info, nil
	}

	name, off, err := dns.UnpackDomainName(b, dnsHeader)
	if err != nil {
		if errors.Is(err, dns.ErrBuf) {
			return info, fmt.Errorf("%w: name: %w", ErrDNSTruncated, err)
		}
		return info, fmt.Errorf("%w: name: %w", ErrDNSMalformed, err)
	}
	info.Name = name
	if len(b)-off < 4 {
		return info, fmt.Errorf("%w: no type and class", ErrDNSTruncated)
	}
	info.Type = dns.Type(binary.BigEndian.Uint16(b[off:])).String()
	return info, nil
}

// headerFlags lists the set header bits in dig's order, e.g. "qr rd ra".
func headerFlags(h *dns.MsgHdr) string {
	var sb strings.Builder
	add := func(set bool, name string) {
		if !set {
			return
		}
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(name)
	}
	add(h.Response, "qr")
	add(h.Authoritative, "aa")
	add(h.Truncated, "tc")
	add(h.RecursionDesired, "rd")
	add(h.RecursionAvailable, "ra")
	add(h.Zero, "z")
	add(h.AuthenticatedData, "ad")
	add(h.CheckingDisabled, "cd")
	return sb.String()
}
