package nflog

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIfaceCache asks rtnetlink in the test's own namespace, which needs no
// privilege; the integration test covers another namespace.
func TestIfaceCache(t *testing.T) {
	c, err := newIfaceCache(0)
	if err != nil {
		t.Fatalf("newIfaceCache: %v", err)
	}
	t.Cleanup(func() { c.close() })
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }

	// Index 1 is the loopback device in every namespace.
	if name, err := c.name(1); err != nil || name != "lo" {
		t.Fatalf("name(1) = %q, %v, want lo", name, err)
	}
	const missing = 1 << 30
	if _, err := c.name(missing); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("name(%d) error = %v, want ENODEV", missing, err)
	}

	// Answers and failures come from the cache until the TTL runs out:
	// with the socket closed, only a fresh query can fail.
	c.conn.Close()
	now = now.Add(ifaceTTL - time.Second)
	if name, err := c.name(1); err != nil || name != "lo" {
		t.Errorf("cached name(1) = %q, %v, want lo", name, err)
	}
	if _, err := c.name(missing); !errors.Is(err, unix.ENODEV) {
		t.Errorf("cached name(%d) error = %v, want ENODEV", missing, err)
	}
	now = now.Add(2 * time.Second)
	if _, err := c.name(1); err == nil {
		t.Error("name(1) after the TTL did not query again")
	}
}
