package main

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ErrMissing is returned when the output lacks a benchmark, a metric or
// a configuration line the table needs.
var ErrMissing = errors.New("missing from benchmark output")

// row is one line of the table. Its cells are filled from the results
// by a lookup that records every metric it cannot find.
type row struct {
	what, ctwatch, reference, goal string
}

// lookup reads metrics and remembers which were absent, so that one run
// reports everything that is missing rather than the first gap.
type lookup struct {
	res     *Results
	missing []string
}

func (l *lookup) get(key, unit string) float64 {
	v, ok := l.res.Metric(key, unit)
	if !ok {
		l.missing = append(l.missing, key+" "+unit)
	}
	return v
}

func (l *lookup) config(key string) string {
	v, ok := l.res.Config[key]
	if !ok {
		l.missing = append(l.missing, "config line "+key+":")
	}
	return v
}

const (
	follower = "events.BenchmarkFollower/"
	memory   = "correlate.BenchmarkMemoryPerFlow/"
	match    = "correlate.BenchmarkMatch/"
	observe  = "correlate.BenchmarkObserve"
	grep     = "kernlog.BenchmarkVersusGrep"
	verdict  = "demo.BenchmarkDropToVerdict"
	nflogLat = "nflog.BenchmarkDropLatency"
)

// Build renders the results as a markdown table preceded by the line that
// says when, where and how they were measured. It fails with ErrMissing
// when any figure is absent and when a benchmark failed or was skipped.
func Build(res *Results) (string, error) {
	if len(res.Failures) > 0 || len(res.Skipped) > 0 {
		return "", fmt.Errorf("benchmarks failed: %s; skipped: %s",
			list(res.Failures), list(res.Skipped))
	}
	l := &lookup{res: res}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured on %s, Linux %s, %s (%s cores), with `%s` (%s).\n\n",
		l.config("date"), l.config("kernel"), l.config("cpu"), l.config("cores"),
		l.config("command"), l.config("settings"))
	b.WriteString("| What is measured | ctwatch | Reference, same load | Goal |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, r := range rows(l) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.what, r.ctwatch, r.reference, r.goal)
	}
	if len(l.missing) > 0 {
		sort.Strings(l.missing)
		return "", fmt.Errorf("%w:\n  %s", ErrMissing, strings.Join(l.missing, "\n  "))
	}
	return b.String(), nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func rows(l *lookup) []row {
	var rs []row

	// Sustained rate: every event of the load reached the follower, and
	// neither ENOBUFS nor the kernel's drop counter says otherwise.
	udp := follower + "udp-only"
	lost := l.get(udp, "overflows")
	drops, known := l.res.Metric(udp, "kernel-drops")
	lostText := fmt.Sprintf("%s lost (ENOBUFS: %s", count(lost+drops), count(lost))
	if known {
		lostText += ", kernel drops: " + count(drops)
	}
	lostText += ")"
	rs = append(rs, row{
		what: fmt.Sprintf("Conntrack events per second sustained at the default "+
			"64 MiB buffer: NEW and DESTROY of %s new UDP/53 flows/s for %.0f s",
			count(l.get(udp, "udp-flows/s")), l.get(udp, "load-s")),
		ctwatch: count(l.get(udp, "events/s")) + " events/s, " + lostText,
		reference: fmt.Sprintf("`conntrack -E -p udp`: %s of %s events shown%s",
			count(l.get(udp, "conntrack-events")), count(l.get(udp, "ctwatch-events")),
			enobufs(l.get(udp, "conntrack-enobufs"))),
		goal: goal("zero loss", lost+drops == 0),
	})

	for _, c := range []struct{ sub, what string }{
		{"udp-only", "UDP/53 flows only"},
		{"with-tcp-noise", "plus as many TCP flows (noise), BPF socket filter on"},
	} {
		k := follower + c.sub
		rs = append(rs, row{
			what:    "CPU seconds per million conntrack events, " + c.what,
			ctwatch: fmt.Sprintf("%.2f s", l.get(k, "ctwatch-cpu-s/Mevents")),
			reference: fmt.Sprintf("`conntrack -E -p udp` > /dev/null: %.2f s",
				l.get(k, "conntrack-cpu-s/Mevents")),
			goal: "–",
		})
	}
	rs = append(rs, row{
		what: "CPU seconds per million conntrack events, TCP noise, " +
			"BPF filter off (noise discarded in userspace)",
		ctwatch: fmt.Sprintf("%.2f s",
			l.get(follower+"with-tcp-noise-no-bpf", "ctwatch-cpu-s/Mevents")),
		reference: "–",
		goal:      "–",
	})

	expired := l.get(memory+"expired", "bytes/flow")
	live := l.get(memory+"live", "bytes/flow")
	rs = append(rs, row{
		what: "Heap per remembered flow, 1M flows in the correlator: " +
			"expired / live",
		ctwatch:   fmt.Sprintf("%.1f / %.1f bytes", expired, live),
		reference: "–",
		goal:      goal("≤ 128 bytes/flow", math.Max(expired, live) <= 128),
	})

	parser := l.get(grep, "parser-lines/s")
	rs = append(rs, row{
		what: "Kernel LOG lines parsed per second, one core: 1M-line log " +
			"read, joined, parsed, DNS records counted",
		ctwatch: fmt.Sprintf("%s lines/s (%s UDP/53 records)", count(parser),
			count(l.get(grep, "dns-records"))),
		reference: fmt.Sprintf("`grep -c 'SPT=53 '`: %s lines/s (%s matches, "+
			"ICMP quotes included)", count(l.get(grep, "grep-lines/s")),
			count(l.get(grep, "grep-matches"))),
		goal: goal("≥ 1M lines/s", parser >= 1e6),
	})

	rs = append(rs, row{
		what: "Drops matched per second against 1M remembered flows: " +
			"late / tracked / unsolicited",
		ctwatch: fmt.Sprintf("%s / %s / %s drops/s", count(l.get(match+"late", "drops/s")),
			count(l.get(match+"tracked", "drops/s")),
			count(l.get(match+"unsolicited", "drops/s"))),
		reference: "–",
		goal:      "–",
	}, row{
		what:      "Conntrack events indexed per second by the correlator (NEW, reply, DESTROY)",
		ctwatch:   count(l.get(observe, "events/s")) + " events/s",
		reference: "–",
		goal:      "–",
	})

	p99 := l.get(verdict, "late-p99-ms")
	rs = append(rs, row{
		what: "Drop-to-verdict latency via NFLOG, whole pipeline in the lab: " +
			"kernel timestamp of a late answer's drop to its verdict, p50 / p99",
		ctwatch:   fmt.Sprintf("%.2f / %.2f ms", l.get(verdict, "late-p50-ms"), p99),
		reference: "–",
		goal:      goal("p99 < 5 ms", p99 < 5),
	}, row{
		what: "NFLOG read latency: kernel timestamp to decoded drop, p50 / p99",
		ctwatch: fmt.Sprintf("%.3f / %.3f ms",
			l.get(nflogLat, "kernel-to-emit-p50-ns")/1e6,
			l.get(nflogLat, "kernel-to-emit-p99-ns")/1e6),
		reference: "–",
		goal:      "–",
	})
	return rs
}

// goal states a goal and whether this run met it.
func goal(text string, met bool) string {
	if met {
		return text + ": met"
	}
	return text + ": **missed**"
}

func enobufs(v float64) string {
	if v != 0 {
		return ", ENOBUFS (lost events)"
	}
	return ", no ENOBUFS"
}

// count formats a count or rate rounded to an integer with thousands
// separators.
func count(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
