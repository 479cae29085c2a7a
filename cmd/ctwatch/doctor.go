package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/ctwatch/ctwatch/internal/doctor"
	"github.com/ctwatch/ctwatch/internal/netns"
)

// doctorFlags are the flags of the doctor command: the parts of a watch
// command line that decide what ctwatch needs.
type doctorFlags struct {
	netnsPath   string
	nflogGroups []uint16
	kernelLog   string
	udpPort     uint16
	format      string
}

func (d *doctorFlags) register(c *kingpin.CmdClause) {
	c.Flag("netns", "Check the network namespace at this path instead of the current one.").
		StringVar(&d.netnsPath)
	c.Flag("nflog-group", "NFLOG group ctwatch will read (repeatable): checks the ruleset logs to it and that it is free.").
		Uint16ListVar(&d.nflogGroups)
	c.Flag("kernel-log", "Kernel log ctwatch will read: checks a LOG rule, read access and nf_log_all_netns.").
		StringVar(&d.kernelLog)
	c.Flag("udp-port", "UDP server port whose flows and drops are watched.").
		Default("53").Uint16Var(&d.udpPort)
	c.Flag("format", "Report format: text or json.").
		Default("text").EnumVar(&d.format, "text", "json")
}

// doctor checks the machine for what the watch command would need and
// prints the report. It returns a *doctor.FailedError, which exits with
// its own code, when a check failed; warnings alone exit 0.
func (e env) doctor(d *doctorFlags) error {
	o := doctor.Options{
		NetNS:       d.netnsPath,
		NFLOGGroups: d.nflogGroups,
		KernelLog:   d.kernelLog,
		UDPPort:     d.udpPort,
	}
	if exe, err := os.Executable(); err == nil {
		o.Executable = exe
	}
	ns, err := netns.Open(d.netnsPath)
	if err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	defer ns.Close()

	rep := doctor.Run(doctor.NewHost(ns, d.udpPort), o)
	if d.format == "json" {
		err = rep.WriteJSON(e.stdout)
	} else {
		err = rep.WriteText(e.stdout)
	}
	if err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	return rep.Err()
}
