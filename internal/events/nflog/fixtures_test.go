package nflog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite the fixtures under testdata/")

// fixture is one generated file under testdata/.
type fixture struct {
	dir, name, comment string
	data               []byte
}

func (f fixture) path() string {
	return filepath.Join("testdata", f.dir, f.name+".hex")
}

// TestFixtures keeps testdata/packets and testdata/dns in step with the
// builders below: with -update it rewrites them, otherwise it fails when a
// file differs, so fixtures are never edited by hand.
func TestFixtures(t *testing.T) {
	for _, f := range append(packetFixtures(), dnsFixtures()...) {
		want := formatHex(f.comment, f.data)
		if *update {
			if err := os.MkdirAll(filepath.Dir(f.path()), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.path(), want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(f.path())
		if err != nil {
			t.Errorf("%v (run go test -run TestFixtures -update)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its builder (run go test -run TestFixtures -update)",
				f.path())
		}
	}
}

// formatHex renders b as commented hex, 16 bytes a line.
func formatHex(comment string, b []byte) []byte {
	var sb strings.Builder
	for line := range strings.SplitSeq(comment, "\n") {
		sb.WriteString("# " + line + "\n")
	}
	for i := 0; i < len(b); i += 16 {
		sb.WriteString(hex.EncodeToString(b[i:min(i+16, len(b))]) + "\n")
	}
	return []byte(sb.String())
}

// parseHex reads what formatHex wrote.
func parseHex(text []byte) ([]byte, error) {
	var digits strings.Builder
	for line := range strings.SplitSeq(string(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	return hex.DecodeString(digits.String())
}

// readFixture loads testdata/dir/name.hex.
func readFixture(t testing.TB, dir, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", dir, name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseHex(text)
	if err != nil {
		t.Fatalf("%s/%s: %v", dir, name, err)
	}
	return b
}

// allFixtures loads every fixture in testdata/dir, for fuzz seeds.
func allFixtures(t testing.TB, dir string) [][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.hex"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	var out [][]byte
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".hex")
		out = append(out, readFixture(t, dir, name))
	}
	return out
}

// addrPorts lets go-cmp compare netip values, which have unexported fields.
func addrPorts() cmp.Option {
	return cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
}

// Lab-range addresses used by the fixtures.
func fixtureAddrs() (src4, dst4, src6, dst6 netip.Addr) {
	return netip.MustParseAddr("198.18.0.53"), netip.MustParseAddr("198.19.7.1"),
		netip.MustParseAddr("fd00:53::53"), netip.MustParseAddr("fd00:7::1")
}

// ipv4Spec describes an IPv4 header for the builders.
type ipv4Spec struct {
	src, dst netip.Addr
	proto    uint8
	ttl      uint8
	options  []byte // a multiple of 4 bytes
	fragment uint16 // flags and offset field, e.g. 0x2000 for MF
	badSum   bool
}

func (h ipv4Spec) build(l4 []byte) []byte {
	ihl := 20 + len(h.options)
	b := make([]byte, ihl, ihl+len(l4))
	b[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(ihl+len(l4)))
	binary.BigEndian.PutUint16(b[4:], 0x5ce1)
	binary.BigEndian.PutUint16(b[6:], h.fragment)
	b[8], b[9] = h.ttl, h.proto
	src, dst := h.src.As4(), h.dst.As4()
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	copy(b[20:], h.options)
	sum := checksum(b)
	if h.badSum {
		sum ^= 0x5a5a
	}
	binary.BigEndian.PutUint16(b[10:], sum)
	return append(b, l4...)
}

// ipv6Spec describes an IPv6 header and its extension headers.
type ipv6Spec struct {
	src, dst netip.Addr
	hopLimit uint8
	// ext are extension headers as (protocol, body); the builder fills in
	// each header's next-header byte.
	ext   []extHeader
	proto uint8 // the protocol after the extension headers
}

type extHeader struct {
	proto uint8
	body  []byte // all of the header; byte 0 is overwritten
}

func (h ipv6Spec) build(l4 []byte) []byte {
	var chain []byte
	for i, e := range h.ext {
		next := h.proto
		if i+1 < len(h.ext) {
			next = h.ext[i+1].proto
		}
		body := append([]byte(nil), e.body...)
		body[0] = next
		chain = append(chain, body...)
	}
	first := h.proto
	if len(h.ext) > 0 {
		first = h.ext[0].proto
	}

	b := make([]byte, 40, 40+len(chain)+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(chain)+len(l4)))
	b[6], b[7] = first, h.hopLimit
	src, dst := h.src.As16(), h.dst.As16()
	copy(b[8:], src[:])
	copy(b[24:], dst[:])
	b = append(b, chain...)
	return append(b, l4...)
}

// optionsHeader is a hop-by-hop or destination options header of n*8
// bytes, padded with PadN.
func optionsHeader(proto uint8, n int) extHeader {
	b := make([]byte, n*8)
	b[1] = byte(n - 1)
	b[2], b[3] = 1, byte(len(b)-4) // PadN over the rest
	return extHeader{proto, b}
}

// fragmentHeader is an IPv6 fragment header at offset (in 8-byte units).
func fragmentHeader(offset uint16, more bool) extHeader {
	b := make([]byte, 8)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xc0ffee)
	return extHeader{protoFragment, b}
}

// udpSegment builds a UDP header and payload with a correct checksum.
func udpSegment(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)

	var pseudo []byte
	pseudo = append(pseudo, src.Addr().AsSlice()...)
	pseudo = append(pseudo, dst.Addr().AsSlice()...)
	if src.Addr().Is4() {
		pseudo = append(pseudo, 0, protoUDP, 0, 0)
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(b)))
	} else {
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(b)))
		pseudo = append(pseudo, 0, 0, 0, protoUDP)
	}
	sum := checksum(append(pseudo, b...))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(b[6:], sum)
	return b
}

// checksum is the Internet checksum of b (with its checksum field zero).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// dnsAnswer packs a response to a query for name/qtype: rcode, recursion
// desired and available, and one answer record on success.
func dnsAnswer(id uint16, name string, qtype uint16, rcode int) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	m.Response = true
	m.RecursionAvailable = true
	m.Rcode = rcode
	if rcode == dns.RcodeSuccess {
		hdr := dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET, Ttl: 30}
		switch qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr,
				A: netip.MustParseAddr("198.18.5.3").AsSlice()})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr,
				AAAA: netip.MustParseAddr("fd00:5::3").AsSlice()})
		}
	}
	return packDNS(m)
}

func packDNS(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic("pack DNS fixture: " + err.Error())
	}
	return b
}

func packetFixtures() []fixture {
	src4, dst4, src6, dst6 := fixtureAddrs()
	s4, d4 := netip.AddrPortFrom(src4, 53), netip.AddrPortFrom(dst4, 40001)
	s6, d6 := netip.AddrPortFrom(src6, 53), netip.AddrPortFrom(dst6, 40002)
	answer := dnsAnswer(0xbeef, "late.example.", dns.TypeA, dns.RcodeSuccess)
	answer6 := dnsAnswer(0xcafe, "late.example.", dns.TypeAAAA, dns.RcodeNameError)
	v4 := ipv4Spec{src: src4, dst: dst4, proto: protoUDP, ttl: 57}
	v6 := ipv6Spec{src: src6, dst: dst6, hopLimit: 58, proto: protoUDP}

	full4 := v4.build(udpSegment(s4, d4, answer))
	reverse := v4
	reverse.src, reverse.dst = dst4, src4
	bad := v4
	bad.badSum = true
	badUDP := udpSegment(s4, d4, answer)
	badUDP[6] ^= 0xff
	opts := v4
	opts.options = []byte{1, 1, 1, 0} // NOP, NOP, NOP, end of list
	later4 := v4
	later4.fragment = 185 // offset 1480 bytes
	first4 := v4
	first4.fragment = 0x2000 // MF, offset 0
	tcp := v4
	tcp.proto = protoTCP
	hop := v6
	hop.ext = []extHeader{optionsHeader(protoHopOpts, 1), optionsHeader(protoDstOpts, 2)}
	frag0 := v6
	frag0.ext = []extHeader{fragmentHeader(0, true)}
	frag1 := v6
	frag1.ext = []extHeader{fragmentHeader(181, false)}
	esp := v6
	esp.proto = 50
	long := v6
	for range maxExtHeaders + 1 {
		long.ext = append(long.ext, optionsHeader(protoDstOpts, 1))
	}
	over := v6
	over.ext = []extHeader{optionsHeader(protoHopOpts, 1)}
	overPkt := over.build(udpSegment(s6, d6, answer6))
	overPkt[41] = 200 // claims 1608 bytes of options
	garbage := make([]byte, 64)
	for i := range garbage {
		garbage[i] = byte(i*37 + 11)
	}
	badIHL := v4.build(udpSegment(s4, d4, answer))
	badIHL[0] = 0x43

	query := []byte{0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	synAck := []byte{0, 53, 0x9c, 0x41, 0, 0, 0, 1, 0, 0, 0, 1,
		0x50, 0x12, 0xff, 0xff, 0, 0, 0, 0}
	pkt := func(name, comment string, data []byte) fixture {
		return fixture{"packets", name, comment, data}
	}
	return []fixture{
		pkt("ipv4-dns-answer",
			"IPv4 UDP 53 -> 40001, DNS answer late.example. A", full4),
		pkt("ipv4-dns-query",
			"IPv4 UDP 40001 -> 53, DNS query (not from the watched port)",
			reverse.build(udpSegment(d4, s4, query))),
		pkt("ipv4-bad-checksums",
			"IPv4 DNS answer with wrong IP and UDP checksums", bad.build(badUDP)),
		pkt("ipv4-options", "IPv4 with 4 bytes of options (IHL 6), DNS answer",
			opts.build(udpSegment(s4, d4, answer))),
		pkt("ipv4-first-fragment",
			"IPv4 first fragment (MF, offset 0) of a DNS answer",
			first4.build(udpSegment(s4, d4, answer))),
		pkt("ipv4-later-fragment", "IPv4 fragment at offset 1480: no UDP header",
			later4.build(answer)),
		pkt("ipv4-tcp", "IPv4 TCP 53 -> 40001 SYN-ACK", tcp.build(synAck)),
		pkt("ipv4-padded", "IPv4 DNS answer followed by 6 bytes of link padding",
			append(append([]byte(nil), full4...), 0, 0, 0, 0, 0, 0)),
		pkt("ipv4-dns-cut",
			"IPv4 DNS answer cut at 44 bytes: DNS header and 4 bytes", full4[:44]),
		pkt("ipv4-dns-header-only",
			"IPv4 DNS answer cut at 40 bytes: DNS header only", full4[:40]),
		pkt("ipv4-udp-cut",
			"IPv4 DNS answer cut at 24 bytes, inside the UDP header", full4[:24]),
		pkt("ipv4-bad-ihl", "IPv4 header claiming IHL 3", badIHL),
		pkt("ipv4-short", "10 bytes of an IPv4 header", full4[:10]),
		pkt("ipv6-dns-answer",
			"IPv6 UDP 53 -> 40002, DNS NXDOMAIN late.example. AAAA",
			v6.build(udpSegment(s6, d6, answer6))),
		pkt("ipv6-ext-headers",
			"IPv6 hop-by-hop (8 B) and destination options (16 B), DNS",
			hop.build(udpSegment(s6, d6, answer6))),
		pkt("ipv6-first-fragment", "IPv6 fragment header offset 0, DNS answer",
			frag0.build(udpSegment(s6, d6, answer6))),
		pkt("ipv6-later-fragment", "IPv6 fragment at offset 1448: no UDP header",
			frag1.build(answer6)),
		pkt("ipv6-esp", "IPv6 ESP: opaque, decodes as protocol 50",
			esp.build([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0xde, 0xad})),
		pkt("ipv6-ext-chain-long", "IPv6 with 9 destination options headers",
			long.build(udpSegment(s6, d6, answer6))),
		pkt("ipv6-ext-overrun", "IPv6 hop-by-hop header longer than the packet",
			overPkt),
		pkt("garbage", "64 bytes of noise with version nibble 0", garbage),
	}
}

// protoTCP is IPPROTO_TCP; the package itself never needs it.
const protoTCP = 6

func dnsFixtures() []fixture {
	answer := dnsAnswer(0xbeef, "late.example.", dns.TypeA, dns.RcodeSuccess)
	name := len("\x04late\x07example\x00")

	query := new(dns.Msg)
	query.SetQuestion("www.example.", dns.TypeAAAA)
	query.Id = 0x0102

	noQuestion := new(dns.Msg)
	noQuestion.Id = 0x0203
	noQuestion.Response = true
	noQuestion.Rcode = dns.RcodeFormatError

	flags := new(dns.Msg)
	flags.SetQuestion("flags.example.", dns.TypeTXT)
	flags.Id = 0x0304
	flags.Response, flags.Authoritative, flags.Truncated = true, true, true
	flags.RecursionAvailable, flags.Zero = true, true
	flags.AuthenticatedData, flags.CheckingDisabled = true, true
	flags.Opcode = dns.OpcodeNotify
	flags.Rcode = dns.RcodeRefused

	odd := new(dns.Msg)
	odd.SetQuestion(`we\.ird\032label.example.`, 65280)
	odd.Id = 0x0405

	update := new(dns.Msg)
	update.SetUpdate("example.")
	update.Id = 0x0506

	header := []byte{0x06, 0x07, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}
	loop := append(append([]byte(nil), header...), 0xc0, 0x0c, 0, 1, 0, 1)
	reserved := append(append([]byte(nil), header...), 0x80, 'x', 0, 0, 1, 0, 1)

	return []fixture{
		{"dns", "answer", "DNS answer late.example. A, rd ra", answer},
		{"dns", "query", "DNS query www.example. AAAA, rd", packDNS(query)},
		{"dns", "no-question", "DNS FORMERR response without a question", packDNS(noQuestion)},
		{"dns", "all-flags", "DNS NOTIFY response, every flag, REFUSED", packDNS(flags)},
		{"dns", "odd-name", `DNS query for we\.ird\032label.example. TYPE65280`, packDNS(odd)},
		{"dns", "update", "DNS UPDATE for zone example.", packDNS(update)},
		{"dns", "header-only", "DNS answer cut to its 12-byte header", answer[:12]},
		{"dns", "name-cut", "DNS answer cut inside the question name", answer[:17]},
		{"dns", "type-cut", "DNS answer cut after the name, inside the type",
			answer[:12+name+1]},
		{"dns", "pointer-loop", "DNS question whose name points at itself", loop},
		{"dns", "reserved-label", "DNS question with a reserved label type (0x80)", reserved},
		{"dns", "eleven-bytes", "11 bytes: shorter than a DNS header", answer[:11]},
	}
}
