package lab

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestUDPPacketChecksums(t *testing.T) {
	payload, err := buildAnswer(7, "x.lab.test.", dns.TypeA, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		src, dst netip.AddrPort
	}{
		{"ipv4", netip.MustParseAddrPort("198.18.0.2:53"), netip.MustParseAddrPort("198.18.0.1:4000")},
		{"ipv6", netip.MustParseAddrPort("[fd00::2]:53"), netip.MustParseAddrPort("[fd00::1]:4000")},
		{"odd payload", netip.MustParseAddrPort("198.18.0.2:53"), netip.MustParseAddrPort("198.18.0.1:4001")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := payload
			if tt.name == "odd payload" {
				body = append(append([]byte(nil), payload...), 0xab)
			}
			pkt := udpPacket(tt.src, tt.dst, body, 99)
			hdr := ipv6HeaderLen
			if tt.src.Addr().Is4() {
				hdr = ipv4HeaderLen
				if got := checksumFold(checksumAdd(0, pkt[:hdr])); got != 0 {
					t.Errorf("IPv4 header checksum does not verify: %#x", got)
				}
			}
			udp := pkt[hdr:]
			if len(udp) != udpHeaderLen+len(body) {
				t.Fatalf("UDP length %d, want %d", len(udp), udpHeaderLen+len(body))
			}
			// A correct checksum makes the sum over pseudo-header and
			// datagram fold to zero.
			sum := checksumAdd(0, tt.src.Addr().AsSlice())
			sum = checksumAdd(sum, tt.dst.Addr().AsSlice())
			sum += 17 + uint32(len(udp))
			if got := checksumFold(checksumAdd(sum, udp)); got != 0 {
				t.Errorf("UDP checksum does not verify: %#x", got)
			}
			name, id, ok := dnsInPacket(pkt)
			if !ok || name != "x.lab.test." || id != 7 {
				t.Errorf("payload decodes to %q id %d (%v)", name, id, ok)
			}
		})
	}
}

func TestAnswerIndexRoundTrip(t *testing.T) {
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		for _, index := range []int{0, 1, 255, 256, maxAnswers - 1} {
			for _, oversize := range []bool{false, true} {
				b, err := buildAnswer(1, "q1.lab.test.", qtype, index, oversize)
				if err != nil {
					t.Fatal(err)
				}
				if oversize && len(b)+ipv4HeaderLen+udpHeaderLen <= oversizeLimit {
					t.Errorf("oversize answer is only %d bytes", len(b))
				}
				if len(b)+ipv6HeaderLen+udpHeaderLen > 1500 {
					t.Errorf("answer of %d bytes does not fit a 1500-byte MTU", len(b))
				}
				var m dns.Msg
				if err := m.Unpack(b); err != nil {
					t.Fatal(err)
				}
				if got, ok := answerIndex(&m); !ok || got != index {
					t.Errorf("type %d index %d decodes to %d (%v)", qtype, index, got, ok)
				}
			}
		}
	}
}
