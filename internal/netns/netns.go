// Package netns runs code inside another network namespace.
//
// Sockets belong to the namespace of the thread that created them, so a
// netlink or UDP socket opened inside Do keeps working from any goroutine
// after Do returns. /proc/sys/net also answers for the namespace of the
// thread that opens the file.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Handle is an open network namespace. The zero Handle (and a nil *Handle)
// means the caller's own namespace.
type Handle struct {
	f *os.File
}

// Open opens the namespace at path, e.g. /run/netns/NAME or
// /proc/PID/ns/net. An empty path returns a nil Handle: the current
// namespace.
func Open(path string) (*Handle, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat netns %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		f.Close()
		return nil, fmt.Errorf("open netns %s: not a namespace file", path)
	}
	return &Handle{f: f}, nil
}

// FD returns the namespace's file descriptor for netlink.Config.NetNS, or 0
// for the current namespace.
func (h *Handle) FD() int {
	if h == nil || h.f == nil {
		return 0
	}
	return int(h.f.Fd())
}

// Path returns the path the namespace was opened from, or "" for the
// current namespace.
func (h *Handle) Path() string {
	if h == nil || h.f == nil {
		return ""
	}
	return h.f.Name()
}

// Close releases the namespace file.
func (h *Handle) Close() error {
	if h == nil || h.f == nil {
		return nil
	}
	return h.f.Close()
}

// Do runs fn on an OS thread switched into the namespace and returns fn's
// error. Sockets fn creates stay in the namespace after Do returns and may
// be used from any goroutine; goroutines fn starts do not run in it.
//
// fn runs on a goroutine of its own, locked to its thread, which is
// switched back afterwards. If that fails the goroutine ends still locked,
// so the runtime discards the thread rather than reuse it in the wrong
// namespace; the caller's own thread is never switched.
func (h *Handle) Do(fn func() error) error {
	if h == nil || h.f == nil {
		return fn()
	}

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()

		if err := unix.Setns(int(h.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", h.f.Name(), err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(fnErr, fmt.Errorf("leave netns %s: %w", h.f.Name(), err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
