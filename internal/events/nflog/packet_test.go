package nflog

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodePacket(t *testing.T) {
	src4, dst4, src6, dst6 := fixtureAddrs()
	s4, d4 := netip.AddrPortFrom(src4, 53), netip.AddrPortFrom(dst4, 40001)
	s6, d6 := netip.AddrPortFrom(src6, 53), netip.AddrPortFrom(dst6, 40002)
	a4, b4 := netip.AddrPortFrom(src4, 0), netip.AddrPortFrom(dst4, 0)
	a6, b6 := netip.AddrPortFrom(src6, 0), netip.AddrPortFrom(dst6, 0)

	// The DNS answer in the IPv4 fixtures is 58 bytes (UDP 66, IP 86), the
	// NXDOMAIN in the IPv6 ones 30 bytes (UDP 38).
	answer4 := Packet{Family: FamilyIPv4, Proto: 17, Src: s4, Dst: d4, Length: 86, TTL: 57}
	answer6 := Packet{Family: FamilyIPv6, Proto: 17, Src: s6, Dst: d6, Length: 78, TTL: 58}
	with := func(p Packet, edit func(*Packet)) Packet {
		edit(&p)
		return p
	}

	tests := []struct {
		name    string
		file    string
		data    []byte // instead of file
		family  Family
		want    Packet
		payload int // len(Packet.Payload)
		wantErr error
	}{
		{name: "ipv4 answer", file: "ipv4-dns-answer", family: FamilyIPv4,
			want: answer4, payload: 58},
		{name: "ipv4 answer, family from version", file: "ipv4-dns-answer",
			family: FamilyUnspec, want: answer4, payload: 58},
		{name: "ipv4 query to port 53", file: "ipv4-dns-query", family: FamilyIPv4,
			want: with(answer4, func(p *Packet) {
				p.Src, p.Dst, p.Length = d4, s4, 40
			}), payload: 12},
		{name: "bad checksums are ignored", file: "ipv4-bad-checksums",
			family: FamilyIPv4, want: answer4, payload: 58},
		{name: "ipv4 options", file: "ipv4-options", family: FamilyIPv4,
			want: with(answer4, func(p *Packet) { p.Length = 90 }), payload: 58},
		{name: "ipv4 first fragment", file: "ipv4-first-fragment",
			family: FamilyIPv4, want: answer4, payload: 58},
		{name: "ipv4 later fragment", file: "ipv4-later-fragment", family: FamilyIPv4,
			want: with(answer4, func(p *Packet) {
				p.Src, p.Dst, p.Length = a4, b4, 78
			}), wantErr: ErrFragment},
		{name: "ipv4 tcp", file: "ipv4-tcp", family: FamilyIPv4,
			want: with(answer4, func(p *Packet) {
				p.Proto, p.Src, p.Dst, p.Length = 6, a4, b4, 40
			})},
		{name: "link padding is cut", file: "ipv4-padded", family: FamilyIPv4,
			want: answer4, payload: 58},
		{name: "snap length inside dns", file: "ipv4-dns-cut", family: FamilyIPv4,
			want: with(answer4, func(p *Packet) { p.Truncated = true }), payload: 16},
		{name: "snap length at dns header", file: "ipv4-dns-header-only",
			family: FamilyIPv4,
			want:   with(answer4, func(p *Packet) { p.Truncated = true }), payload: 12},
		{name: "snap length inside udp", file: "ipv4-udp-cut", family: FamilyIPv4,
			want: with(answer4, func(p *Packet) {
				p.Src, p.Dst, p.Truncated = a4, b4, true
			}), wantErr: ErrShortUDP},
		{name: "ipv4 bad ihl", file: "ipv4-bad-ihl", family: FamilyIPv4,
			want: Packet{Family: FamilyIPv4}, wantErr: ErrIPHeader},
		{name: "ipv4 short", file: "ipv4-short", family: FamilyIPv4,
			want: Packet{Family: FamilyIPv4}, wantErr: ErrShortIP},
		{name: "ipv4 bytes in an ipv6 message", file: "ipv4-dns-answer",
			family: FamilyIPv6, want: Packet{Family: FamilyIPv6}, wantErr: ErrIPVersion},
		{name: "unknown family", file: "ipv4-dns-answer", family: Family(7),
			wantErr: ErrFamily},
		{name: "empty", data: []byte{}, family: FamilyUnspec, wantErr: ErrShortIP},
		{name: "ipv6 answer", file: "ipv6-dns-answer", family: FamilyIPv6,
			want: answer6, payload: 30},
		{name: "ipv6 answer, family from version", file: "ipv6-dns-answer",
			family: FamilyUnspec, want: answer6, payload: 30},
		{name: "ipv6 extension headers", file: "ipv6-ext-headers", family: FamilyIPv6,
			want: with(answer6, func(p *Packet) { p.Length = 102 }), payload: 30},
		{name: "ipv6 first fragment", file: "ipv6-first-fragment", family: FamilyIPv6,
			want: with(answer6, func(p *Packet) { p.Length = 86 }), payload: 30},
		{name: "ipv6 later fragment", file: "ipv6-later-fragment", family: FamilyIPv6,
			want: with(answer6, func(p *Packet) {
				p.Src, p.Dst = a6, b6
			}), wantErr: ErrFragment},
		{name: "ipv6 esp", file: "ipv6-esp", family: FamilyIPv6,
			want: with(answer6, func(p *Packet) {
				p.Proto, p.Src, p.Dst, p.Length = 50, a6, b6, 50
			})},
		{name: "ipv6 too many extension headers", file: "ipv6-ext-chain-long",
			family: FamilyIPv6,
			want: with(answer6, func(p *Packet) {
				p.Proto, p.Src, p.Dst, p.Length = 0, a6, b6, 150
			}), wantErr: ErrIPv6Extension},
		{name: "ipv6 extension header overrun", file: "ipv6-ext-overrun",
			family: FamilyIPv6,
			want: with(answer6, func(p *Packet) {
				p.Proto, p.Src, p.Dst, p.Length = 0, a6, b6, 86
			}), wantErr: ErrIPv6Extension},
		{name: "garbage", file: "garbage", family: FamilyUnspec, wantErr: ErrIPVersion},
		{name: "garbage as ipv4", file: "garbage", family: FamilyIPv4,
			want: Packet{Family: FamilyIPv4}, wantErr: ErrIPVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data
			if tt.file != "" {
				data = readFixture(t, "packets", tt.file)
			}

			got, err := DecodePacket(data, tt.family)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if len(got.Payload) != tt.payload {
				t.Errorf("len(Payload) = %d, want %d", len(got.Payload), tt.payload)
			}
			got.Payload = nil
			if diff := cmp.Diff(tt.want, got, addrPorts()); diff != "" {
				t.Errorf("packet mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFamilyString(t *testing.T) {
	for f, want := range map[Family]string{
		FamilyUnspec: "unspec", FamilyIPv4: "ipv4", FamilyIPv6: "ipv6",
		Family(7): "Family(7)",
	} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %q, want %q", uint8(f), got, want)
		}
	}
}
