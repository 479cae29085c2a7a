package events

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ctEvent builds a ctnetlink event message laid out the way the kernel
// builds one: nlmsghdr, nfgenmsg, then CTA_TUPLE_ORIG first.
func ctEvent(t *testing.T, family uint8, src, dst netip.Addr, proto uint8, sport, dport uint16) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.Nested(1|unix.NLA_F_NESTED, func(ae *netlink.AttributeEncoder) error { // CTA_TUPLE_ORIG
		ae.Nested(1|unix.NLA_F_NESTED, func(ae *netlink.AttributeEncoder) error { // CTA_TUPLE_IP
			if family == unix.AF_INET {
				ae.Bytes(1, src.AsSlice())
				ae.Bytes(2, dst.AsSlice())
			} else {
				ae.Bytes(3, src.AsSlice())
				ae.Bytes(4, dst.AsSlice())
			}
			return nil
		})
		ae.Nested(2|unix.NLA_F_NESTED, func(ae *netlink.AttributeEncoder) error { // CTA_TUPLE_PROTO
			ae.Uint8(1, proto)
			ae.Do(2, func() ([]byte, error) { return binary.BigEndian.AppendUint16(nil, sport), nil })
			ae.Do(3, func() ([]byte, error) { return binary.BigEndian.AppendUint16(nil, dport), nil })
			return nil
		})
		return nil
	})
	ae.Uint32(3, 0) // CTA_STATUS, as a stand-in for the rest
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 20, 20+len(attrs))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(20+len(attrs)))
	binary.NativeEndian.PutUint16(msg[4:6], 1<<8|0) // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
	msg[16] = family
	return append(msg, attrs...)
}

func TestFilterProgram(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	v6a, v6b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	tests := []struct {
		name string
		msg  func(t *testing.T) []byte
		keep bool
	}{
		{"ipv4 udp to 53", func(t *testing.T) []byte { return ctEvent(t, unix.AF_INET, v4a, v4b, unix.IPPROTO_UDP, 40000, 53) }, true},
		{"ipv6 udp to 53", func(t *testing.T) []byte { return ctEvent(t, unix.AF_INET6, v6a, v6b, unix.IPPROTO_UDP, 40000, 53) }, true},
		{"ipv4 tcp to 53", func(t *testing.T) []byte { return ctEvent(t, unix.AF_INET, v4a, v4b, unix.IPPROTO_TCP, 40000, 53) }, false},
		{"ipv6 tcp to 443", func(t *testing.T) []byte { return ctEvent(t, unix.AF_INET6, v6a, v6b, unix.IPPROTO_TCP, 40000, 443) }, false},
		{"ipv4 udp to 5353", func(t *testing.T) []byte { return ctEvent(t, unix.AF_INET, v4a, v4b, unix.IPPROTO_UDP, 40000, 5353) }, false},
		{"ipv4 udp from 53", func(t *testing.T) []byte { return ctEvent(t, unix.AF_INET, v4a, v4b, unix.IPPROTO_UDP, 53, 40000) }, false},
		{"unknown family kept for userspace", func(t *testing.T) []byte {
			b := ctEvent(t, unix.AF_INET, v4a, v4b, unix.IPPROTO_TCP, 1, 2)
			b[offFamily] = 7
			return b
		}, true},
		{"unexpected layout kept for userspace", func(t *testing.T) []byte {
			b := ctEvent(t, unix.AF_INET, v4a, v4b, unix.IPPROTO_TCP, 1, 2)
			b[offV4ProtoNestType] = 9
			return b
		}, true},
		{"short message dropped", func(t *testing.T) []byte { return make([]byte, 8) }, false},
	}

	raw, err := filterProgram(53)
	if err != nil {
		t.Fatal(err)
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("program rejected by the BPF verifier model: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := vm.Run(tt.msg(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := n != 0; got != tt.keep {
				t.Errorf("kept = %v, want %v", got, tt.keep)
			}
		})
	}
}

// TestFilterMatchesDecoder checks the offsets the filter relies on against
// the library that decodes the same bytes.
func TestFilterMatchesDecoder(t *testing.T) {
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
		if fam == unix.AF_INET6 {
			src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		}
		b := ctEvent(t, fam, src, dst, unix.IPPROTO_UDP, 40000, 53)
		var ev conntrack.Event
		err := ev.Unmarshal(netlink.Message{
			Header: netlink.Header{Length: uint32(len(b)), Type: netlink.HeaderType(binary.NativeEndian.Uint16(b[4:6]))},
			Data:   b[16:],
		})
		if err != nil {
			t.Fatalf("family %d: decode: %v", fam, err)
		}
		got := ev.Flow.TupleOrig
		if got.IP.SourceAddress != src || got.Proto.DestinationPort != 53 || got.Proto.Protocol != unix.IPPROTO_UDP {
			t.Errorf("family %d: decoded %v", fam, got)
		}
	}
}
