package lab

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// iptLog returns the logging rules that precede a drop rule whose match
// is match: NFLOG and LOG are non-terminating targets, so each needs a
// rule of its own with the same match.
func iptLog(cfg Config, match string) []string {
	var rules []string
	if cfg.NFLOGGroup != 0 {
		r := fmt.Sprintf("-A INPUT %s -j NFLOG --nflog-group %d --nflog-threshold 1",
			match, cfg.NFLOGGroup)
		if cfg.LogPrefix != "" {
			r += fmt.Sprintf(" --nflog-prefix %q", cfg.LogPrefix)
		}
		rules = append(rules, r)
	}
	if cfg.LogPrefix != "" {
		rules = append(rules,
			fmt.Sprintf("-A INPUT %s -j LOG --log-prefix %q", match, cfg.LogPrefix))
	}
	return rules
}

// iptRuleset returns one family's ruleset for iptables-restore or
// ip6tables-restore. The stateful accept is written exactly as the
// classic resolver setup has it.
func iptRuleset(cfg Config, lay *layout, family int) string {
	fl := lay.family(family)
	icmp := "icmp"
	if family == 6 {
		icmp = "ipv6-icmp"
	}
	oversize := fmt.Sprintf("-p udp --sport 53 -m length --length %d:65535 "+
		"-m comment --comment %s", oversizeLimit+1, tagOversize)
	drop := "-p udp --sport 53 -m comment --comment " + tagDrop

	rules := []string{
		"*filter",
		":INPUT DROP [0:0]",
		":FORWARD DROP [0:0]",
		":OUTPUT ACCEPT [0:0]",
		"-A INPUT -i lo -j ACCEPT",
	}
	rules = append(rules, iptLog(cfg, oversize)...)
	rules = append(rules, "-A INPUT "+oversize+" -j DROP",
		"-A INPUT -p udp --sport 53 -m state --state ESTABLISHED,RELATED -j ACCEPT")
	rules = append(rules, iptLog(cfg, drop)...)
	rules = append(rules, "-A INPUT "+drop+" -j DROP",
		"-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT",
		"-A INPUT -p "+icmp+" -j ACCEPT",
		"COMMIT")
	if cfg.SNAT {
		rules = append(rules, "*nat",
			":PREROUTING ACCEPT [0:0]",
			":INPUT ACCEPT [0:0]",
			":OUTPUT ACCEPT [0:0]",
			":POSTROUTING ACCEPT [0:0]",
			fmt.Sprintf("-A POSTROUTING -o %s -s %s -j SNAT --to-source %s",
				lay.r2u, fl.inner, fl.resolverUp),
			"COMMIT")
	}
	return strings.Join(rules, "\n") + "\n"
}

// iptCounters sums the counters of the tagged DROP rules of both
// families. The logging rules in front of each see the same packets.
func (l *Lab) iptCounters(ctx context.Context) (RuleCounters, error) {
	var c RuleCounters
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := l.resolver.run(ctx, "", tool, "-c", "-t", "filter")
		if err != nil {
			return RuleCounters{}, err
		}
		drop, oversize, err := parseIPTCounters(string(out))
		if err != nil {
			return RuleCounters{}, fmt.Errorf("%s: %w", tool, err)
		}
		c.Drop += drop
		c.Oversize += oversize
	}
	return c, nil
}

// parseIPTCounters finds the tagged DROP rules in `iptables-save -c`
// output, whose rule lines start with "[packets:bytes]".
func parseIPTCounters(save string) (drop, oversize uint64, err error) {
	found := 0
	for line := range strings.Lines(save) {
		line = strings.TrimSpace(line)
		if !strings.HasSuffix(line, "-j DROP") || !strings.HasPrefix(line, "[") {
			continue
		}
		var dst *uint64
		switch {
		case strings.Contains(line, "--comment "+tagDrop+" "):
			dst = &drop
		case strings.Contains(line, "--comment "+tagOversize+" "):
			dst = &oversize
		default:
			continue
		}
		counts, _, ok := strings.Cut(line[1:], "]")
		packets, _, ok2 := strings.Cut(counts, ":")
		n, perr := strconv.ParseUint(packets, 10, 64)
		if !ok || !ok2 || perr != nil {
			return 0, 0, fmt.Errorf("malformed counter in %q", line)
		}
		*dst = n
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("found %d of 2 tagged drop rules", found)
	}
	return drop, oversize, nil
}
