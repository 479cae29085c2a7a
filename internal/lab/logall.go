package lab

import (
	"fmt"
	"sync"
)

// logAllNetnsSysctl lets netfilter's LOG target write lines for packets
// in namespaces other than the initial one. It exists only in the initial
// namespace and is machine-wide.
const logAllNetnsSysctl = "net.netfilter.nf_log_all_netns"

// logAllNetns is the package's only mutable global: the labs of this
// process that need logAllNetnsSysctl share one setting, so the first to
// start saves the old value and sets 1, and the last to close restores
// it. Labs in other processes are not counted; a process that dies while
// holding the setting leaves it at 1.
var logAllNetns struct {
	mu    sync.Mutex
	users int    // labs holding the setting; guarded by mu
	saved string // value before the first user; guarded by mu
}

// acquireLogAllNetns sets nf_log_all_netns=1 for one more lab. It must
// not run inside Netns.Do: the setting lives in the initial namespace.
func acquireLogAllNetns() error {
	logAllNetns.mu.Lock()
	defer logAllNetns.mu.Unlock()

	if logAllNetns.users == 0 {
		old, err := readSysctl(logAllNetnsSysctl)
		if err != nil {
			return fmt.Errorf("enable kernel log for namespaces: %w", err)
		}
		if old != "1" {
			if err := writeSysctl(logAllNetnsSysctl, "1"); err != nil {
				return fmt.Errorf("enable kernel log for namespaces: %w", err)
			}
		}
		logAllNetns.saved = old
	}
	logAllNetns.users++
	return nil
}

// releaseLogAllNetns drops one lab's hold and restores the saved value
// when it was the last.
func releaseLogAllNetns() error {
	logAllNetns.mu.Lock()
	defer logAllNetns.mu.Unlock()

	logAllNetns.users--
	if logAllNetns.users > 0 || logAllNetns.saved == "1" {
		return nil
	}
	if err := writeSysctl(logAllNetnsSysctl, logAllNetns.saved); err != nil {
		return fmt.Errorf("restore kernel log for namespaces: %w", err)
	}
	return nil
}
