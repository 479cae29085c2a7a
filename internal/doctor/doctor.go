// Package doctor checks what ctwatch needs from the kernel, the ruleset
// and its own privileges, and says for every gap the command that closes
// it.
//
// The checks only see the machine through System, so they run in unit
// tests on a fake; Host is the System of a real network namespace.
package doctor

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Status is the outcome of one check.
type Status uint8

// Statuses, from best to worst.
const (
	OK Status = iota
	Warn
	Fail
)

// String returns "ok", "warn" or "fail".
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Status(%d)", s)
}

// MarshalText makes a Status a JSON string.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result is the outcome of one check.
type Result struct {
	// Check names the check, e.g. "nf_conntrack_timestamp".
	Check  string `json:"check"`
	Status Status `json:"status"`
	// Detail says what was found, in one sentence.
	Detail string `json:"detail"`
	// Fix holds the commands that close the gap, one per line, for Warn
	// and Fail. Lines starting with "#" are notes on the command before.
	Fix []string `json:"fix,omitempty"`
}

// Options are the parts of a ctwatch command line the checks judge.
type Options struct {
	// NetNS is --netns: a namespace path, empty for the current one.
	NetNS string
	// NFLOGGroups are the --nflog-group values.
	NFLOGGroups []uint16
	// KernelLog is --kernel-log: a path, "-" for stdin, or empty.
	KernelLog string
	// UDPPort is --udp-port; 0 means 53.
	UDPPort uint16
	// Executable is the path of the ctwatch binary, for setcap advice;
	// empty means /usr/bin/ctwatch.
	Executable string
}

func (o Options) port() uint16 {
	if o.UDPPort == 0 {
		return 53
	}
	return o.UDPPort
}

func (o Options) executable() string {
	if o.Executable == "" {
		return "/usr/bin/ctwatch"
	}
	return o.Executable
}

// inNS prefixes a command so that it runs in the watched namespace:
// `ip netns exec NAME` for a namespace iproute2 named, nsenter otherwise.
func (o Options) inNS(cmd string) string {
	switch {
	case o.NetNS == "":
		return cmd
	case filepath.Dir(o.NetNS) == "/run/netns":
		return "ip netns exec " + filepath.Base(o.NetNS) + " " + cmd
	}
	return "nsenter --net=" + o.NetNS + " " + cmd
}

// nsLabel describes the watched namespace for the report's first line.
func (o Options) nsLabel() string {
	if o.NetNS == "" {
		return "current network namespace"
	}
	return "network namespace " + o.NetNS
}

// Report is the outcome of every check that applied.
type Report struct {
	// Namespace describes the network namespace that was checked.
	Namespace string   `json:"namespace"`
	Port      uint16   `json:"udp_port"`
	Results   []Result `json:"checks"`
	// Failed and Warnings count the results with those statuses.
	Failed   int `json:"failed"`
	Warnings int `json:"warnings"`
}

// Run runs every check that applies to o against sys.
func Run(sys System, o Options) Report {
	r := Report{Namespace: o.nsLabel(), Port: o.port()}
	c := &checker{sys: sys, o: o}
	for _, check := range c.checks() {
		for _, res := range check() {
			switch res.Status {
			case Fail:
				r.Failed++
			case Warn:
				r.Warnings++
			}
			r.Results = append(r.Results, res)
		}
	}
	return r
}

// Err returns a *FailedError naming the failed checks, or nil when
// nothing blocks ctwatch (warnings do not).
func (r Report) Err() error {
	if r.Failed == 0 {
		return nil
	}
	var names []string
	for _, res := range r.Results {
		if res.Status == Fail {
			names = append(names, res.Check)
		}
	}
	return &FailedError{Checks: names}
}

// FailedError is returned when a check failed: ctwatch cannot work as
// configured. The command exits with ExitCode.
type FailedError struct {
	Checks []string
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("doctor: %d failed: %s", len(e.Checks), strings.Join(e.Checks, ", "))
}

// ExitCode is the process status for a failed doctor run.
func (e *FailedError) ExitCode() int { return 1 }

// ErrToolMissing is wrapped by the errors of System.Ruleset when nft or
// iptables-save is not installed.
var ErrToolMissing = errors.New("not installed")
