package doctor_test

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/doctor"
	"github.com/ctwatch/ctwatch/internal/events/nflog"
	"github.com/ctwatch/ctwatch/internal/lab"
	"github.com/ctwatch/ctwatch/internal/lab/labtest"
	"github.com/ctwatch/ctwatch/internal/netns"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// runDoctor runs every check against the namespace at path.
func runDoctor(t *testing.T, o doctor.Options) doctor.Report {
	t.Helper()
	h, err := netns.Open(o.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	o.Executable = "/usr/bin/ctwatch"
	return doctor.Run(doctor.NewHost(h, o.UDPPort), o)
}

func result(t *testing.T, r doctor.Report, check string) doctor.Result {
	t.Helper()
	for _, res := range r.Results {
		if res.Check == check {
			return res
		}
	}
	t.Fatalf("no %q check in the report", check)
	return doctor.Result{}
}

// TestHostGoodNamespace checks a lab resolver namespace, which has all
// ctwatch needs: every check passes.
func TestHostGoodNamespace(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft", "iptables")
	t.Parallel()
	for _, fw := range []lab.Firewall{lab.NFTables, lab.IPTables} {
		t.Run(string(fw), func(t *testing.T) {
			t.Parallel()
			l := labtest.Start(t, lab.Config{
				Firewall:   fw,
				NFLOGGroup: 6,
				LogPrefix:  fmt.Sprintf("ctwdoc%d: ", os.Getpid()),
				Timestamps: true,
				Accounting: true,
			})

			r := runDoctor(t, doctor.Options{
				NetNS:       l.Resolver().Path,
				NFLOGGroups: []uint16{6},
				KernelLog:   "/dev/kmsg",
			})
			for _, res := range r.Results {
				if res.Status != doctor.OK {
					t.Errorf("%s: %v: %s; fix %q", res.Check, res.Status, res.Detail, res.Fix)
				}
			}
			if len(r.Results) != 14 || r.Err() != nil {
				t.Errorf("%d results, err %v; want 14, nil", len(r.Results), r.Err())
			}
		})
	}
}

var nsSeq atomic.Int32

// bareNamespace creates a network namespace with only lo, runs setup
// commands in it (each a command line for `ip netns exec NAME`), and
// deletes it when the test ends. It returns the namespace's name.
func bareNamespace(t *testing.T, setup ...[]string) string {
	t.Helper()
	name := fmt.Sprintf("ctwdoc%d-%d", os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	for _, args := range append([][]string{{"ip", "link", "set", "lo", "up"}}, setup...) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return name
}

// TestHostGaps checks namespaces that each lack something, and the
// exact advice for it.
func TestHostGaps(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft", "iptables")
	t.Parallel()

	nftStateful := []string{"nft", "add table inet f; " +
		"add chain inet f input { type filter hook input priority 0; }; " +
		"add rule inet f input udp sport 53 ct state established,related accept"}
	for _, tc := range []struct {
		name  string
		setup [][]string
		opts  doctor.Options
		// hold binds an NFLOG group in the namespace while doctor runs.
		hold   uint16
		check  string
		status doctor.Status
		// fix is the exact advice; NS stands for the namespace name.
		fix []string
		// fixPrefix, when set, is checked instead of fix (the advice
		// holds a value only the kernel knows).
		fixPrefix string
	}{
		{
			name:   "no stateful rule",
			check:  "conntrack-active",
			status: doctor.Fail,
			fix: []string{
				"ip netns exec NS nft add table inet filter",
				"ip netns exec NS nft add chain inet filter input '{ type filter hook input priority 0; }'",
				"ip netns exec NS nft add rule inet filter input udp sport 53 ct state established,related accept",
			},
		},
		{
			name:   "no stateful rule, iptables",
			setup:  [][]string{{"iptables", "-A", "INPUT", "-p", "udp", "--sport", "53", "-j", "NFLOG", "--nflog-group", "3"}},
			check:  "conntrack-active",
			status: doctor.Fail,
			fix: []string{
				"ip netns exec NS iptables -A INPUT -p udp --sport 53 -m state --state ESTABLISHED,RELATED -j ACCEPT",
				"ip netns exec NS ip6tables -A INPUT -p udp --sport 53 -m state --state ESTABLISHED,RELATED -j ACCEPT",
			},
		},
		{
			name:   "events off",
			setup:  [][]string{{"sysctl", "-qw", "net.netfilter.nf_conntrack_events=0"}},
			check:  "nf_conntrack_events",
			status: doctor.Fail,
			fix: []string{
				"ip netns exec NS sysctl -w net.netfilter.nf_conntrack_events=1",
				"# applies to flows created after the change",
			},
		},
		{
			name:   "timestamps off",
			check:  "nf_conntrack_timestamp",
			status: doctor.Warn,
			fix: []string{
				"ip netns exec NS sysctl -w net.netfilter.nf_conntrack_timestamp=1",
				"# applies to flows created after the change",
			},
		},
		{
			name:   "accounting off",
			check:  "nf_conntrack_acct",
			status: doctor.Warn,
			fix: []string{
				"ip netns exec NS sysctl -w net.netfilter.nf_conntrack_acct=1",
				"# applies to flows created after the change",
			},
		},
		{
			name:   "nothing logs drops",
			setup:  [][]string{nftStateful},
			opts:   doctor.Options{NFLOGGroups: []uint16{4}},
			check:  "drop-rule",
			status: doctor.Fail,
			fix: []string{
				"ip netns exec NS nft add table inet filter",
				"ip netns exec NS nft add chain inet filter input '{ type filter hook input priority 0; }'",
				"ip netns exec NS nft add rule inet filter input udp sport 53 ct state established,related accept",
				"ip netns exec NS nft add rule inet filter input udp sport 53 log group 4 queue-threshold 1 drop",
			},
		},
		{
			name: "ruleset logs another group",
			setup: [][]string{
				{"iptables", "-A", "INPUT", "-p", "udp", "--sport", "53", "-m", "state", "--state", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
				{"iptables", "-A", "INPUT", "-p", "udp", "--sport", "53", "-j", "NFLOG", "--nflog-group", "3"},
			},
			opts:   doctor.Options{NFLOGGroups: []uint16{4}},
			check:  "nflog-rule 4",
			status: doctor.Fail,
			fix:    []string{"ctwatch --nflog-group 3"},
		},
		{
			name:      "group busy",
			opts:      doctor.Options{NFLOGGroups: []uint16{4}},
			hold:      4,
			check:     "nflog-free 4",
			status:    doctor.Fail,
			fixPrefix: "ps -o pid,args -p ",
		},
		{
			name:   "no drop source",
			setup:  [][]string{{"nft", "add table inet f; add chain inet f input { type filter hook input priority 0; }; add rule inet f input udp sport 53 log group 9"}},
			check:  "drop-source",
			status: doctor.Warn,
			fix:    []string{"ctwatch --nflog-group 9"},
		},
		{
			name:   "no LOG rule for the kernel log",
			setup:  [][]string{nftStateful},
			opts:   doctor.Options{KernelLog: "/dev/kmsg"},
			check:  "drop-rule",
			status: doctor.Fail,
			fix: []string{
				"ip netns exec NS nft add table inet filter",
				"ip netns exec NS nft add chain inet filter input '{ type filter hook input priority 0; }'",
				"ip netns exec NS nft add rule inet filter input udp sport 53 ct state established,related accept",
				`ip netns exec NS nft 'add rule inet filter input udp sport 53 log prefix "dns-drop: " drop'`,
			},
		},
		{
			name:   "kernel log asked for, ruleset logs to NFLOG",
			setup:  [][]string{nftStateful, {"nft", "add rule inet f input udp sport 53 log group 3 drop"}},
			opts:   doctor.Options{KernelLog: "/dev/kmsg"},
			check:  "kernel-log-rule",
			status: doctor.Fail,
			fix: []string{
				"ctwatch --nflog-group 3",
				"# instead of --kernel-log: NFLOG is the more precise source",
			},
		},
		{
			name:   "nothing logs drops, iptables",
			setup:  [][]string{{"iptables", "-A", "INPUT", "-p", "udp", "--sport", "53", "-j", "DROP"}},
			opts:   doctor.Options{NFLOGGroups: []uint16{4}},
			check:  "drop-rule",
			status: doctor.Fail,
			fix: []string{
				"# after the conntrack-active fix above:",
				"ip netns exec NS iptables -A INPUT -p udp --sport 53 -j NFLOG --nflog-group 4 --nflog-threshold 1",
				"ip netns exec NS iptables -A INPUT -p udp --sport 53 -j DROP",
				"ip netns exec NS ip6tables -A INPUT -p udp --sport 53 -j NFLOG --nflog-group 4 --nflog-threshold 1",
				"ip netns exec NS ip6tables -A INPUT -p udp --sport 53 -j DROP",
			},
		},
		{
			name:   "kernel log missing",
			opts:   doctor.Options{KernelLog: "/nonexistent/kern.log"},
			check:  "kernel-log-readable",
			status: doctor.Fail,
			fix:    []string{"# pass an existing file, - for stdin, or /dev/kmsg to --kernel-log"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := bareNamespace(t, tc.setup...)
			o := tc.opts
			o.NetNS = "/run/netns/" + name
			if tc.hold != 0 {
				h, err := netns.Open(o.NetNS)
				if err != nil {
					t.Fatal(err)
				}
				r, err := nflog.New(nflog.Config{Group: tc.hold, NetNS: h.FD()})
				h.Close()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
			}

			rep := runDoctor(t, o)
			res := result(t, rep, tc.check)
			if res.Status != tc.status {
				t.Errorf("%s: status %v (%s), want %v", tc.check, res.Status, res.Detail, tc.status)
			}
			if tc.fixPrefix != "" {
				if len(res.Fix) == 0 || !strings.HasPrefix(res.Fix[0], tc.fixPrefix) {
					t.Errorf("%s: fix %q, want one starting %q", tc.check, res.Fix, tc.fixPrefix)
				}
			} else {
				var want []string
				for _, f := range tc.fix {
					want = append(want, strings.ReplaceAll(f, " NS ", " "+name+" "))
				}
				if !slices.Equal(res.Fix, want) {
					t.Errorf("%s: fix\n%s\nwant\n%s", tc.check, strings.Join(res.Fix, "\n"), strings.Join(want, "\n"))
				}
			}
			if (tc.status == doctor.Fail) != (rep.Err() != nil) && tc.status != doctor.Warn {
				t.Errorf("report error %v for a %v check", rep.Err(), tc.status)
			}
		})
	}
}

// TestHostLogAllNetns checks the nf_log_all_netns verdict for a
// non-initial namespace against the machine's value. The value is not
// changed here: labs in parallel test processes share it.
func TestHostLogAllNetns(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip")
	t.Parallel()
	name := bareNamespace(t)
	read := func() string {
		t.Helper()
		b, err := os.ReadFile("/proc/sys/net/netfilter/nf_log_all_netns")
		if err != nil {
			privtest.Unavailable(t, "no nf_log_all_netns sysctl: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	// Labs of other test processes turn the sysctl on and off; a value
	// that is the same before and after the check is the one it saw.
	var (
		value string
		res   doctor.Result
	)
	for range 20 {
		value = read()
		rep := runDoctor(t, doctor.Options{NetNS: "/run/netns/" + name, KernelLog: "-"})
		res = result(t, rep, "nf_log_all_netns")
		if read() == value {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := doctor.OK
	if value == "0" {
		want = doctor.Fail
	}
	if res.Status != want {
		t.Errorf("nf_log_all_netns=%s: status %v (%s), want %v", value, res.Status, res.Detail, want)
	}

	// The initial namespace needs no nf_log_all_netns.
	rep := runDoctor(t, doctor.Options{KernelLog: "-"})
	if res := result(t, rep, "nf_log_all_netns"); res.Status != doctor.OK {
		t.Errorf("initial namespace: %v: %s", res.Status, res.Detail)
	}
}
