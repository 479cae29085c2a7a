package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logAllNetnsSysctl lets netfilter's LOG target write lines for packets
// in namespaces other than the initial one. It exists only in the initial
// namespace and is machine-wide, so labs in several processes (parallel
// test binaries) share it.
const logAllNetnsSysctl = "net.netfilter.nf_log_all_netns"

// Labs in different processes coordinate through abstract Unix sockets,
// which the kernel removes when their process dies:
//
//   - a process that holds the setting listens on
//     "@ctwatch-lab-logall.PID.ORIG", where ORIG is the value to restore
//     once no process holds it any more;
//   - "@ctwatch-lab-logall.lock", while bound, serialises the read and
//     change of holders and setting.
//
// A process that dies while holding the setting cannot restore it; the
// next process then finds no holder and takes 1 as the value to keep.
const (
	logAllHolderPrefix = "@ctwatch-lab-logall."
	logAllLockName     = "@ctwatch-lab-logall.lock"
	logAllLockWait     = 10 * time.Second
)

// logAllNetns is the package's only mutable global: the labs of this
// process that need logAllNetnsSysctl share one hold on it, taken when
// the first starts and given up when the last closes.
var logAllNetns struct {
	mu     sync.Mutex
	users  int               // labs holding the setting; guarded by mu
	holder *net.UnixListener // this process's holder socket; guarded by mu
	orig   string            // value to restore; guarded by mu
}

// acquireLogAllNetns sets nf_log_all_netns=1 for one more lab. It must
// not run inside Netns.Do: the setting, and the abstract sockets, live in
// the initial namespace.
func acquireLogAllNetns() error {
	logAllNetns.mu.Lock()
	defer logAllNetns.mu.Unlock()
	if logAllNetns.users > 0 {
		logAllNetns.users++
		return nil
	}

	unlock, err := lockLogAll()
	if err != nil {
		return fmt.Errorf("enable kernel log for namespaces: %w", err)
	}
	defer unlock()

	holders, err := logAllHolders()
	if err != nil {
		return fmt.Errorf("enable kernel log for namespaces: %w", err)
	}
	orig := ""
	for _, h := range holders {
		orig = h.orig
	}
	if orig == "" {
		if orig, err = readSysctl(logAllNetnsSysctl); err != nil {
			return fmt.Errorf("enable kernel log for namespaces: %w", err)
		}
	}
	if _, err := strconv.Atoi(orig); err != nil {
		return fmt.Errorf("enable kernel log for namespaces: odd value %q", orig)
	}

	name := logAllHolderPrefix + strconv.Itoa(os.Getpid()) + "." + orig
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return fmt.Errorf("enable kernel log for namespaces: %w", err)
	}
	if err := writeSysctl(logAllNetnsSysctl, "1"); err != nil {
		ln.Close()
		return fmt.Errorf("enable kernel log for namespaces: %w", err)
	}
	logAllNetns.users = 1
	logAllNetns.holder = ln
	logAllNetns.orig = orig
	return nil
}

// releaseLogAllNetns drops one lab's hold; the last lab of the last
// process restores the value the first one found.
func releaseLogAllNetns() error {
	logAllNetns.mu.Lock()
	defer logAllNetns.mu.Unlock()
	logAllNetns.users--
	if logAllNetns.users > 0 {
		return nil
	}

	unlock, err := lockLogAll()
	if err != nil {
		return fmt.Errorf("restore kernel log for namespaces: %w", err)
	}
	defer unlock()

	logAllNetns.holder.Close()
	logAllNetns.holder = nil
	holders, err := logAllHolders()
	if err != nil {
		return fmt.Errorf("restore kernel log for namespaces: %w", err)
	}
	if len(holders) > 0 || logAllNetns.orig == "1" {
		return nil
	}
	if err := writeSysctl(logAllNetnsSysctl, logAllNetns.orig); err != nil {
		return fmt.Errorf("restore kernel log for namespaces: %w", err)
	}
	return nil
}

// lockLogAll takes the machine-wide lock and returns its release.
func lockLogAll() (func(), error) {
	deadline := time.Now().Add(logAllLockWait)
	for {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: logAllLockName, Net: "unix"})
		if err == nil {
			return func() { ln.Close() }, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("lock %s: %w", logAllLockName, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: still busy after %v", logAllLockName, logAllLockWait)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logAllHolder is one process's hold, as its socket name tells.
type logAllHolder struct {
	pid  int
	orig string
}

// logAllHolders lists the processes holding the setting, this one
// included, from the abstract sockets in /proc/net/unix. It reads the
// calling thread's view, which outside Netns.Do is the initial namespace.
func logAllHolders() ([]logAllHolder, error) {
	f, err := os.Open("/proc/thread-self/net/unix")
	if err != nil {
		return nil, fmt.Errorf("list holders: %w", err)
	}
	defer f.Close()

	var holders []logAllHolder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		rest, ok := strings.CutPrefix(fields[7], logAllHolderPrefix)
		if !ok {
			continue
		}
		pidText, orig, ok := strings.Cut(rest, ".")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil {
			continue // the lock, or a stranger
		}
		holders = append(holders, logAllHolder{pid: pid, orig: orig})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list holders: %w", err)
	}
	return holders, nil
}
