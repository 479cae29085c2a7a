package events

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// KernelSettings are the conntrack sysctls that decide how precise ctwatch
// can be. They are per network namespace.
type KernelSettings struct {
	// Timestamp (nf_conntrack_timestamp) gives DESTROY events the real
	// start and stop times. It attaches at flow creation only.
	Timestamp bool
	// Accounting (nf_conntrack_acct) gives packet and byte counters; also
	// attached at creation only.
	Accounting bool
	// Events (nf_conntrack_events): 0 off, 1 always, 2 (default) only for
	// flows created while a listener exists.
	Events int
	// UDPTimeout and UDPStreamTimeout are nf_conntrack_udp_timeout and
	// nf_conntrack_udp_timeout_stream.
	UDPTimeout       time.Duration
	UDPStreamTimeout time.Duration
}

// ErrNoConntrack is returned when the conntrack sysctls do not exist: the
// nf_conntrack module is not loaded.
var ErrNoConntrack = errors.New("conntrack sysctls not found (is nf_conntrack loaded?)")

// ReadKernelSettings reads the conntrack sysctls below procRoot (normally
// "/proc") for the network namespace of the calling thread.
func ReadKernelSettings(procRoot string) (KernelSettings, error) {
	dir := filepath.Join(procRoot, "sys/net/netfilter")
	var (
		s    KernelSettings
		errs []error
	)
	readInt := func(name string) int {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("%s: %w", name, ErrNoConntrack))
			} else {
				errs = append(errs, fmt.Errorf("read %s: %w", name, err))
			}
			return 0
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", name, err))
		}
		return v
	}
	s.Timestamp = readInt("nf_conntrack_timestamp") != 0
	s.Accounting = readInt("nf_conntrack_acct") != 0
	s.Events = readInt("nf_conntrack_events")
	s.UDPTimeout = time.Duration(readInt("nf_conntrack_udp_timeout")) * time.Second
	s.UDPStreamTimeout = time.Duration(readInt("nf_conntrack_udp_timeout_stream")) * time.Second
	return s, errors.Join(errs...)
}

// Precision describes, in one sentence for the start-up log, what the
// settings cost in verdict precision.
func (s KernelSettings) Precision() string {
	var parts []string
	if s.Timestamp {
		parts = append(parts, "expiry times are the kernel's stop timestamps (ms precision)")
	} else {
		parts = append(parts, "no kernel timestamps: expiry is estimated as last event plus timeout "+
			"(seconds of error; set net.netfilter.nf_conntrack_timestamp=1)")
	}
	if !s.Accounting {
		parts = append(parts, "no packet counters (net.netfilter.nf_conntrack_acct=0)")
	}
	switch s.Events {
	case 0:
		parts = append(parts, "conntrack events are disabled (net.netfilter.nf_conntrack_events=0): nothing can be matched")
	case 2:
		parts = append(parts, "flows created before ctwatch started emit no events; they are found by the start-up dump")
	}
	return strings.Join(parts, "; ")
}
