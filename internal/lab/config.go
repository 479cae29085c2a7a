package lab

import (
	"errors"
	"fmt"
	"time"
)

// Firewall names the tool that writes the resolver's ruleset.
type Firewall string

// Firewalls the lab can write the resolver's ruleset with.
const (
	// NFTables writes one inet table with `nft`.
	NFTables Firewall = "nftables"
	// IPTables writes the classic form with iptables-restore and
	// ip6tables-restore (on Debian, the nf_tables variant).
	IPTables Firewall = "iptables"
)

// DefaultUDPTimeout is the conntrack UDP timeout a lab uses unless told
// otherwise: short, so tests see expiry quickly.
const DefaultUDPTimeout = 3 * time.Second

// Prefix limits: the kernel keeps 127 bytes of an nft log prefix; the
// iptables LOG target keeps 29 and truncates longer ones silently.
const (
	maxNFTPrefix = 127
	maxIPTPrefix = 29
)

// ErrInvalidConfig is wrapped by Start's error for a config it rejects
// before building anything.
var ErrInvalidConfig = errors.New("invalid lab config")

// Config describes a lab. The zero value is a usable nftables lab that
// neither logs nor NATs.
type Config struct {
	// Firewall is the ruleset form in the resolver namespace; empty
	// means NFTables.
	Firewall Firewall
	// NFLOGGroup, when non-zero, makes the drop rules log to this NFLOG
	// group with a queue threshold of 1, so each packet is delivered at
	// once.
	NFLOGGroup uint16
	// LogPrefix, when non-empty, makes the drop rules also write a
	// kernel LOG line with this prefix (and gives NFLOG records the same
	// prefix). LOG lines from a lab need net.netfilter.nf_log_all_netns=1
	// in the initial namespace; the lab sets it while any lab in this
	// process needs it and restores it afterwards.
	LogPrefix string
	// SNAT makes the resolver's sockets use an inner address that is
	// translated to the resolver's egress address on the way out, so a
	// flow's reply destination differs from its original source.
	SNAT bool
	// UDPTimeout is written to both nf_conntrack_udp_timeout and
	// nf_conntrack_udp_timeout_stream in the resolver namespace, so a
	// flow's lifetime does not change when it turns into a stream. The
	// kernel takes whole seconds; zero means DefaultUDPTimeout.
	UDPTimeout time.Duration
	// Timestamps sets nf_conntrack_timestamp=1 in the resolver
	// namespace: DESTROY events then carry start and stop times.
	Timestamps bool
	// Accounting sets nf_conntrack_acct=1 in the resolver namespace:
	// flows then carry packet and byte counters.
	Accounting bool
}

// withDefaults fills in defaults and checks cfg. Errors wrap
// ErrInvalidConfig.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Firewall == "" {
		cfg.Firewall = NFTables
	}
	if cfg.UDPTimeout == 0 {
		cfg.UDPTimeout = DefaultUDPTimeout
	}

	maxPrefix := maxNFTPrefix
	switch cfg.Firewall {
	case NFTables:
	case IPTables:
		maxPrefix = maxIPTPrefix
	default:
		return cfg, fmt.Errorf("%w: unknown firewall %q", ErrInvalidConfig, cfg.Firewall)
	}
	if cfg.UDPTimeout < time.Second || cfg.UDPTimeout%time.Second != 0 {
		return cfg, fmt.Errorf("%w: udp timeout %v is not a whole number of seconds",
			ErrInvalidConfig, cfg.UDPTimeout)
	}
	if len(cfg.LogPrefix) > maxPrefix {
		return cfg, fmt.Errorf("%w: log prefix is %d bytes, %s keeps at most %d",
			ErrInvalidConfig, len(cfg.LogPrefix), cfg.Firewall, maxPrefix)
	}
	for _, r := range cfg.LogPrefix {
		if r < ' ' || r > '~' || r == '"' || r == '\\' {
			return cfg, fmt.Errorf("%w: log prefix %q: only printable ASCII "+
				"without quotes or backslashes", ErrInvalidConfig, cfg.LogPrefix)
		}
	}
	return cfg, nil
}
