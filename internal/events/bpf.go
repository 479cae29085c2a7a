package events

import (
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets into a ctnetlink event message, as the kernel lays it out in
// ctnetlink_conntrack_event (net/netfilter/nf_conntrack_netlink.c): the
// 16-byte nlmsghdr, the 4-byte nfgenmsg whose first byte is the L3 family,
// then CTA_TUPLE_ORIG as the very first attribute, holding CTA_TUPLE_IP
// (two address attributes) and CTA_TUPLE_PROTO (CTA_PROTO_NUM, then the
// source and destination ports, big-endian).
//
// Attribute headers are in host byte order while classic BPF loads are
// big-endian, so the filter checks attribute types one byte at a time (the
// low byte comes first on little-endian hosts, which is all ctwatch targets).
const (
	offFamily = 16

	// IPv4: CTA_TUPLE_IP is 4 + 8 + 8 bytes long.
	offV4ProtoNestType = 46 // type of CTA_TUPLE_PROTO
	offV4ProtoNumType  = 50 // type of CTA_PROTO_NUM
	offV4ProtoNum      = 52
	offV4DstPortType   = 66 // type of CTA_PROTO_DST_PORT
	offV4DstPort       = 68

	// IPv6: CTA_TUPLE_IP is 4 + 20 + 20 bytes long, 24 more than IPv4.
	v6Shift = 24

	ctaTupleProto   = 2
	ctaProtoNum     = 1
	ctaProtoDstPort = 3
)

// filterProgram returns a socket filter that keeps ctnetlink events of UDP
// flows whose original destination port is port and discards the rest in
// the kernel, before they take space in the receive buffer.
//
// A message whose layout is not the one described above (a future kernel,
// another family) is accepted, so the userspace check decides: the filter
// may only ever let too much through, never too little.
func filterProgram(port uint16) ([]bpf.RawInstruction, error) {
	const (
		accept = 0xffffffff
		reject = 0
	)
	// Each family block checks: attribute types where expected (else
	// accept), protocol UDP (else reject), destination port (else reject).
	family := func(shift uint32) []bpf.Instruction {
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: offV4ProtoNestType + shift, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ctaTupleProto, SkipFalse: 9},
			bpf.LoadAbsolute{Off: offV4ProtoNumType + shift, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ctaProtoNum, SkipFalse: 7},
			bpf.LoadAbsolute{Off: offV4DstPortType + shift, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ctaProtoDstPort, SkipFalse: 5},
			bpf.LoadAbsolute{Off: offV4ProtoNum + shift, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipFalse: 2},
			bpf.LoadAbsolute{Off: offV4DstPort + shift, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipTrue: 1},
			bpf.RetConstant{Val: reject},
			bpf.RetConstant{Val: accept},
		}
	}

	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offFamily, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_INET, SkipFalse: 12},
	}
	prog = append(prog, family(0)...)
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_INET6, SkipFalse: 12},
	)
	prog = append(prog, family(v6Shift)...)
	prog = append(prog, bpf.RetConstant{Val: accept})

	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble socket filter: %w", err)
	}
	return raw, nil
}
