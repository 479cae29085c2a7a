package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// nftTable is the resolver's inet table.
const nftTable = "ctwlab"

// nftLog returns the log statements of a drop rule: one NFLOG statement
// and one kernel LOG statement, as configured.
func nftLog(cfg Config) string {
	var stmts []string
	if cfg.NFLOGGroup != 0 {
		s := "log"
		if cfg.LogPrefix != "" {
			s += fmt.Sprintf(" prefix %q", cfg.LogPrefix)
		}
		s += fmt.Sprintf(" group %d queue-threshold 1", cfg.NFLOGGroup)
		stmts = append(stmts, s)
	}
	if cfg.LogPrefix != "" {
		stmts = append(stmts, fmt.Sprintf("log prefix %q", cfg.LogPrefix))
	}
	return strings.Join(stmts, " ")
}

// nftRuleset returns the resolver's ruleset for `nft -f -`.
func nftRuleset(cfg Config, lay *layout) string {
	log := nftLog(cfg)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", nftTable)
	fmt.Fprintf(&b, "\tcounter %s {}\n\tcounter %s {}\n", tagDrop, tagOversize)
	b.WriteString("\tchain input {\n" +
		"\t\ttype filter hook input priority filter; policy drop;\n" +
		"\t\tiif \"lo\" accept\n")
	fmt.Fprintf(&b, "\t\tudp sport 53 meta length > %d counter name %q %s drop\n",
		oversizeLimit, tagOversize, log)
	b.WriteString("\t\tudp sport 53 ct state established,related accept\n")
	fmt.Fprintf(&b, "\t\tudp sport 53 counter name %q %s drop\n", tagDrop, log)
	b.WriteString("\t\tct state established,related accept\n" +
		"\t\tmeta l4proto { icmp, ipv6-icmp } accept\n" +
		"\t}\n")
	if cfg.SNAT {
		b.WriteString("\tchain postrouting {\n" +
			"\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
		fmt.Fprintf(&b, "\t\toifname %q ip saddr %s snat ip to %s\n",
			lay.r2u, lay.v4.inner, lay.v4.resolverUp)
		fmt.Fprintf(&b, "\t\toifname %q ip6 saddr %s snat ip6 to %s\n",
			lay.r2u, lay.v6.inner, lay.v6.resolverUp)
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// nftCounters reads the named counters of the resolver's table.
func (l *Lab) nftCounters(ctx context.Context) (RuleCounters, error) {
	out, err := l.resolver.run(ctx, "", "nft", "-j", "list", "counters",
		"table", "inet", nftTable)
	if err != nil {
		return RuleCounters{}, err
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return RuleCounters{}, fmt.Errorf("decode nft counters: %w", err)
	}

	var c RuleCounters
	found := 0
	for _, obj := range doc.Nftables {
		switch {
		case obj.Counter == nil:
		case obj.Counter.Name == tagDrop:
			c.Drop = obj.Counter.Packets
			found++
		case obj.Counter.Name == tagOversize:
			c.Oversize = obj.Counter.Packets
			found++
		}
	}
	if found != 2 {
		return RuleCounters{}, fmt.Errorf("decode nft counters: found %d of 2", found)
	}
	return c, nil
}
