package lab

import (
	"context"
	"fmt"
)

// The resolver's INPUT chain, in either form:
//
//  1. accept loopback;
//  2. log and drop UDP from port 53 longer than oversizeLimit bytes. This
//     rule sits before the stateful accept on purpose ("wrong rule
//     order"): it drops answers of live flows, which ctwatch must call
//     tracked, not late;
//  3. accept UDP from port 53 in state ESTABLISHED or RELATED, the rule
//     that keeps conntrack active in the namespace;
//  4. log and drop any other UDP from port 53: late answers and
//     unsolicited packets;
//  5. accept other established traffic, ICMP and ICMPv6 (neighbour
//     discovery needs it), and drop the rest by policy.
//
// With SNAT, a postrouting rule rewrites the inner source address to the
// r2u address.

// oversizeLimit is the largest packet, IP header included, that the
// oversize rule lets through to the stateful accept.
const oversizeLimit = 1200

// Rule tags: nft counter names, and iptables rule comments.
const (
	tagDrop     = "ctwlab-drop"
	tagOversize = "ctwlab-oversize"
)

// RuleCounters are packet counts of the resolver's drop rules, both
// families together.
type RuleCounters struct {
	// Drop counts packets the log-and-drop rule for UDP from port 53
	// matched: late answers and spoofed packets.
	Drop uint64
	// Oversize counts packets the earlier oversize rule dropped.
	Oversize uint64
}

// installRuleset writes the resolver's ruleset in the configured form.
func (l *Lab) installRuleset(ctx context.Context) error {
	var err error
	switch l.cfg.Firewall {
	case NFTables:
		_, err = l.resolver.run(ctx, nftRuleset(l.cfg, &l.layout), "nft", "-f", "-")
	case IPTables:
		for _, family := range []int{4, 6} {
			tool := "iptables-restore"
			if family == 6 {
				tool = "ip6tables-restore"
			}
			rules := iptRuleset(l.cfg, &l.layout, family)
			if _, err = l.resolver.run(ctx, rules, tool); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("install %s ruleset: %w", l.cfg.Firewall, err)
	}
	return nil
}

// Counters reads the packet counters of the resolver's drop rules.
func (l *Lab) Counters(ctx context.Context) (RuleCounters, error) {
	if err := l.checkOpen(); err != nil {
		return RuleCounters{}, fmt.Errorf("read rule counters: %w", err)
	}
	var (
		c   RuleCounters
		err error
	)
	switch l.cfg.Firewall {
	case NFTables:
		c, err = l.nftCounters(ctx)
	case IPTables:
		c, err = l.iptCounters(ctx)
	}
	if err != nil {
		return RuleCounters{}, fmt.Errorf("read rule counters: %w", err)
	}
	return c, nil
}
