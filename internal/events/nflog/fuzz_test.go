package nflog

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/internal/events"
)

func FuzzDecodePacket(f *testing.F) {
	for _, b := range allFixtures(f, "packets") {
		for _, fam := range []Family{FamilyUnspec, FamilyIPv4, FamilyIPv6} {
			f.Add(b, uint8(fam))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, family uint8) {
		p, err := DecodePacket(b, Family(family))
		if err != nil {
			if reasonOf(err) == ReasonMessage {
				t.Fatalf("error %v is not one of the documented ones", err)
			}
			return
		}
		switch p.Family {
		case FamilyIPv4:
			if p.Length < ipv4MinHeader {
				t.Fatalf("IPv4 Length %d below the header size", p.Length)
			}
		case FamilyIPv6:
			if p.Length < ipv6Header {
				t.Fatalf("IPv6 Length %d below the header size", p.Length)
			}
		default:
			t.Fatalf("decoded family %v", p.Family)
		}
		if p.Src.Addr().Is4() != (p.Family == FamilyIPv4) {
			t.Fatalf("address %v in a %v packet", p.Src, p.Family)
		}
		if p.Proto != protoUDP && (p.Src.Port() != 0 || p.Payload != nil) {
			t.Fatalf("protocol %d with ports or payload: %+v", p.Proto, p)
		}
		if len(p.Payload) > len(b) || p.Truncated != (len(b) < p.Length) {
			t.Fatalf("payload %d bytes, truncated %v, from %d bytes of %d",
				len(p.Payload), p.Truncated, len(b), p.Length)
		}
	})
}

func FuzzDecodeDNS(f *testing.F) {
	for _, b := range allFixtures(f, "dns") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := DecodeDNS(b)
		if len(b) < dnsHeader {
			if info != nil || !errors.Is(err, ErrShortDNS) {
				t.Fatalf("%d bytes: %+v, %v, want nil, ErrShortDNS", len(b), info, err)
			}
			return
		}
		if info == nil {
			t.Fatalf("no header from %d bytes: %v", len(b), err)
		}
		if info.ID != binary.BigEndian.Uint16(b) || info.Response != (b[2]&0x80 != 0) ||
			info.Opcode != (b[2]>>3)&0x0f || info.Rcode != uint16(b[3]&0x0f) {
			t.Fatalf("header %+v does not match % x", info, b[:4])
		}
		if err != nil && !errors.Is(err, ErrDNSTruncated) &&
			!errors.Is(err, ErrDNSMalformed) {
			t.Fatalf("undocumented error %v", err)
		}
		if err == nil && binary.BigEndian.Uint16(b[4:]) != 0 && info.Type == "" {
			t.Fatalf("question without type and no error: %+v", info)
		}
	})
}

// FuzzParseRecord feeds NFLOG message bodies through the whole decode path
// of a socketless Reader: every message must end as exactly one Drop or one
// counted reason (DNS failures come on top of a Drop).
func FuzzParseRecord(f *testing.F) {
	for _, b := range allFixtures(f, "messages") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := testReader(t)
		msg := netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | msgPacket)},
			Data:   b,
		}
		var drops int
		r.handle(msg, time.Now(), func(d events.Drop) {
			drops++
			if d.Source != events.SourceNFLOG || d.Time.IsZero() {
				t.Errorf("drop without source or time: %+v", d)
			}
		})

		st := r.Stats()
		var failures uint64
		for reason, n := range st.DecodeErrors {
			switch reason {
			case ReasonShortDNS, ReasonDNSTruncated, ReasonDNSMalformed:
				if drops == 0 && n != 0 {
					t.Fatalf("DNS failure %v counted without a drop", reason)
				}
			default:
				failures += n
			}
		}
		if st.Messages != 1 || uint64(drops)+failures != 1 || st.Drops != uint64(drops) {
			t.Fatalf("one message gave %d drops and stats %+v", drops, st)
		}
	})
}
