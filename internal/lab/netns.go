package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ctwatch/ctwatch/internal/netns"
)

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// Netns is a named network namespace, as `ip netns` knows it.
type Netns struct {
	// Name is the name `ip netns` lists.
	Name string
	// Path is the bind mount that keeps the namespace alive,
	// /run/netns/NAME.
	Path string
}

func newNetns(name string) *Netns {
	return &Netns{Name: name, Path: filepath.Join(netnsDir, name)}
}

// Open returns a file descriptor for the namespace, suitable for
// netlink.Config.NetNS (pass int(f.Fd())). The caller closes it.
func (n *Netns) Open() (*os.File, error) {
	f, err := os.Open(n.Path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	return f, nil
}

// Do runs fn on an OS thread switched into the namespace and returns fn's
// error; see netns.Handle.Do.
func (n *Netns) Do(fn func() error) error {
	h, err := netns.Open(n.Path)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(fn)
}

// run executes a command inside the namespace; see run.
func (n *Netns) run(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	var out []byte
	err := n.Do(func() error {
		var err error
		out, err = run(ctx, stdin, name, args...)
		return err
	})
	return out, err
}

// addNetns creates a named namespace with `ip netns add`.
func addNetns(ctx context.Context, name string) (*Netns, error) {
	if _, err := run(ctx, "", "ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	return newNetns(name), nil
}

// deleteNetns removes a named namespace. The kernel frees it, and the
// interfaces in it, once the last socket or file referring to it closes.
func deleteNetns(ctx context.Context, name string) error {
	if _, err := run(ctx, "", "ip", "netns", "delete", name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}
