package lab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// slotCount is how many labs may exist on one machine at once: each slot
// owns a /28 of 198.18.0.0/15 (2^17 / 2^4 = 8192).
const slotCount = 8192

// slotLock reserves a slot for as long as it is open. It is a listening
// Unix socket in the abstract namespace, so the kernel releases it when
// the process dies, and no file is left behind. Abstract names are scoped
// to the network namespace: the lock must be taken outside Netns.Do, in
// the namespace all labs on the machine start from.
type slotLock struct {
	slot int
	ln   *net.UnixListener
}

func (s *slotLock) release() error {
	if err := s.ln.Close(); err != nil {
		return fmt.Errorf("release slot %d: %w", s.slot, err)
	}
	return nil
}

// lockSlot reserves the first free slot, probing from a random one.
func lockSlot() (*slotLock, error) {
	first := rand.IntN(slotCount)
	for i := range slotCount {
		slot := (first + i) % slotCount
		addr := &net.UnixAddr{
			Name: "@ctwatch-lab-slot-" + strconv.Itoa(slot),
			Net:  "unix",
		}
		ln, err := net.ListenUnix("unix", addr)
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lock slot %d: %w", slot, err)
		}
		return &slotLock{slot: slot, ln: ln}, nil
	}
	return nil, fmt.Errorf("lock slot: all %d slots are taken", slotCount)
}

// netnsPrefix starts the name of every namespace a lab creates.
const netnsPrefix = "ctwlab-"

// owner identifies a process across pid reuse: its pid and its start
// time in clock ticks since boot (field 22 of /proc/PID/stat).
type owner struct {
	pid   int
	start uint64
}

func (o owner) String() string {
	return strconv.Itoa(o.pid) + "." + strconv.FormatUint(o.start, 10)
}

// selfOwner returns the owner tag of the calling process.
func selfOwner() (owner, error) {
	pid := os.Getpid()
	start, err := processStart(pid)
	if err != nil {
		return owner{}, err
	}
	return owner{pid: pid, start: start}, nil
}

// processStart reads a process's start time; it fails with an error
// wrapping os.ErrNotExist when there is no such process.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read process %d start: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields after the last ')' start with field 3.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("read process %d start: malformed stat", pid)
	}
	fields := strings.Fields(s[end+1:])
	const startField = 22 - 3
	if len(fields) <= startField {
		return 0, fmt.Errorf("read process %d start: short stat", pid)
	}
	start, err := strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read process %d start: %w", pid, err)
	}
	return start, nil
}

// labName is the common part of a lab's namespace names:
// "ctwlab-PID.START-sSLOT".
func labName(o owner, slot int) string {
	return netnsPrefix + o.String() + "-s" + strconv.Itoa(slot)
}

// parseLabNetns splits a namespace name made by labName plus a role
// suffix. ok is false for names the lab did not make.
func parseLabNetns(name string) (o owner, ok bool) {
	rest, ok := strings.CutPrefix(name, netnsPrefix)
	if !ok {
		return owner{}, false
	}
	tag, _, ok := strings.Cut(rest, "-")
	if !ok {
		return owner{}, false
	}
	pidText, startText, ok := strings.Cut(tag, ".")
	if !ok {
		return owner{}, false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return owner{}, false
	}
	start, err := strconv.ParseUint(startText, 10, 64)
	if err != nil {
		return owner{}, false
	}
	return owner{pid: pid, start: start}, true
}
