package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Cleanup deletes lab namespaces left behind by processes that died
// without closing their labs. A namespace's name records its owner's pid
// and start time, so a namespace whose owner still runs (including this
// process) is left alone, even if the pid has been reused since.
// Interfaces go with their namespaces; slots free themselves when their
// owner dies. A nf_log_all_netns value a dead process set is not undone.
func Cleanup() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean up labs: %w", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	var errs []error
	for _, e := range entries {
		o, ok := parseLabNetns(e.Name())
		if !ok || ownerAlive(o) {
			continue
		}
		err := deleteNetns(ctx, e.Name())
		if _, serr := os.Stat(newNetns(e.Name()).Path); errors.Is(serr, os.ErrNotExist) {
			continue // gone, perhaps by a concurrent Cleanup
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up labs: %w", err)
	}
	return nil
}

// ownerAlive reports whether the process that made a namespace still
// runs. When in doubt it says yes.
func ownerAlive(o owner) bool {
	start, err := processStart(o.pid)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	return err != nil || start == o.start
}
