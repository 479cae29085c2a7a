package doctor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/events/nflog"
	"github.com/ctwatch/ctwatch/internal/netns"
)

// Host is the System of this machine, for one network namespace.
type Host struct {
	ns   *netns.Handle
	port uint16
	// procRoot is where proc is mounted, "/proc" but for tests.
	procRoot string
}

// NewHost returns the System of the namespace ns (nil for the current
// one), for flows to UDP port.
func NewHost(ns *netns.Handle, port uint16) *Host {
	return &Host{ns: ns, port: port, procRoot: "/proc"}
}

// Capabilities parses CapEff from /proc/self/status.
func (h *Host) Capabilities() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(h.procRoot, "self/status"))
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return parseCapEff(b)
}

func parseCapEff(status []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse CapEff: %w", err)
			}
			return caps, nil
		}
	}
	return 0, errors.New("parse capabilities: no CapEff line")
}

// EnterNetNS switches a thread into the namespace and back.
func (h *Host) EnterNetNS() error {
	return h.ns.Do(func() error { return nil })
}

// Sysctl reads a sysctl as seen from inside the namespace: /proc/sys/net
// answers for the namespace of the thread that opens the file.
func (h *Host) Sysctl(name string) (string, error) {
	var v string
	err := h.ns.Do(func() error {
		var err error
		v, err = h.OwnSysctl(name)
		return err
	})
	return v, err
}

// OwnSysctl reads a sysctl of the calling thread's namespace.
func (h *Host) OwnSysctl(name string) (string, error) {
	path := filepath.Join(h.procRoot, "sys", strings.ReplaceAll(name, ".", "/"))
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read sysctl: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Ruleset runs nft and iptables-save inside the namespace; a child forked
// from a thread inside it starts there.
//
// The tools need CAP_NET_ADMIN to list rules. A ctwatch that holds it
// through a file capability (setcap) would not pass it on to them: exec
// keeps only ambient capabilities for a program without file
// capabilities. So the children get CAP_NET_ADMIN as an ambient
// capability whenever ctwatch has it.
func (h *Host) Ruleset() Ruleset {
	var ambient []uintptr
	if caps, err := h.Capabilities(); err == nil && caps&(1<<capNetAdmin) != 0 {
		ambient = []uintptr{capNetAdmin}
	}
	var rs Ruleset
	_ = h.ns.Do(func() error {
		rs.NFT, rs.NFTErr = output(ambient, "nft", "list", "ruleset")
		v4, err := output(ambient, "iptables-save")
		if err != nil {
			rs.IPTErr = err
			return nil
		}
		v6, err := output(ambient, "ip6tables-save")
		rs.IPT, rs.IPTErr = v4+v6, err
		return nil
	})
	return rs
}

// output runs a command with the ambient capabilities and returns its
// standard output; a failure carries the command's standard error.
func output(ambient []uintptr, name string, args ...string) (string, error) {
	if _, err := exec.LookPath(name); err != nil {
		return "", fmt.Errorf("%s: %w", name, ErrToolMissing)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	if len(ambient) > 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{AmbientCaps: ambient}
	}
	out, err := cmd.Output()
	if err != nil {
		msg := strings.Join(strings.Fields(stderr.String()), " ")
		return "", fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return string(out), nil
}

// SubscribeConntrack opens a follower as the watch command does and
// closes it unused.
func (h *Host) SubscribeConntrack() error {
	f, err := events.NewFollower(events.FollowerConfig{
		Port:  h.port,
		NetNS: h.ns.FD(),
		Flow:  func(events.FlowEvent) {},
		Loss:  func(events.LossEvent) {},
	})
	if err != nil {
		return err
	}
	return f.Close()
}

// BindNFLOG binds group as the watch command would and releases it.
func (h *Host) BindNFLOG(group uint16) error {
	r, err := nflog.New(nflog.Config{
		Group: group,
		NetNS: h.ns.FD(),
		Port:  h.port,
		// No interface names are needed, so no rtnetlink socket.
		IfaceName: func(uint32) (string, error) { return "", nil },
	})
	if err != nil {
		return err
	}
	return r.Close()
}

// NFLOGOwner looks group up in the namespace's nfnetlink_log table, whose
// lines start with the group and the owner's netlink port ID. It reads
// through thread-self: /proc/self/net would show the namespace of the
// process's main thread, not of the thread inside Do.
func (h *Host) NFLOGOwner(group uint16) (uint32, bool) {
	var b []byte
	err := h.ns.Do(func() error {
		var err error
		b, err = os.ReadFile(filepath.Join(h.procRoot, "thread-self/net/netfilter/nfnetlink_log"))
		return err
	})
	if err != nil {
		return 0, false
	}
	return parseNFLOGOwner(b, group)
}

func parseNFLOGOwner(table []byte, group uint16) (uint32, bool) {
	for line := range strings.Lines(string(table)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		g, err1 := strconv.ParseUint(f[0], 10, 16)
		port, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 == nil && err2 == nil && uint16(g) == group {
			return uint32(port), true
		}
	}
	return 0, false
}

// OpenKernelLog opens path for reading and closes it.
func (h *Host) OpenKernelLog(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	return f.Close()
}
