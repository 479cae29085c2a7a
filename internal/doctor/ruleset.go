package doctor

import (
	"strconv"
	"strings"
)

// Ruleset is the watched namespace's firewall as the tools print it.
type Ruleset struct {
	// NFT is the output of `nft list ruleset`; NFTErr says why there is
	// none (nft missing, no permission).
	NFT    string
	NFTErr error
	// IPT is the output of iptables-save and ip6tables-save together;
	// IPTErr says why there is none. With the nf_tables variant of
	// iptables the same rules also appear in NFT.
	IPT    string
	IPTErr error
}

// ruleFacts is what the checks need to know about a ruleset.
type ruleFacts struct {
	// stateful is true when some rule makes conntrack track flows: a
	// ct state or status match, or NAT.
	stateful bool
	// iptables is true when iptables-save lists rules, so that advice is
	// written in that form.
	iptables bool
	// logs are the rules that log UDP packets from the watched port.
	logs []logRule
}

// logRule is one rule that logs UDP from the watched port.
type logRule struct {
	nflog  bool   // NFLOG (a group) rather than a kernel LOG line
	group  uint16 // NFLOG group; 0 also when none was given
	prefix string
}

// groups returns the NFLOG groups the rules log to, without repeats.
func (f ruleFacts) groups() []uint16 {
	var out []uint16
	seen := map[uint16]bool{}
	for _, l := range f.logs {
		if l.nflog && !seen[l.group] {
			seen[l.group] = true
			out = append(out, l.group)
		}
	}
	return out
}

// kernelLog reports whether a rule writes kernel LOG lines.
func (f ruleFacts) kernelLog() bool {
	for _, l := range f.logs {
		if !l.nflog {
			return true
		}
	}
	return false
}

// facts parses both listings for the watched port.
func (r Ruleset) facts(port uint16) ruleFacts {
	var f ruleFacts
	parseNFT(r.NFT, port, &f)
	parseIPT(r.IPT, port, &f)
	return f
}

// parseNFT reads `nft list ruleset` output: rules are the lines of chain
// blocks; nat chains make conntrack active like ct matches do.
func parseNFT(text string, port uint16, f *ruleFacts) {
	var blocks []string // kinds of the open blocks: table, chain, set...
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line == "}":
			if len(blocks) > 0 {
				blocks = blocks[:len(blocks)-1]
			}
			continue
		case strings.HasSuffix(line, "{"):
			kind, _, _ := strings.Cut(line, " ")
			blocks = append(blocks, kind)
			continue
		}
		if len(blocks) == 0 || blocks[len(blocks)-1] != "chain" {
			continue
		}
		tok := tokens(line)
		if len(tok) > 0 && tok[0] == "type" {
			if len(tok) > 1 && tok[1] == "nat" {
				f.stateful = true
			}
			continue
		}
		if hasPair(tok, "ct", "state") || hasPair(tok, "ct", "status") {
			f.stateful = true
		}
		if !nftMatchesSport(tok, port) {
			continue
		}
		for i, t := range tok {
			if t == "log" {
				f.logs = append(f.logs, nftLog(tok[i+1:]))
			}
		}
	}
}

// nftMatchesSport reports whether a rule matches UDP from port: `udp
// sport P`, a set or range holding it, or `th sport` with `l4proto udp`.
func nftMatchesSport(tok []string, port uint16) bool {
	for i := 0; i+2 < len(tok); i++ {
		if tok[i+1] != "sport" {
			continue
		}
		if tok[i] != "udp" && !(tok[i] == "th" && hasPair(tok, "l4proto", "udp")) {
			continue
		}
		if tok[i+2] != "{" {
			return portIn(tok[i+2], port, "-")
		}
		for _, t := range tok[i+3:] {
			if t == "}" {
				break
			}
			if portIn(t, port, "-") {
				return true
			}
		}
	}
	return false
}

// nftLog parses the arguments of a log statement.
func nftLog(args []string) logRule {
	var l logRule
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "prefix":
			l.prefix = unquote(args[i+1])
		case "group":
			if g, err := strconv.ParseUint(args[i+1], 10, 16); err == nil {
				l.nflog, l.group = true, uint16(g)
			}
		case "level", "queue-threshold", "snaplen", "flags":
		default:
			return l
		}
	}
	return l
}

// parseIPT reads iptables-save output.
func parseIPT(text string, port uint16, f *ruleFacts) {
	table := ""
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if t, ok := strings.CutPrefix(line, "*"); ok {
			table = t
			continue
		}
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		f.iptables = true
		tok := tokens(line)
		if table == "nat" || hasPair(tok, "-m", "state") || hasPair(tok, "-m", "conntrack") {
			f.stateful = true
		}
		if !iptMatchesSport(tok, port) {
			continue
		}
		switch flagValue(tok, "-j") {
		case "NFLOG":
			l := logRule{nflog: true, prefix: unquote(flagValue(tok, "--nflog-prefix"))}
			if g, err := strconv.ParseUint(flagValue(tok, "--nflog-group"), 10, 16); err == nil {
				l.group = uint16(g)
			}
			f.logs = append(f.logs, l)
		case "LOG":
			f.logs = append(f.logs, logRule{prefix: unquote(flagValue(tok, "--log-prefix"))})
		}
	}
}

// iptMatchesSport reports whether an iptables rule matches UDP from port,
// with --sport (a port or a range) or multiport's --sports.
func iptMatchesSport(tok []string, port uint16) bool {
	if p := flagValue(tok, "-p"); p != "udp" && p != "17" {
		return false
	}
	for i := 0; i+1 < len(tok); i++ {
		if i > 0 && tok[i-1] == "!" {
			continue
		}
		switch tok[i] {
		case "--sport", "--source-port":
			return portIn(tok[i+1], port, ":")
		case "--sports", "--source-ports":
			// tokens split the comma-separated list into words.
			for _, p := range tok[i+1:] {
				if strings.HasPrefix(p, "-") {
					break
				}
				if portIn(p, port, ":") {
					return true
				}
			}
			return false
		}
	}
	return false
}

// portIn reports whether expr, a port, a service name or a range with
// separator sep, holds port.
func portIn(expr string, port uint16, sep string) bool {
	expr = strings.TrimSuffix(expr, ",")
	if expr == "domain" {
		return port == 53
	}
	lo, hi, isRange := strings.Cut(expr, sep)
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return false
	}
	if !isRange {
		return uint16(a) == port
	}
	b, err := strconv.ParseUint(hi, 10, 16)
	return err == nil && uint16(a) <= port && port <= uint16(b)
}

// flagValue returns the token after the first name that is not negated,
// or "".
func flagValue(tok []string, name string) string {
	for i := 0; i+1 < len(tok); i++ {
		if tok[i] == name && (i == 0 || tok[i-1] != "!") {
			return tok[i+1]
		}
	}
	return ""
}

// hasPair reports whether a is directly followed by b somewhere in tok.
func hasPair(tok []string, a, b string) bool {
	for i := 0; i+1 < len(tok); i++ {
		if tok[i] == a && tok[i+1] == b {
			return true
		}
	}
	return false
}

// tokens splits a rule into words. A double-quoted string is one word,
// quotes included; braces are words of their own, and commas end words.
func tokens(line string) []string {
	var (
		out    []string
		cur    strings.Builder
		quoted bool
	)
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case quoted:
			cur.WriteRune(r)
		case r == ' ' || r == '\t' || r == ',':
			flush()
		case r == '{' || r == '}':
			flush()
			out = append(out, string(r))
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

// unquote strips the double quotes around a prefix.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
