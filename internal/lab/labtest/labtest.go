// Package labtest starts labs for tests of other packages: privileged,
// bounded in time, and always closed, with a failed teardown (a leaked
// namespace or process) reported as a test error.
package labtest

import (
	"context"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/lab"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// StartTimeout bounds building a lab.
const StartTimeout = 20 * time.Second

// Start builds a lab with cfg and closes it in t.Cleanup. It needs root
// and the commands every lab uses; without them the test skips, or fails
// when CI=true.
func Start(t testing.TB, cfg lab.Config) *lab.Lab {
	t.Helper()
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft", "iptables")
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}
