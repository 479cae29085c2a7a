package doctor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ctwatch/ctwatch/internal/events/nflog"
)

// System is what the checks may ask of the machine. Methods about the
// watched namespace answer for it, whichever namespace the caller is in.
type System interface {
	// Capabilities returns the effective capability set (CapEff).
	Capabilities() (uint64, error)
	// EnterNetNS tries to switch a thread into the watched namespace and
	// back; nil when no --netns was given.
	EnterNetNS() error
	// Sysctl reads a sysctl, dotted name, in the watched namespace. A
	// missing one returns an error wrapping os.ErrNotExist.
	Sysctl(name string) (string, error)
	// OwnSysctl reads a sysctl in the caller's own namespace.
	OwnSysctl(name string) (string, error)
	// Ruleset lists the watched namespace's firewall.
	Ruleset() Ruleset
	// SubscribeConntrack opens and subscribes a conntrack event socket in
	// the watched namespace, as the watch command does, and closes it.
	SubscribeConntrack() error
	// BindNFLOG binds group in the watched namespace and releases it. An
	// owned group returns an error wrapping nflog.ErrGroupBusy.
	BindNFLOG(group uint16) error
	// NFLOGOwner returns the netlink port ID of the socket that owns
	// group in the watched namespace, if any.
	NFLOGOwner(group uint16) (uint32, bool)
	// OpenKernelLog opens path for reading, as --kernel-log would, and
	// closes it.
	OpenKernelLog(path string) error
}

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capSyslog   = 34
)

// checker runs the checks for one report.
type checker struct {
	sys System
	o   Options

	// facts is the parsed ruleset, read once by the ruleset checks.
	facts    ruleFacts
	factsErr error
	read     bool
}

// check is one check; it may return several results (one per group).
type check func() []Result

func (c *checker) checks() []check {
	list := []check{c.capabilities}
	if c.o.NetNS != "" {
		list = append(list, c.netns)
	}
	list = append(list,
		c.conntrackActive,
		c.conntrackEvents,
		c.eventsSysctl,
		c.timestampSysctl,
		c.acctSysctl,
		c.udpTimeouts,
		c.dropRule,
	)
	if len(c.o.NFLOGGroups) == 0 && c.o.KernelLog == "" {
		list = append(list, c.dropSource)
	}
	if len(c.o.NFLOGGroups) > 0 {
		list = append(list, c.nflogRules, c.nflogFree)
	}
	if c.o.KernelLog != "" {
		list = append(list, c.kernelLogRule, c.kernelLogReadable, c.logAllNetns)
	}
	return list
}

func one(r Result) []Result { return []Result{r} }

// capabilities checks CAP_NET_ADMIN, and CAP_SYS_ADMIN for --netns.
func (c *checker) capabilities() []Result {
	r := Result{Check: "capabilities"}
	caps, err := c.sys.Capabilities()
	if err != nil {
		r.Status, r.Detail = Warn, fmt.Sprintf("cannot read the capability set: %v", err)
		return one(r)
	}
	has := func(bit uint) bool { return caps&(1<<bit) != 0 }
	switch {
	case !has(capNetAdmin):
		r.Status = Fail
		r.Detail = "CAP_NET_ADMIN is not in the effective set: conntrack events, NFLOG " +
			"and SO_RCVBUFFORCE need it"
		r.Fix = c.capFix()
	case c.o.NetNS != "" && !has(capSysAdmin):
		r.Status = Fail
		r.Detail = "--netns needs CAP_SYS_ADMIN to enter the namespace; CAP_NET_ADMIN " +
			"alone works when ctwatch is started inside it"
		r.Fix = []string{
			c.o.inNS("ctwatch ..."),
			"# or, under systemd: NetworkNamespacePath=" + c.o.NetNS + " and no --netns",
		}
	default:
		r.Status, r.Detail = OK, "CAP_NET_ADMIN is in the effective set"
	}
	return one(r)
}

func (c *checker) capFix() []string {
	return []string{
		"setcap cap_net_admin+ep " + c.o.executable(),
		"# or run it as root, or under systemd with AmbientCapabilities=CAP_NET_ADMIN",
	}
}

// netns checks that the namespace given with --netns can be entered.
func (c *checker) netns() []Result {
	r := Result{Check: "netns"}
	if err := c.sys.EnterNetNS(); err != nil {
		r.Status = Fail
		r.Detail = fmt.Sprintf("cannot enter %s: %v", c.o.NetNS, err)
		if errors.Is(err, os.ErrNotExist) {
			r.Fix = []string{"ip netns list", "# and pass an existing namespace to --netns"}
		} else {
			r.Fix = []string{c.o.inNS("ctwatch doctor ...")}
		}
		return one(r)
	}
	r.Status, r.Detail = OK, "entered "+c.o.NetNS
	return one(r)
}

// ruleset reads and parses the ruleset once.
func (c *checker) ruleset() (ruleFacts, error) {
	if c.read {
		return c.facts, c.factsErr
	}
	c.read = true
	rs := c.sys.Ruleset()
	if rs.NFTErr != nil && rs.IPTErr != nil {
		c.factsErr = fmt.Errorf("list ruleset: %w; %w", rs.NFTErr, rs.IPTErr)
	}
	c.facts = rs.facts(c.o.port())
	return c.facts, c.factsErr
}

// rulesetErrFix is the advice when the ruleset could not be listed: the
// tools are missing, or lack the capability.
func (c *checker) rulesetErrFix(err error) []string {
	if errors.Is(err, ErrToolMissing) {
		return []string{"apt-get install nftables"}
	}
	return c.capFix()
}

// conntrackActive checks that nf_conntrack is loaded and that a rule
// makes it track flows in the namespace: without one there are none.
func (c *checker) conntrackActive() []Result {
	r := Result{Check: "conntrack-active"}
	if _, err := c.sys.Sysctl("net.netfilter.nf_conntrack_count"); err != nil {
		r.Status = Fail
		if errors.Is(err, os.ErrNotExist) {
			r.Detail = "nf_conntrack is not loaded: nothing is tracked"
			r.Fix = []string{"modprobe nf_conntrack"}
		} else {
			r.Detail = fmt.Sprintf("cannot read nf_conntrack_count: %v", err)
		}
		return one(r)
	}
	f, err := c.ruleset()
	switch {
	case err != nil:
		r.Status = Warn
		r.Detail = fmt.Sprintf("cannot tell whether a stateful rule exists: %v", err)
		r.Fix = c.rulesetErrFix(err)
	case !f.stateful:
		r.Status = Fail
		r.Detail = "no stateful rule (ct state, -m state, -m conntrack or NAT): " +
			"conntrack tracks no flows in this namespace"
		r.Fix = c.statefulFix(f)
	default:
		r.Status, r.Detail = OK, "nf_conntrack is loaded and a stateful rule makes it track flows"
	}
	return one(r)
}

// statefulFix is the rule that accepts answers of live flows.
func (c *checker) statefulFix(f ruleFacts) []string {
	p := c.o.port()
	if f.iptables {
		var out []string
		for _, tool := range []string{"iptables", "ip6tables"} {
			out = append(out, c.o.inNS(fmt.Sprintf(
				"%s -A INPUT -p udp --sport %d -m state --state ESTABLISHED,RELATED -j ACCEPT", tool, p)))
		}
		return out
	}
	return []string{
		c.o.inNS("nft add table inet filter"),
		c.o.inNS("nft add chain inet filter input '{ type filter hook input priority 0; }'"),
		c.o.inNS(fmt.Sprintf("nft add rule inet filter input udp sport %d ct state established,related accept", p)),
	}
}

// conntrackEvents subscribes to conntrack events as watch would.
func (c *checker) conntrackEvents() []Result {
	r := Result{Check: "conntrack-events"}
	err := c.sys.SubscribeConntrack()
	switch {
	case err == nil:
		r.Status, r.Detail = OK, "subscribed to ctnetlink events with a 64 MiB buffer"
	case errors.Is(err, os.ErrPermission):
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot subscribe to conntrack events: %v", err)
		r.Fix = c.capFix()
	default:
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot subscribe to conntrack events: %v", err)
		r.Fix = []string{"modprobe nf_conntrack_netlink"}
	}
	return one(r)
}

// sysctlInt reads an integer sysctl of the watched namespace.
func (c *checker) sysctlInt(name string) (int, error) {
	v, err := c.sys.Sysctl(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", name, err)
	}
	return n, nil
}

// sysctlFix is the command that sets a sysctl in the watched namespace.
func (c *checker) sysctlFix(name, value string) string {
	return c.o.inNS("sysctl -w " + name + "=" + value)
}

func (c *checker) eventsSysctl() []Result {
	const name = "net.netfilter.nf_conntrack_events"
	r := Result{Check: "nf_conntrack_events"}
	v, err := c.sysctlInt(name)
	switch {
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot read %s: %v", name, err)
		r.Fix = []string{"modprobe nf_conntrack"}
	case v == 0:
		r.Status = Fail
		r.Detail = "nf_conntrack_events=0: the kernel sends no conntrack events"
		r.Fix = []string{
			c.sysctlFix(name, "1"),
			"# applies to flows created after the change",
		}
	case v == 2:
		r.Status = OK
		r.Detail = "nf_conntrack_events=2: events for flows created while a listener " +
			"exists; older flows are found by the start-up dump"
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("nf_conntrack_events=%d", v)
	}
	return one(r)
}

func (c *checker) timestampSysctl() []Result {
	return c.flagSysctl("nf_conntrack_timestamp",
		"DESTROY events carry the kernel's start and stop times",
		"no kernel timestamps: expiry is estimated from the last event plus the "+
			"timeout, with seconds of error")
}

func (c *checker) acctSysctl() []Result {
	return c.flagSysctl("nf_conntrack_acct",
		"flows carry packet and byte counters",
		"no packet counters on flows")
}

// flagSysctl checks a conntrack extension that should be on; off is a
// warning, since ctwatch works, only less precisely.
func (c *checker) flagSysctl(short, on, off string) []Result {
	name := "net.netfilter." + short
	r := Result{Check: short}
	v, err := c.sysctlInt(name)
	switch {
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot read %s: %v", name, err)
		r.Fix = []string{"modprobe nf_conntrack"}
	case v == 0:
		r.Status, r.Detail = Warn, short+"=0: "+off
		r.Fix = []string{
			c.sysctlFix(name, "1"),
			"# applies to flows created after the change",
		}
	default:
		r.Status, r.Detail = OK, short+"=1: "+on
	}
	return one(r)
}

// udpTimeouts reports the UDP timeouts verdicts are explained with.
func (c *checker) udpTimeouts() []Result {
	r := Result{Check: "udp-timeouts"}
	u, err1 := c.sysctlInt("net.netfilter.nf_conntrack_udp_timeout")
	s, err2 := c.sysctlInt("net.netfilter.nf_conntrack_udp_timeout_stream")
	if err := errors.Join(err1, err2); err != nil {
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot read the UDP timeouts: %v", err)
		r.Fix = []string{"modprobe nf_conntrack"}
		return one(r)
	}
	r.Status = OK
	r.Detail = fmt.Sprintf("nf_conntrack_udp_timeout=%ds, nf_conntrack_udp_timeout_stream=%ds", u, s)
	return one(r)
}

// dropRule checks that some rule logs UDP packets from the port.
func (c *checker) dropRule() []Result {
	r := Result{Check: "drop-rule"}
	f, err := c.ruleset()
	switch {
	case err != nil:
		r.Status = Warn
		r.Detail = fmt.Sprintf("cannot tell whether a rule logs drops: %v", err)
		r.Fix = c.rulesetErrFix(err)
	case len(f.logs) == 0:
		r.Status = Fail
		r.Detail = fmt.Sprintf("no rule logs UDP packets from port %d: there are no drops to label",
			c.o.port())
		r.Fix = c.dropFix(f, c.dropFixKernel(), c.firstGroup())
	default:
		r.Status, r.Detail = OK, "UDP from port "+strconv.Itoa(int(c.o.port()))+
			" is logged: "+describeLogs(f.logs)
	}
	return one(r)
}

// dropFixKernel reports whether the drop-rule advice writes kernel LOG
// lines rather than NFLOG records: only when the kernel log is the one
// drop source asked for.
func (c *checker) dropFixKernel() bool {
	return c.o.KernelLog != "" && len(c.o.NFLOGGroups) == 0
}

// firstGroup is the NFLOG group the drop-rule advice logs to.
func (c *checker) firstGroup() uint16 {
	if len(c.o.NFLOGGroups) > 0 {
		return c.o.NFLOGGroups[0]
	}
	return 1
}

// dropFix is a complete stateful accept plus log-and-drop pair in one
// chain: the accept must come first, or every answer would be dropped.
// When there is no stateful rule, conntrack-active has already printed
// the accept, so the log-and-drop rules follow it instead of repeating
// it; they append, so they land after it. kernel picks a kernel LOG rule
// instead of NFLOG to group.
func (c *checker) dropFix(f ruleFacts, kernel bool, group uint16) []string {
	p := c.o.port()
	var out []string
	if !f.stateful {
		out = []string{"# after the conntrack-active fix above:"}
	}
	if f.iptables {
		target := fmt.Sprintf("NFLOG --nflog-group %d --nflog-threshold 1", group)
		if kernel {
			target = `LOG --log-prefix "dns-drop: "`
		}
		for _, tool := range []string{"iptables", "ip6tables"} {
			if f.stateful {
				out = append(out, c.o.inNS(fmt.Sprintf(
					"%s -A INPUT -p udp --sport %d -m state --state ESTABLISHED,RELATED -j ACCEPT", tool, p)))
			}
			out = append(out,
				c.o.inNS(fmt.Sprintf("%s -A INPUT -p udp --sport %d -j %s", tool, p, target)),
				c.o.inNS(fmt.Sprintf("%s -A INPUT -p udp --sport %d -j DROP", tool, p)))
		}
		return out
	}
	rule := fmt.Sprintf("nft add rule inet filter input udp sport %d log group %d queue-threshold 1 drop", p, group)
	if kernel {
		rule = fmt.Sprintf(`nft 'add rule inet filter input udp sport %d log prefix "dns-drop: " drop'`, p)
	}
	if f.stateful {
		out = append(out, c.statefulFix(f)...)
	}
	return append(out, c.o.inNS(rule))
}

func describeLogs(logs []logRule) string {
	var parts []string
	for _, l := range logs {
		s := "kernel LOG"
		if l.nflog {
			s = fmt.Sprintf("NFLOG group %d", l.group)
		}
		if l.prefix != "" {
			s += fmt.Sprintf(" (prefix %q)", l.prefix)
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

// dropSource warns when neither --nflog-group nor --kernel-log is given,
// and says which the ruleset calls for.
func (c *checker) dropSource() []Result {
	r := Result{Check: "drop-source", Status: Warn,
		Detail: "no --nflog-group or --kernel-log: ctwatch would follow flows but see no drops"}
	f, _ := c.ruleset()
	for _, g := range f.groups() {
		r.Fix = append(r.Fix, fmt.Sprintf("ctwatch --nflog-group %d", g))
	}
	if f.kernelLog() {
		r.Fix = append(r.Fix, "ctwatch --kernel-log /dev/kmsg")
	}
	if len(r.Fix) == 0 {
		r.Fix = []string{"ctwatch --nflog-group 1"}
	}
	return one(r)
}

// nflogRules checks that each --nflog-group is one the ruleset logs UDP
// from the port to.
func (c *checker) nflogRules() []Result {
	f, err := c.ruleset()
	var out []Result
	for _, g := range c.o.NFLOGGroups {
		r := Result{Check: fmt.Sprintf("nflog-rule %d", g)}
		switch {
		case err != nil:
			r.Status, r.Detail = Warn, fmt.Sprintf("cannot list the ruleset: %v", err)
		case slices.Contains(f.groups(), g):
			r.Status = OK
			r.Detail = fmt.Sprintf("a rule logs UDP from port %d to NFLOG group %d", c.o.port(), g)
		case len(f.groups()) > 0:
			r.Status = Fail
			r.Detail = fmt.Sprintf("no rule logs UDP from port %d to NFLOG group %d; the ruleset logs to %s",
				c.o.port(), g, groupList(f.groups()))
			r.Fix = []string{fmt.Sprintf("ctwatch --nflog-group %d", f.groups()[0])}
		case f.kernelLog():
			r.Status = Fail
			r.Detail = fmt.Sprintf("no rule logs UDP from port %d to NFLOG group %d; the ruleset "+
				"writes kernel LOG lines for them", c.o.port(), g)
			r.Fix = []string{"ctwatch --kernel-log /dev/kmsg",
				"# or add an NFLOG rule as drop-rule shows, for precise times and the DNS header"}
		case g == c.firstGroup():
			// drop-rule failed too and its fix logs to this group:
			// repeating four commands would hide that it is one fix.
			r.Status = Fail
			r.Detail = fmt.Sprintf("no rule logs UDP from port %d to NFLOG group %d", c.o.port(), g)
			r.Fix = []string{fmt.Sprintf("# the drop-rule fix above logs to group %d", g)}
		default:
			r.Status = Fail
			r.Detail = fmt.Sprintf("no rule logs UDP from port %d to NFLOG group %d", c.o.port(), g)
			r.Fix = c.dropFix(f, false, g)
		}
		out = append(out, r)
	}
	return out
}

func groupList(gs []uint16) string {
	var s []string
	for _, g := range gs {
		s = append(s, "group "+strconv.Itoa(int(g)))
	}
	return strings.Join(s, ", ")
}

// nflogFree binds each --nflog-group: only one socket may own a group.
func (c *checker) nflogFree() []Result {
	var out []Result
	for _, g := range c.o.NFLOGGroups {
		r := Result{Check: fmt.Sprintf("nflog-free %d", g)}
		err := c.sys.BindNFLOG(g)
		switch {
		case err == nil:
			r.Status, r.Detail = OK, fmt.Sprintf("NFLOG group %d is free and could be bound", g)
		case errors.Is(err, nflog.ErrGroupBusy):
			r.Status = Fail
			r.Detail = fmt.Sprintf("NFLOG group %d is owned by another socket "+
				"(ulogd, another ctwatch or tool): only one may read a group", g)
			if port, ok := c.sys.NFLOGOwner(g); ok {
				r.Detail += fmt.Sprintf("; its netlink port ID is %d, usually the owner's pid", port)
				r.Fix = []string{fmt.Sprintf("ps -o pid,args -p %d", port),
					"# stop that process, or log to a free group and pass that to --nflog-group"}
			} else {
				r.Fix = []string{c.o.inNS("cat /proc/net/netfilter/nfnetlink_log"),
					"# the second column is the owner's netlink port ID, usually its pid: stop it"}
			}
		case errors.Is(err, os.ErrPermission):
			r.Status, r.Detail = Fail, fmt.Sprintf("cannot bind NFLOG group %d: %v", g, err)
			r.Fix = c.capFix()
		default:
			r.Status, r.Detail = Fail, fmt.Sprintf("cannot bind NFLOG group %d: %v", g, err)
			r.Fix = []string{"modprobe nfnetlink_log"}
		}
		out = append(out, r)
	}
	return out
}

// kernelLogRule checks for a rule that writes kernel LOG lines for UDP
// from the port.
func (c *checker) kernelLogRule() []Result {
	r := Result{Check: "kernel-log-rule"}
	f, err := c.ruleset()
	switch {
	case err != nil:
		r.Status, r.Detail = Warn, fmt.Sprintf("cannot list the ruleset: %v", err)
	case f.kernelLog():
		r.Status = OK
		r.Detail = fmt.Sprintf("a rule writes kernel LOG lines for UDP from port %d", c.o.port())
	case len(f.groups()) > 0:
		r.Status = Fail
		r.Detail = fmt.Sprintf("no rule writes kernel LOG lines for UDP from port %d; the ruleset "+
			"logs them to NFLOG %s", c.o.port(), groupList(f.groups()))
		r.Fix = []string{fmt.Sprintf("ctwatch --nflog-group %d", f.groups()[0]),
			"# instead of --kernel-log: NFLOG is the more precise source"}
	case c.dropFixKernel():
		r.Status = Fail
		r.Detail = fmt.Sprintf("no rule writes kernel LOG lines for UDP from port %d", c.o.port())
		r.Fix = []string{"# the drop-rule fix above writes them"}
	default:
		r.Status = Fail
		r.Detail = fmt.Sprintf("no rule writes kernel LOG lines for UDP from port %d", c.o.port())
		r.Fix = c.dropFix(f, true, 0)
	}
	return one(r)
}

// kernelLogReadable opens the --kernel-log source.
func (c *checker) kernelLogReadable() []Result {
	r := Result{Check: "kernel-log-readable"}
	path := c.o.KernelLog
	if path == "-" {
		r.Status, r.Detail = OK, "kernel log lines are read from stdin"
		return one(r)
	}
	err := c.sys.OpenKernelLog(path)
	switch {
	case err == nil:
		r.Status, r.Detail = OK, path+" can be read"
	case errors.Is(err, os.ErrPermission) && path == "/dev/kmsg":
		r.Status = Fail
		r.Detail = fmt.Sprintf("cannot read /dev/kmsg: %v (kernel.dmesg_restrict=1 asks for CAP_SYSLOG)", err)
		r.Fix = []string{
			"setcap cap_net_admin,cap_syslog+ep " + c.o.executable(),
			"# under systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_SYSLOG",
		}
	case errors.Is(err, os.ErrPermission):
		r.Status = Fail
		r.Detail = fmt.Sprintf("cannot read %s: %v", path, err)
		r.Fix = []string{"# give the ctwatch user read access, e.g. under systemd: SupplementaryGroups=adm"}
	default:
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot read %s: %v", path, err)
		r.Fix = []string{"# pass an existing file, - for stdin, or /dev/kmsg to --kernel-log"}
	}
	return one(r)
}

// logAllNetns checks nf_log_all_netns, without which the LOG target
// writes nothing for packets outside the initial namespace. The sysctl
// exists in the initial namespace only, which tells the two apart.
func (c *checker) logAllNetns() []Result {
	const name = "net.netfilter.nf_log_all_netns"
	r := Result{Check: "nf_log_all_netns"}
	if _, err := c.sys.Sysctl(name); err == nil {
		r.Status, r.Detail = OK, "the watched namespace is the initial one: LOG lines are written"
		return one(r)
	}
	v, err := c.sys.OwnSysctl(name)
	switch {
	case err != nil:
		r.Status = Warn
		r.Detail = "the watched namespace is not the initial one, and nf_log_all_netns " +
			"cannot be read from here: LOG lines are written only when it is 1"
		r.Fix = []string{"sysctl -w " + name + "=1", "# in the initial network namespace"}
	case strings.TrimSpace(v) == "0":
		r.Status = Fail
		r.Detail = "nf_log_all_netns=0: the LOG target writes no lines for packets " +
			"outside the initial namespace"
		r.Fix = []string{"sysctl -w " + name + "=1", "# in the initial network namespace"}
	default:
		r.Status = OK
		r.Detail = "nf_log_all_netns=1: LOG lines from this namespace are written " +
			"(they do not say which namespace; use --log-prefix)"
	}
	return one(r)
}
