package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/ctwatch/ctwatch/internal/events/kernlog"
)

type parseLogFlags struct {
	file      string
	malformed bool
}

func (f *parseLogFlags) register(c *kingpin.CmdClause) {
	c.Arg("file", "Log file to read; - or nothing for stdin.").Default("-").StringVar(&f.file)
	c.Flag("malformed", "Also print malformed records, with their error, as {\"malformed\":...} objects.").
		BoolVar(&f.malformed)
}

// parseLog prints every firewall record of a log as one JSON object per
// line on stdout, and a summary of what it skipped on stderr.
func (e env) parseLog(ctx context.Context, f *parseLogFlags) error {
	var in io.Reader = e.stdin
	if f.file != "-" && f.file != "" {
		file, err := os.Open(f.file)
		if err != nil {
			return fmt.Errorf("parse-log: %w", err)
		}
		defer file.Close()
		in = file
	}

	var (
		stats kernlog.Stats
		bw    = bufio.NewWriter(e.stdout)
		enc   = json.NewEncoder(bw)
	)
	// A log file may come from an earlier boot, so boot-relative stamps
	// (dmesg brackets) are not converted; they stay in since_boot_ns.
	err := kernlog.ReadStream(ctx, in, kernlog.Options{Stats: &stats}, func(en *kernlog.Entry) error {
		switch en.Result {
		case kernlog.Firewall:
			return enc.Encode(&en.Record)
		case kernlog.Malformed:
			if f.malformed {
				return enc.Encode(struct {
					Malformed string `json:"malformed"`
					Error     string `json:"error"`
				}{string(en.Line), en.Err.Error()})
			}
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = ferr
	}
	s := stats.Snapshot()
	fmt.Fprintf(e.stderr, "parse-log: %d lines: %d firewall records, %d other lines skipped, %d malformed records, %d wrapped lines joined\n",
		s.Lines, s.Firewall, s.NotFirewall, s.Malformed, s.Joined)
	if err != nil {
		return fmt.Errorf("parse-log: %w", err)
	}
	return nil
}
