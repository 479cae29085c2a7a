package lab

import (
	"fmt"
	"net/netip"
)

// layout is everything a lab's slot decides: names and addresses.
type layout struct {
	slot int
	// name prefixes the namespace names: "ctwlab-PID.START-sSLOT".
	name string

	resolverNS, upstreamNS, outsideNS string

	// Interface names, "ctw<slot><from>2<to>": r2u sits in the resolver
	// namespace and faces the upstream, u2r is its peer, and so on.
	r2u, u2r, r2o, o2r string

	v4, v6 familyLayout
}

// familyLayout holds one address family's addresses.
type familyLayout struct {
	// block covers every address of the lab in this family; the
	// outside namespace routes it towards the resolver.
	block netip.Prefix
	// linkBits is the prefix length of both veth links.
	linkBits int

	// resolverUp and upstream share the resolver-upstream link;
	// resolverOut and outside share the resolver-outside link.
	resolverUp, upstream netip.Addr
	resolverOut, outside netip.Addr
	// inner is the address the resolver's sockets use when SNAT is on;
	// it sits on the resolver's loopback device.
	inner netip.Addr
}

// newLayout derives a lab's names and addresses from its slot. Each slot
// owns 198.18.0.0/15's slot-th /28 and fd00:6374:SLOT::/48.
func newLayout(o owner, slot int) layout {
	name := labName(o, slot)
	ifname := func(s string) string { return fmt.Sprintf("ctw%d%s", slot, s) }
	l := layout{
		slot:       slot,
		name:       name,
		resolverNS: name + "-res",
		upstreamNS: name + "-up",
		outsideNS:  name + "-out",
		r2u:        ifname("r2u"),
		u2r:        ifname("u2r"),
		r2o:        ifname("r2o"),
		o2r:        ifname("o2r"),
	}

	base := 198<<24 | 18<<16 | uint32(slot)<<4
	v4 := func(off uint32) netip.Addr {
		n := base + off
		return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	l.v4 = familyLayout{
		block:       netip.PrefixFrom(v4(0), 28),
		linkBits:    30,
		resolverUp:  v4(1),
		upstream:    v4(2),
		resolverOut: v4(5),
		outside:     v4(6),
		inner:       v4(9),
	}

	v6 := func(subnet uint16, host byte) netip.Addr {
		a := [16]byte{0xfd, 0x00, 0x63, 0x74, byte(slot >> 8), byte(slot)}
		a[6], a[7] = byte(subnet>>8), byte(subnet)
		a[15] = host
		return netip.AddrFrom16(a)
	}
	l.v6 = familyLayout{
		block:       netip.PrefixFrom(v6(0, 0), 48),
		linkBits:    64,
		resolverUp:  v6(1, 1),
		upstream:    v6(1, 2),
		resolverOut: v6(2, 1),
		outside:     v6(2, 2),
		inner:       v6(3, 1),
	}
	return l
}

// mac returns the fixed MAC address of one of the lab's interfaces: a
// locally administered 02:63:74:SS:SS:NN from the slot and the interface.
func (l *layout) mac(ifname string) string {
	n := map[string]int{l.r2u: 1, l.u2r: 2, l.r2o: 3, l.o2r: 4}[ifname]
	return fmt.Sprintf("02:63:74:%02x:%02x:%02x", l.slot>>8, l.slot&0xff, n)
}

// family returns the addresses of family 4 or 6.
func (l *layout) family(family int) *familyLayout {
	if family == 6 {
		return &l.v6
	}
	return &l.v4
}
