package metrics

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

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

// ReadUDPTimeouts reads both UDP timeouts from
// procRoot/sys/net/netfilter. The values are those of the network
// namespace of the calling thread. Errors wrap the *os.PathError of the
// read (os.ErrNotExist when nf_conntrack is not loaded) or the
// *strconv.NumError of the parse.
func ReadUDPTimeouts(procRoot string) (UDPTimeouts, error) {
	dir := filepath.Join(procRoot, "sys", "net", "netfilter")
	timeout, err := readSeconds(filepath.Join(dir, "nf_conntrack_udp_timeout"))
	if err != nil {
		return UDPTimeouts{}, err
	}
	stream, err := readSeconds(filepath.Join(dir, "nf_conntrack_udp_timeout_stream"))
	if err != nil {
		return UDPTimeouts{}, err
	}
	return UDPTimeouts{Timeout: timeout, StreamTimeout: stream}, nil
}

// readSeconds reads a sysctl holding a whole number of seconds.
func readSeconds(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read udp timeout: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", filepath.Base(path), err)
	}
	if n < 0 {
		return 0, fmt.Errorf("parse %s: negative timeout %d", filepath.Base(path), n)
	}
	return time.Duration(n) * time.Second, nil
}
