// Command gen writes ctwatch's Grafana dashboard as JSON. `go generate
// ./dashboards` runs it to rewrite dashboards/ctwatch.json.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ctwatch/ctwatch/dashboards"
)

func main() {
	out := flag.String("o", "ctwatch.json", "file to write the dashboard to")
	flag.Parse()
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(path string) error {
	b, err := dashboards.JSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write dashboard: %w", err)
	}
	return nil
}
