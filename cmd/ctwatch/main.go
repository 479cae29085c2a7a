// Command ctwatch tells late DNS answers from unsolicited packets: it
// matches the UDP packets a firewall drops to the conntrack flows they
// belonged to.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fillVersion()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ctwatch:", err)
		os.Exit(exitCode(err))
	}
}
