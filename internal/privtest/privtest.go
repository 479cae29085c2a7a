// Package privtest holds the rules privileged tests follow: they need root
// (network namespaces, netfilter), skip politely on a developer's laptop
// without it, and fail, never skip, in CI where CI=true.
package privtest

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where a missing
// privilege or kernel feature is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test with reason, or fails it in CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a required feature is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot makes the test privileged: it needs uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (network namespaces and netfilter)")
	}
}

// RequireCommand makes the test depend on an executable on PATH.
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			Unavailable(t, "needs %s on PATH: %v", name, err)
		}
	}
}
