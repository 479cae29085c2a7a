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
	// UDP holds the UDP timeouts.
	UDP UDPTimeouts
}

// UDPTimeouts are the kernel's UDP conntrack timeouts.
type UDPTimeouts struct {
	// Timeout is nf_conntrack_udp_timeout: the lifetime of a UDP flow,
	// renewed by each packet, until it becomes a stream. A single DNS
	// exchange never does, so this is the one late answers run into.
	Timeout time.Duration
	// StreamTimeout is nf_conntrack_udp_timeout_stream, which applies
	// once traffic has been seen both ways for more than two seconds.
	StreamTimeout time.Duration
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
	var err error
	s.UDP, err = ReadUDPTimeouts(procRoot)
	errs = append(errs, err)
	return s, errors.Join(errs...)
}

// ReadUDPTimeouts reads both UDP timeouts from
// procRoot/sys/net/netfilter, for the network namespace of the calling
// thread. Errors wrap ErrNoConntrack and the *os.PathError of the read
// when nf_conntrack is not loaded, or the parse error of a bad value.
func ReadUDPTimeouts(procRoot string) (UDPTimeouts, error) {
	dir := filepath.Join(procRoot, "sys/net/netfilter")
	timeout, err := readSeconds(dir, "nf_conntrack_udp_timeout")
	if err != nil {
		return UDPTimeouts{}, err
	}
	stream, err := readSeconds(dir, "nf_conntrack_udp_timeout_stream")
	if err != nil {
		return UDPTimeouts{}, err
	}
	return UDPTimeouts{Timeout: timeout, StreamTimeout: stream}, nil
}

// readSeconds reads a sysctl holding a whole number of seconds.
func readSeconds(dir, name string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: %w", ErrNoConntrack, err)
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", name, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("parse %s: negative timeout %d", name, n)
	}
	return time.Duration(n) * time.Second, nil
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
