package lab

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Firewall != NFTables || cfg.UDPTimeout != DefaultUDPTimeout {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown firewall", Config{Firewall: "ipfw"},
			`invalid lab config: unknown firewall "ipfw"`},
		{"sub-second timeout", Config{UDPTimeout: 500 * time.Millisecond},
			"invalid lab config: udp timeout 500ms is not a whole number of seconds"},
		{"fractional timeout", Config{UDPTimeout: 2500 * time.Millisecond},
			"invalid lab config: udp timeout 2.5s is not a whole number of seconds"},
		{"negative timeout", Config{UDPTimeout: -time.Second},
			"invalid lab config: udp timeout -1s is not a whole number of seconds"},
		{"iptables prefix", Config{Firewall: IPTables, LogPrefix: strings.Repeat("x", 30)},
			"invalid lab config: log prefix is 30 bytes, iptables keeps at most 29"},
		{"nft prefix", Config{LogPrefix: strings.Repeat("x", 128)},
			"invalid lab config: log prefix is 128 bytes, nftables keeps at most 127"},
		{"quote", Config{LogPrefix: `say "hi"`},
			`invalid lab config: log prefix "say \"hi\"": only printable ASCII without quotes or backslashes`},
		{"newline", Config{LogPrefix: "a\nb"},
			`invalid lab config: log prefix "a\nb": only printable ASCII without quotes or backslashes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.withDefaults()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}
