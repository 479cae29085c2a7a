package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/ctwatch/ctwatch/internal/web"
)

// usageError marks errors caused by the command line; they exit with 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	var c exitCoder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return 1
}

// exitCoder lets a command choose its exit status (doctor does).
type exitCoder interface{ ExitCode() int }

// env is what a command may use of the outside world. run builds it; tests
// build their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// isTerminal reports whether stdout is a terminal.
	isTerminal bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := env{stdin: os.Stdin, stdout: stdout, stderr: stderr, isTerminal: isTerminal(stdout)}
	return e.run(ctx, args)
}

// cli is the parsed command line: the kingpin application and what its
// flags are parsed into.
type cli struct {
	app       *kingpin.Application
	exited    bool
	logConfig promslog.Config

	watchCmd, parseLogCmd, demoCmd, versionCmd *kingpin.CmdClause
	doctorCmd                                  *kingpin.CmdClause

	watch    watchFlags
	parseLog parseLogFlags
	demo     demoFlags
	doctor   doctorFlags
}

// newCLI builds the command line. It is built fresh for every run, so
// tests may call run concurrently, and the README test reads its model.
func newCLI(stdout, stderr io.Writer) *cli {
	c := &cli{}
	k := kingpin.New("ctwatch", "Tell late DNS answers from unsolicited packets dropped by a stateful firewall.")
	c.app = k
	k.Writer(stderr)
	k.UsageWriter(stdout)
	k.Terminate(func(int) { c.exited = true })
	k.HelpFlag.Short('h')
	k.Version(version.Print("ctwatch"))
	promslogflag.AddFlags(k, &c.logConfig)

	c.watchCmd = k.Command("watch", "Watch conntrack events and drop records and label every drop (the default command).").Default()
	c.watch.register(c.watchCmd)
	c.watch.web = web.AddFlags(c.watchCmd)

	c.parseLogCmd = k.Command("parse-log", "Parse kernel LOG lines and print one JSON object per firewall record.")
	c.parseLog.register(c.parseLogCmd)

	c.demoCmd = k.Command("demo", "Build a lab of network namespaces, run a realistic mix of DNS traffic through it and watch it live.")
	c.demo.register(c.demoCmd)

	c.doctorCmd = k.Command("doctor", "Check what ctwatch needs (capabilities, conntrack, sysctls, ruleset, NFLOG) and print the command that fixes each gap.")
	c.doctor.register(c.doctorCmd)

	c.versionCmd = k.Command("version", "Print the version and exit.")
	return c
}

func (e env) run(ctx context.Context, args []string) error {
	c := newCLI(e.stdout, e.stderr)
	cmd, err := c.app.Parse(args)
	if c.exited {
		return nil // --help or --version printed
	}
	if err != nil {
		return usageError{err}
	}
	c.logConfig.Writer = e.stderr
	logger := promslog.New(&c.logConfig)

	switch cmd {
	case c.versionCmd.FullCommand():
		fmt.Fprintln(e.stdout, version.Print("ctwatch"))
		return nil
	case c.watchCmd.FullCommand():
		return e.watch(ctx, logger, &c.watch)
	case c.parseLogCmd.FullCommand():
		return e.parseLog(ctx, &c.parseLog)
	case c.demoCmd.FullCommand():
		return e.demo(ctx, logger, &c.demo)
	case c.doctorCmd.FullCommand():
		return e.doctor(&c.doctor)
	}
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}
