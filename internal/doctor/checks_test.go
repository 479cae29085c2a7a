package doctor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/internal/events/nflog"
	"golang.org/x/sys/unix"
)

// fakeSystem is a System whose every answer the test sets.
type fakeSystem struct {
	caps         uint64
	enterErr     error
	sysctls      map[string]string // watched namespace; absent: ENOENT
	own          map[string]string // caller's namespace
	rules        Ruleset
	subscribeErr error
	bindErr      map[uint16]error
	owners       map[uint16]uint32
	openErr      error
}

func (f *fakeSystem) Capabilities() (uint64, error) { return f.caps, nil }
func (f *fakeSystem) EnterNetNS() error             { return f.enterErr }
func (f *fakeSystem) Sysctl(name string) (string, error) {
	return lookup(f.sysctls, name)
}
func (f *fakeSystem) OwnSysctl(name string) (string, error) { return lookup(f.own, name) }
func (f *fakeSystem) Ruleset() Ruleset                      { return f.rules }
func (f *fakeSystem) SubscribeConntrack() error             { return f.subscribeErr }
func (f *fakeSystem) BindNFLOG(g uint16) error              { return f.bindErr[g] }
func (f *fakeSystem) NFLOGOwner(g uint16) (uint32, bool) {
	p, ok := f.owners[g]
	return p, ok
}
func (f *fakeSystem) OpenKernelLog(string) error { return f.openErr }

func lookup(m map[string]string, name string) (string, error) {
	if v, ok := m[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("read sysctl: open %s: %w", name, os.ErrNotExist)
}

const goodNFT = `table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		udp sport 53 ct state established,related accept
		udp sport 53 counter packets 0 bytes 0 log prefix "dns-drop: " group 5 queue-threshold 1 drop
		udp sport 53 log prefix "dns-drop: " drop
	}
}
`

// noLogNFT tracks flows and drops answers, but logs nothing.
const noLogNFT = `table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		udp sport 53 ct state established,related accept
		udp sport 53 drop
	}
}
`

// goodSystem is a machine where every check passes: root, conntrack
// with timestamps and accounting, and a ruleset that logs to group 5 and
// the kernel log, in a non-initial namespace with nf_log_all_netns=1.
func goodSystem() *fakeSystem {
	return &fakeSystem{
		caps: 1<<capNetAdmin | 1<<capSysAdmin,
		sysctls: map[string]string{
			"net.netfilter.nf_conntrack_count":              "3",
			"net.netfilter.nf_conntrack_events":             "1",
			"net.netfilter.nf_conntrack_timestamp":          "1",
			"net.netfilter.nf_conntrack_acct":               "1",
			"net.netfilter.nf_conntrack_udp_timeout":        "30",
			"net.netfilter.nf_conntrack_udp_timeout_stream": "120",
		},
		own:   map[string]string{"net.netfilter.nf_log_all_netns": "1"},
		rules: Ruleset{NFT: goodNFT, IPTErr: fmt.Errorf("iptables-save: %w", ErrToolMissing)},
	}
}

var goodOptions = Options{
	NetNS:       "/run/netns/resolver",
	NFLOGGroups: []uint16{5},
	KernelLog:   "/dev/kmsg",
	Executable:  "/usr/bin/ctwatch",
}

func find(t *testing.T, r Report, check string) Result {
	t.Helper()
	for _, res := range r.Results {
		if res.Check == check {
			return res
		}
	}
	t.Fatalf("no result for check %q in %+v", check, r.Results)
	return Result{}
}

func TestAllGood(t *testing.T) {
	r := Run(goodSystem(), goodOptions)
	for _, res := range r.Results {
		if res.Status != OK {
			t.Errorf("%s: %v: %s (fix %q)", res.Check, res.Status, res.Detail, res.Fix)
		}
	}
	want := []string{"capabilities", "netns", "conntrack-active", "conntrack-events",
		"nf_conntrack_events", "nf_conntrack_timestamp", "nf_conntrack_acct", "udp-timeouts",
		"drop-rule", "nflog-rule 5", "nflog-free 5", "kernel-log-rule", "kernel-log-readable",
		"nf_log_all_netns"}
	var got []string
	for _, res := range r.Results {
		got = append(got, res.Check)
	}
	if !slices.Equal(got, want) {
		t.Errorf("checks %q, want %q", got, want)
	}
	if err := r.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
}

// TestGaps breaks one thing at a time and checks the verdict and the
// exact advice of the check that must catch it.
func TestGaps(t *testing.T) {
	const nsExec = "ip netns exec resolver "
	nftSetup := []string{
		nsExec + "nft add table inet filter",
		nsExec + "nft add chain inet filter input '{ type filter hook input priority 0; }'",
		nsExec + "nft add rule inet filter input udp sport 53 ct state established,related accept",
	}
	capFix := []string{
		"setcap cap_net_admin+ep /usr/bin/ctwatch",
		"# or run it as root, or under systemd with AmbientCapabilities=CAP_NET_ADMIN",
	}
	for _, tc := range []struct {
		name   string
		opts   func(*Options)
		break_ func(*fakeSystem)
		check  string
		status Status
		detail string // substring
		fix    []string
	}{
		{
			name:   "no CAP_NET_ADMIN",
			break_: func(f *fakeSystem) { f.caps = 0 },
			check:  "capabilities", status: Fail,
			detail: "CAP_NET_ADMIN is not in the effective set",
			fix:    capFix,
		},
		{
			name:   "--netns without CAP_SYS_ADMIN",
			break_: func(f *fakeSystem) { f.caps = 1 << capNetAdmin },
			check:  "capabilities", status: Fail,
			detail: "--netns needs CAP_SYS_ADMIN",
			fix: []string{
				"ip netns exec resolver ctwatch ...",
				"# or, under systemd: NetworkNamespacePath=/run/netns/resolver and no --netns",
			},
		},
		{
			name:   "netns cannot be entered",
			break_: func(f *fakeSystem) { f.enterErr = unix.EPERM },
			check:  "netns", status: Fail,
			detail: "cannot enter /run/netns/resolver",
			fix:    []string{"ip netns exec resolver ctwatch doctor ..."},
		},
		{
			name:   "nf_conntrack not loaded",
			break_: func(f *fakeSystem) { delete(f.sysctls, "net.netfilter.nf_conntrack_count") },
			check:  "conntrack-active", status: Fail,
			detail: "nf_conntrack is not loaded",
			fix:    []string{"modprobe nf_conntrack"},
		},
		{
			name: "no stateful rule",
			break_: func(f *fakeSystem) {
				f.rules.NFT = strings.ReplaceAll(goodNFT, "ct state established,related ", "")
			},
			check: "conntrack-active", status: Fail,
			detail: "no stateful rule",
			fix:    nftSetup,
		},
		{
			name: "no stateful rule, iptables",
			break_: func(f *fakeSystem) {
				f.rules = Ruleset{NFTErr: ErrToolMissing,
					IPT: "*filter\n-A INPUT -p udp -m udp --sport 53 -j NFLOG --nflog-group 5\nCOMMIT\n"}
			},
			check: "conntrack-active", status: Fail,
			fix: []string{
				nsExec + "iptables -A INPUT -p udp --sport 53 -m state --state ESTABLISHED,RELATED -j ACCEPT",
				nsExec + "ip6tables -A INPUT -p udp --sport 53 -m state --state ESTABLISHED,RELATED -j ACCEPT",
			},
		},
		{
			name: "ruleset unreadable",
			break_: func(f *fakeSystem) {
				f.rules = Ruleset{NFTErr: unix.EPERM, IPTErr: unix.EPERM}
			},
			check: "conntrack-active", status: Warn,
			detail: "cannot tell whether a stateful rule exists",
			fix:    capFix,
		},
		{
			name:   "no ctnetlink",
			break_: func(f *fakeSystem) { f.subscribeErr = unix.EPROTONOSUPPORT },
			check:  "conntrack-events", status: Fail,
			fix: []string{"modprobe nf_conntrack_netlink"},
		},
		{
			name:   "conntrack events refused",
			break_: func(f *fakeSystem) { f.subscribeErr = fmt.Errorf("subscribe: %w", unix.EPERM) },
			check:  "conntrack-events", status: Fail,
			fix: capFix,
		},
		{
			name: "UDP timeouts unreadable",
			break_: func(f *fakeSystem) {
				delete(f.sysctls, "net.netfilter.nf_conntrack_udp_timeout_stream")
			},
			check: "udp-timeouts", status: Fail,
			detail: "cannot read the UDP timeouts",
			fix:    []string{"modprobe nf_conntrack"},
		},
		{
			name: "NFLOG bind refused",
			break_: func(f *fakeSystem) {
				f.bindErr = map[uint16]error{5: fmt.Errorf("bind: %w", unix.EPERM)}
			},
			check: "nflog-free 5", status: Fail,
			detail: "cannot bind NFLOG group 5",
			fix:    capFix,
		},
		{
			name:   "no nfnetlink_log",
			break_: func(f *fakeSystem) { f.bindErr = map[uint16]error{5: unix.EPROTONOSUPPORT} },
			check:  "nflog-free 5", status: Fail,
			fix: []string{"modprobe nfnetlink_log"},
		},
		{
			name:   "events off",
			break_: func(f *fakeSystem) { f.sysctls["net.netfilter.nf_conntrack_events"] = "0" },
			check:  "nf_conntrack_events", status: Fail,
			detail: "nf_conntrack_events=0",
			fix: []string{
				nsExec + "sysctl -w net.netfilter.nf_conntrack_events=1",
				"# applies to flows created after the change",
			},
		},
		{
			name:   "timestamps off",
			break_: func(f *fakeSystem) { f.sysctls["net.netfilter.nf_conntrack_timestamp"] = "0" },
			check:  "nf_conntrack_timestamp", status: Warn,
			detail: "nf_conntrack_timestamp=0",
			fix: []string{
				nsExec + "sysctl -w net.netfilter.nf_conntrack_timestamp=1",
				"# applies to flows created after the change",
			},
		},
		{
			name:   "timestamps off, current namespace",
			opts:   func(o *Options) { o.NetNS = "" },
			break_: func(f *fakeSystem) { f.sysctls["net.netfilter.nf_conntrack_timestamp"] = "0" },
			check:  "nf_conntrack_timestamp", status: Warn,
			fix: []string{
				"sysctl -w net.netfilter.nf_conntrack_timestamp=1",
				"# applies to flows created after the change",
			},
		},
		{
			name:   "timestamps off, namespace by /proc path",
			opts:   func(o *Options) { o.NetNS = "/proc/42/ns/net" },
			break_: func(f *fakeSystem) { f.sysctls["net.netfilter.nf_conntrack_timestamp"] = "0" },
			check:  "nf_conntrack_timestamp", status: Warn,
			fix: []string{
				"nsenter --net=/proc/42/ns/net sysctl -w net.netfilter.nf_conntrack_timestamp=1",
				"# applies to flows created after the change",
			},
		},
		{
			name:   "accounting off",
			break_: func(f *fakeSystem) { f.sysctls["net.netfilter.nf_conntrack_acct"] = "0" },
			check:  "nf_conntrack_acct", status: Warn,
			fix: []string{
				nsExec + "sysctl -w net.netfilter.nf_conntrack_acct=1",
				"# applies to flows created after the change",
			},
		},
		{
			name: "nothing logs drops",
			break_: func(f *fakeSystem) {
				f.rules.NFT = `table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		udp sport 53 ct state established,related accept
		udp sport 53 drop
	}
}
`
			},
			check: "drop-rule", status: Fail,
			detail: "no rule logs UDP packets from port 53",
			fix: append(slices.Clone(nftSetup),
				nsExec+"nft add rule inet filter input udp sport 53 log group 5 queue-threshold 1 drop"),
		},
		{
			name: "nothing logs drops, iptables, port 5353",
			opts: func(o *Options) { o.UDPPort = 5353; o.NetNS = "" },
			break_: func(f *fakeSystem) {
				f.rules = Ruleset{NFTErr: ErrToolMissing,
					IPT: "*filter\n-A INPUT -p udp -m udp --sport 53 -j NFLOG --nflog-group 5\nCOMMIT\n"}
			},
			check: "drop-rule", status: Fail,
			fix: []string{
				"# after the conntrack-active fix above:",
				"iptables -A INPUT -p udp --sport 5353 -j NFLOG --nflog-group 5 --nflog-threshold 1",
				"iptables -A INPUT -p udp --sport 5353 -j DROP",
				"ip6tables -A INPUT -p udp --sport 5353 -j NFLOG --nflog-group 5 --nflog-threshold 1",
				"ip6tables -A INPUT -p udp --sport 5353 -j DROP",
			},
		},
		{
			name: "nothing logs drops, iptables, stateful",
			opts: func(o *Options) { o.NetNS = "" },
			break_: func(f *fakeSystem) {
				f.rules = Ruleset{NFTErr: ErrToolMissing, IPT: "*filter\n" +
					"-A INPUT -p udp -m udp --sport 53 -m state --state RELATED,ESTABLISHED -j ACCEPT\n" +
					"-A INPUT -p udp -m udp --sport 53 -j DROP\nCOMMIT\n"}
			},
			check: "drop-rule", status: Fail,
			detail: "no rule logs UDP packets from port 53: there are no drops to label",
			fix: []string{
				"iptables -A INPUT -p udp --sport 53 -m state --state ESTABLISHED,RELATED -j ACCEPT",
				"iptables -A INPUT -p udp --sport 53 -j NFLOG --nflog-group 5 --nflog-threshold 1",
				"iptables -A INPUT -p udp --sport 53 -j DROP",
				"ip6tables -A INPUT -p udp --sport 53 -m state --state ESTABLISHED,RELATED -j ACCEPT",
				"ip6tables -A INPUT -p udp --sport 53 -j NFLOG --nflog-group 5 --nflog-threshold 1",
				"ip6tables -A INPUT -p udp --sport 53 -j DROP",
			},
		},
		{
			name:   "nothing logs drops, kernel log only",
			opts:   func(o *Options) { o.NFLOGGroups = nil },
			break_: func(f *fakeSystem) { f.rules.NFT = noLogNFT },
			check:  "drop-rule", status: Fail,
			fix: append(slices.Clone(nftSetup),
				nsExec+`nft 'add rule inet filter input udp sport 53 log prefix "dns-drop: " drop'`),
		},
		{
			name:   "nothing logs drops, kernel log only: kernel-log-rule points up",
			opts:   func(o *Options) { o.NFLOGGroups = nil },
			break_: func(f *fakeSystem) { f.rules.NFT = noLogNFT },
			check:  "kernel-log-rule", status: Fail,
			detail: "no rule writes kernel LOG lines for UDP from port 53",
			fix:    []string{"# the drop-rule fix above writes them"},
		},
		{
			name:   "nothing logs drops: nflog-rule points up",
			break_: func(f *fakeSystem) { f.rules.NFT = noLogNFT },
			check:  "nflog-rule 5", status: Fail,
			detail: "no rule logs UDP from port 53 to NFLOG group 5",
			fix:    []string{"# the drop-rule fix above logs to group 5"},
		},
		{
			name:   "nothing logs drops: second group gets its own rule",
			opts:   func(o *Options) { o.NFLOGGroups = []uint16{5, 8} },
			break_: func(f *fakeSystem) { f.rules.NFT = noLogNFT },
			check:  "nflog-rule 8", status: Fail,
			fix: append(slices.Clone(nftSetup),
				nsExec+"nft add rule inet filter input udp sport 53 log group 8 queue-threshold 1 drop"),
		},
		{
			name: "NFLOG asked for, ruleset writes LOG lines",
			break_: func(f *fakeSystem) {
				f.rules.NFT = strings.ReplaceAll(goodNFT,
					"\t\tudp sport 53 counter packets 0 bytes 0 log prefix \"dns-drop: \" group 5 queue-threshold 1 drop\n", "")
			},
			check: "nflog-rule 5", status: Fail,
			detail: "no rule logs UDP from port 53 to NFLOG group 5; the ruleset writes kernel LOG lines for them",
			fix: []string{
				"ctwatch --kernel-log /dev/kmsg",
				"# or add an NFLOG rule as drop-rule shows, for precise times and the DNS header",
			},
		},
		{
			name:  "ruleset logs another group",
			opts:  func(o *Options) { o.NFLOGGroups = []uint16{7} },
			check: "nflog-rule 7", status: Fail,
			detail: "the ruleset logs to group 5",
			fix:    []string{"ctwatch --nflog-group 5"},
		},
		{
			name: "group busy",
			break_: func(f *fakeSystem) {
				f.bindErr = map[uint16]error{5: nflog.ErrGroupBusy}
				f.owners = map[uint16]uint32{5: 4242}
			},
			check: "nflog-free 5", status: Fail,
			detail: "its netlink port ID is 4242",
			fix: []string{
				"ps -o pid,args -p 4242",
				"# stop that process, or log to a free group and pass that to --nflog-group",
			},
		},
		{
			name:   "group busy, owner unknown",
			break_: func(f *fakeSystem) { f.bindErr = map[uint16]error{5: nflog.ErrGroupBusy} },
			check:  "nflog-free 5", status: Fail,
			fix: []string{
				nsExec + "cat /proc/net/netfilter/nfnetlink_log",
				"# the second column is the owner's netlink port ID, usually its pid: stop it",
			},
		},
		{
			name:  "no drop source",
			opts:  func(o *Options) { o.NFLOGGroups, o.KernelLog = nil, "" },
			check: "drop-source", status: Warn,
			fix: []string{"ctwatch --nflog-group 5", "ctwatch --kernel-log /dev/kmsg"},
		},
		{
			name: "no LOG rule for --kernel-log",
			break_: func(f *fakeSystem) {
				f.rules.NFT = strings.ReplaceAll(goodNFT, "\t\tudp sport 53 log prefix \"dns-drop: \" drop\n", "")
			},
			check: "kernel-log-rule", status: Fail,
			detail: "no rule writes kernel LOG lines for UDP from port 53; the ruleset logs them to NFLOG group 5",
			fix: []string{
				"ctwatch --nflog-group 5",
				"# instead of --kernel-log: NFLOG is the more precise source",
			},
		},
		{
			name:   "kmsg restricted",
			break_: func(f *fakeSystem) { f.openErr = &os.PathError{Op: "open", Path: "/dev/kmsg", Err: unix.EPERM} },
			check:  "kernel-log-readable", status: Fail,
			fix: []string{
				"setcap cap_net_admin,cap_syslog+ep /usr/bin/ctwatch",
				"# under systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_SYSLOG",
			},
		},
		{
			name:   "log_all_netns off",
			break_: func(f *fakeSystem) { f.own["net.netfilter.nf_log_all_netns"] = "0" },
			check:  "nf_log_all_netns", status: Fail,
			detail: "nf_log_all_netns=0",
			fix: []string{
				"sysctl -w net.netfilter.nf_log_all_netns=1",
				"# in the initial network namespace",
			},
		},
		{
			name: "initial namespace needs no log_all_netns",
			break_: func(f *fakeSystem) {
				f.sysctls["net.netfilter.nf_log_all_netns"] = "0"
				f.own["net.netfilter.nf_log_all_netns"] = "0"
			},
			check: "nf_log_all_netns", status: OK,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys, o := goodSystem(), goodOptions
			o.NFLOGGroups = slices.Clone(o.NFLOGGroups)
			if tc.opts != nil {
				tc.opts(&o)
			}
			if tc.break_ != nil {
				tc.break_(sys)
			}
			r := Run(sys, o)
			res := find(t, r, tc.check)
			if res.Status != tc.status {
				t.Errorf("status %v, want %v (%s)", res.Status, tc.status, res.Detail)
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", res.Detail, tc.detail)
			}
			if !slices.Equal(res.Fix, tc.fix) {
				t.Errorf("fix:\n%s\nwant:\n%s", strings.Join(res.Fix, "\n"), strings.Join(tc.fix, "\n"))
			}
			var fe *FailedError
			failed := errors.As(r.Err(), &fe)
			if failed != (r.Failed > 0) || (tc.status == Fail && !failed) {
				t.Errorf("Err() = %v with %d failed", r.Err(), r.Failed)
			}
			if failed && fe.ExitCode() == 0 {
				t.Error("a failed report exits 0")
			}
		})
	}
}

func TestReportFormats(t *testing.T) {
	sys := goodSystem()
	sys.sysctls["net.netfilter.nf_conntrack_timestamp"] = "0"
	r := Run(sys, goodOptions)
	if r.Failed != 0 || r.Warnings != 1 || r.Err() != nil {
		t.Fatalf("failed %d warnings %d err %v, want 0, 1, nil", r.Failed, r.Warnings, r.Err())
	}

	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ctwatch doctor: network namespace /run/netns/resolver, UDP port 53\n",
		"  warn  nf_conntrack_timestamp  nf_conntrack_timestamp=0: ",
		"fix: ip netns exec resolver sysctl -w net.netfilter.nf_conntrack_timestamp=1\n",
		"1 warning: ctwatch works, less precisely\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Checks []struct {
			Check, Status string
			Fix           []string
		}
		Warnings int
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, js.String())
	}
	if doc.Warnings != 1 || len(doc.Checks) != len(r.Results) {
		t.Errorf("JSON report: %+v", doc)
	}
	for _, c := range doc.Checks {
		if c.Check == "nf_conntrack_timestamp" && (c.Status != "warn" || len(c.Fix) != 2) {
			t.Errorf("JSON timestamp check: %+v", c)
		}
	}
}
