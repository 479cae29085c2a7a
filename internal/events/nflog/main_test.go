package nflog

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestMain fails the run when tests leave file descriptors open: a Reader
// owns two sockets, and a leaked NFLOG socket keeps its group bound.
func TestMain(m *testing.M) {
	flag.Parse()
	// Fuzzing opens the coordinator's pipes and shared memory during Run.
	check := flag.Lookup("test.fuzz").Value.String() == "" &&
		flag.Lookup("test.fuzzworker").Value.String() != "true"

	// Start the runtime poller now, so its epoll and wake-up descriptors
	// are not taken for leaks.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	before := openFDs()
	code := m.Run()
	if code == 0 && check {
		leaked := slices.DeleteFunc(openFDs(), func(s string) bool {
			return slices.Contains(before, s)
		})
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "tests leaked file descriptors: %v\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// openFDs lists this process's descriptors as "fd -> target", leaving out
// the one it reads them with.
func openFDs() []string {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil
	}
	self := strconv.Itoa(int(dir.Fd()))
	var out []string
	for _, name := range names {
		if name == self {
			continue
		}
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", name))
		out = append(out, name+" -> "+target)
	}
	return out
}
