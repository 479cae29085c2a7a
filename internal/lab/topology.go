package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// addressAdd is the `ip` command that adds p to dev; IPv6 addresses skip
// duplicate address detection.
func addressAdd(p netip.Prefix, dev string) string {
	cmd := fmt.Sprintf("address add %s dev %s", p, dev)
	if p.Addr().Is6() {
		cmd += " nodad"
	}
	return cmd
}

// batch runs `ip -batch -` inside the namespace, one command a line.
func (n *Netns) batch(ctx context.Context, lines []string) error {
	stdin := strings.Join(lines, "\n") + "\n"
	if _, err := n.run(ctx, stdin, "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("configure netns %s: %w", n.Name, err)
	}
	return nil
}

// baseSysctls are set in every lab namespace before any interface
// exists, so interfaces inherit them: no duplicate address detection
// (addresses are usable at once) and no router advertisements.
var baseSysctls = []sysctl{
	{"net.ipv6.conf.all.accept_dad", "0"},
	{"net.ipv6.conf.default.accept_dad", "0"},
	{"net.ipv6.conf.all.accept_ra", "0"},
	{"net.ipv6.conf.default.accept_ra", "0"},
}

// resolverSysctls returns the resolver namespace's conntrack and
// reverse-path settings. Spoofed packets arrive on r2o with a source
// routed via r2u, which strict reverse-path filtering would discard.
func resolverSysctls(cfg Config) []sysctl {
	timeout := strconv.Itoa(int(cfg.UDPTimeout.Seconds()))
	flag := func(on bool) string {
		if on {
			return "1"
		}
		return "0"
	}
	return []sysctl{
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.netfilter.nf_conntrack_udp_timeout", timeout},
		{"net.netfilter.nf_conntrack_udp_timeout_stream", timeout},
		{"net.netfilter.nf_conntrack_timestamp", flag(cfg.Timestamps)},
		{"net.netfilter.nf_conntrack_acct", flag(cfg.Accounting)},
	}
}

// wire creates both veth pairs straight inside the lab namespaces (they
// never exist in the caller's namespace), addresses them and brings them
// up. The outside namespace routes the lab's blocks towards the resolver;
// the upstream needs only its link, since it talks to the resolver's
// egress address alone.
//
// Every neighbour is entered permanently, with MAC addresses fixed from
// the slot, so no packet waits for ARP or neighbour discovery: a first
// packet that did could arrive a second late and spoil the ground truth.
func (l *Lab) wire(ctx context.Context) error {
	lay := &l.layout
	addr := func(a netip.Addr, fl *familyLayout, dev string) string {
		return addressAdd(netip.PrefixFrom(a, fl.linkBits), dev)
	}
	neigh := func(a netip.Addr, mac, dev string) string {
		return fmt.Sprintf("neighbour replace %s lladdr %s dev %s nud permanent", a, mac, dev)
	}
	veth := func(name, peer, ns string) string {
		return fmt.Sprintf("link add %s address %s type veth peer name %s address %s netns %s",
			name, lay.mac(name), peer, lay.mac(peer), ns)
	}

	res := []string{
		veth(lay.r2u, lay.u2r, lay.upstreamNS),
		veth(lay.r2o, lay.o2r, lay.outsideNS),
		"link set lo up", "link set " + lay.r2u + " up", "link set " + lay.r2o + " up",
	}
	up := []string{"link set lo up", "link set " + lay.u2r + " up"}
	out := []string{"link set lo up", "link set " + lay.o2r + " up"}
	for _, fl := range []*familyLayout{&lay.v4, &lay.v6} {
		res = append(res,
			addr(fl.resolverUp, fl, lay.r2u),
			addr(fl.resolverOut, fl, lay.r2o),
			neigh(fl.upstream, lay.mac(lay.u2r), lay.r2u),
			neigh(fl.outside, lay.mac(lay.o2r), lay.r2o))
		if l.cfg.SNAT {
			inner := netip.PrefixFrom(fl.inner, fl.inner.BitLen())
			res = append(res, addressAdd(inner, "lo"))
		}
		up = append(up,
			addr(fl.upstream, fl, lay.u2r),
			neigh(fl.resolverUp, lay.mac(lay.r2u), lay.u2r))
		out = append(out,
			addr(fl.outside, fl, lay.o2r),
			neigh(fl.resolverOut, lay.mac(lay.r2o), lay.o2r),
			fmt.Sprintf("route add %s via %s dev %s", fl.block, fl.resolverOut, lay.o2r))
	}

	if err := l.resolver.batch(ctx, res); err != nil {
		return err
	}
	err := l.resolver.setSysctls(sysctl{"net.ipv4.conf." + lay.r2o + ".rp_filter", "0"})
	if err != nil {
		return err
	}
	if err := l.upstream.batch(ctx, up); err != nil {
		return err
	}
	return l.outside.batch(ctx, out)
}
