package lab

import (
	"encoding/binary"
	"net/netip"
)

// Header sizes.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
)

// udpPacket builds a complete IPv4 or IPv6 packet carrying one UDP
// datagram, with checksums, for a raw socket that includes headers.
// src and dst must be of the same family.
func udpPacket(src, dst netip.AddrPort, payload []byte, ipID uint16) []byte {
	udpLen := udpHeaderLen + len(payload)
	udp := make([]byte, udpLen)
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[udpHeaderLen:], payload)

	// The UDP checksum covers a pseudo-header of both addresses, the
	// protocol and the UDP length.
	sum := checksumAdd(0, src.Addr().AsSlice())
	sum = checksumAdd(sum, dst.Addr().AsSlice())
	sum += 17 + uint32(udpLen)
	sum = checksumAdd(sum, udp)
	csum := checksumFold(sum)
	if csum == 0 {
		csum = 0xffff // zero means "no checksum"
	}
	binary.BigEndian.PutUint16(udp[6:], csum)

	if src.Addr().Is4() {
		ip := make([]byte, ipv4HeaderLen, ipv4HeaderLen+udpLen)
		ip[0] = 4<<4 | ipv4HeaderLen/4
		binary.BigEndian.PutUint16(ip[2:], uint16(ipv4HeaderLen+udpLen))
		binary.BigEndian.PutUint16(ip[4:], ipID)
		ip[6] = 0x40 // don't fragment
		ip[8] = 64   // TTL
		ip[9] = 17   // UDP
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], checksumFold(checksumAdd(0, ip)))
		return append(ip, udp...)
	}

	ip := make([]byte, ipv6HeaderLen, ipv6HeaderLen+udpLen)
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
	ip[6] = 17 // next header: UDP
	ip[7] = 64 // hop limit
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(ip, udp...)
}

// checksumAdd adds b to a running one's-complement sum as 16-bit words.
func checksumAdd(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// checksumFold folds a running sum into the Internet checksum.
func checksumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
