package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctlPath maps a dotted sysctl name to its file under /proc/sys. Lab
// interface names hold no dots, so every dot is a separator.
func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// readSysctl reads a sysctl of the calling thread's network namespace
// (net.* entries under /proc/sys resolve against the opener's namespace).
func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeSysctl writes a sysctl of the calling thread's network namespace.
func writeSysctl(name, value string) error {
	if err := os.WriteFile(sysctlPath(name), []byte(value), 0); err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// sysctl is one setting.
type sysctl struct{ name, value string }

// setSysctls writes settings inside the namespace, in order.
func (n *Netns) setSysctls(settings ...sysctl) error {
	return n.Do(func() error {
		for _, s := range settings {
			if err := writeSysctl(s.name, s.value); err != nil {
				return err
			}
		}
		return nil
	})
}

// Sysctl reads a sysctl (dotted name, e.g.
// "net.netfilter.nf_conntrack_udp_timeout") inside the namespace.
func (n *Netns) Sysctl(name string) (string, error) {
	var v string
	err := n.Do(func() error {
		var err error
		v, err = readSysctl(name)
		return err
	})
	return v, err
}
