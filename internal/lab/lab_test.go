package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// Sequential tests come first: they count goroutines and namespaces of
// the whole process, which the parallel tests (run after every
// sequential one) would disturb.

func TestCloseRemovesEverything(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft")
	ctx := testContext(t)
	goroutines := runtime.NumGoroutine()
	logAll := logAllNow(t)

	l, err := Start(ctx, Config{SNAT: true, NFLOGGroup: 3, LogPrefix: "ctwlab-close: ",
		UDPTimeout: time.Second})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	names := []string{l.Resolver().Name, l.Upstream().Name, l.Outside().Name}
	h, err := l.Query(ctx, QuerySpec{Family: 4,
		Answers: []Answer{{Delay: 50 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	// Leave the query's reader and an answer still pending: Close must
	// stop them.
	pending := QuerySpec{Family: 6, Answers: []Answer{{Delay: time.Hour}}}
	if _, err := l.Query(ctx, pending); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Spoof(ctx, SpoofSpec{Family: 6}); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	if own := ownNetns(t); len(own) > 0 {
		t.Errorf("namespaces remain after Close: %v", own)
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists (stat: %v)", name, err)
		}
	}
	if links := labLinks(t); len(links) > 0 {
		t.Errorf("lab interfaces in the test's namespace: %v", links)
	}
	checkLogAllRestored(t, logAll)
	waitGoroutines(t, goroutines)

	if _, err := l.Query(ctx, QuerySpec{Family: 4}); !errors.Is(err, ErrClosed) {
		t.Errorf("Query after Close: %v, want ErrClosed", err)
	}
	if _, err := l.Spoof(ctx, SpoofSpec{Family: 4}); !errors.Is(err, ErrClosed) {
		t.Errorf("Spoof after Close: %v, want ErrClosed", err)
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft", "iptables-restore", "ip6tables-restore")
	ctx := testContext(t)
	goroutines := runtime.NumGoroutine()
	logAll := logAllNow(t)

	tests := []struct {
		name   string
		cfg    Config
		failAt string
		want   error
	}{
		{"unknown firewall", Config{Firewall: "pf"}, "", ErrInvalidConfig},
		{"fractional timeout", Config{UDPTimeout: 1500 * time.Millisecond}, "", ErrInvalidConfig},
		{"iptables prefix too long", Config{Firewall: IPTables,
			LogPrefix: strings.Repeat("p", 30)}, "", ErrInvalidConfig},
		{"quote in prefix", Config{LogPrefix: `a"b`}, "", ErrInvalidConfig},
	}
	steps := []string{"netns", "sysctl", "wire", "probe", "ruleset", "kernel-log", "upstream"}
	for _, step := range steps {
		for _, fw := range []Firewall{NFTables, IPTables} {
			tests = append(tests, struct {
				name   string
				cfg    Config
				failAt string
				want   error
			}{
				name:   fmt.Sprintf("%s fails after %s", fw, step),
				cfg:    Config{Firewall: fw, SNAT: true, NFLOGGroup: 1, LogPrefix: "ctwlab-fail: "},
				failAt: step,
				want:   errInjected,
			})
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := start(ctx, tt.cfg, tt.failAt)
			if !errors.Is(err, tt.want) {
				if l != nil {
					l.Close()
				}
				t.Fatalf("start: %v, want %v", err, tt.want)
			}
			if l != nil {
				t.Errorf("start returned a lab with its error")
			}
			if own := ownNetns(t); len(own) > 0 {
				t.Errorf("namespaces remain: %v", own)
			}
			if links := labLinks(t); len(links) > 0 {
				t.Errorf("lab interfaces in the test's namespace: %v", links)
			}
			checkLogAllRestored(t, logAll)
		})
	}
	waitGoroutines(t, goroutines)
}

func TestKernelLog(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft")
	ctx := testContext(t)
	before := logAllNow(t)
	kmsg := openKmsg(t)

	prefix := func(s string) string {
		return "ctwlab" + strconv.Itoa(os.Getpid()) + s + ": "
	}
	first, err := Start(ctx, Config{LogPrefix: prefix("a")})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := Start(ctx, Config{LogPrefix: prefix("b")})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if got, _ := readSysctl(logAllNetnsSysctl); got != "1" {
		t.Fatalf("%s = %s while labs log, want 1", logAllNetnsSysctl, got)
	}

	s, err := first.Spoof(ctx, SpoofSpec{Family: 4})
	if err != nil {
		t.Fatal(err)
	}
	line, ok := kmsg.find(3*time.Second, prefix("a"),
		"IN="+first.OutsideIface()+" ",
		"SRC="+s.Tuple.Src.Addr().String()+" ",
		"DST="+s.Tuple.Dst.Addr().String()+" ",
		"DPT="+strconv.Itoa(int(s.Tuple.Dst.Port()))+" ")
	if !ok {
		t.Fatalf("no kernel LOG line for spoofed packet %v", s.Tuple)
	}
	t.Logf("kernel log: %s", strings.TrimSpace(line))

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := readSysctl(logAllNetnsSysctl); got != "1" {
		t.Errorf("%s = %s with one lab still logging, want 1", logAllNetnsSysctl, got)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	checkLogAllRestored(t, before)

	// Another process holding the setting keeps it at 1 after this
	// process's last lab closes. The stand-in holder's pid is above any
	// real pid (pid_max is at most 2^22) and unique to this process.
	release := fakeLogAllHolder(t, 1<<22+os.Getpid())
	defer release()
	third, err := Start(ctx, Config{LogPrefix: prefix("c")})
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := readSysctl(logAllNetnsSysctl); got != "1" {
		t.Errorf("%s = %s while another process holds it, want 1", logAllNetnsSysctl, got)
	}
	release()
	checkLogAllRestored(t, before)
}

// fakeLogAllHolder acts as another process that takes nf_log_all_netns
// the way acquireLogAllNetns does. The returned release, safe to call
// twice, gives it up the way releaseLogAllNetns does.
func fakeLogAllHolder(t *testing.T, pid int) (release func()) {
	t.Helper()
	unlock, err := lockLogAll()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	holders, err := logAllHolders()
	if err != nil {
		t.Fatal(err)
	}
	orig, err := readSysctl(logAllNetnsSysctl)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range holders {
		orig = h.orig
	}
	name := logAllHolderPrefix + strconv.Itoa(pid) + "." + orig
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSysctl(logAllNetnsSysctl, "1"); err != nil {
		ln.Close()
		t.Fatal(err)
	}

	var once sync.Once
	return func() {
		once.Do(func() {
			unlock, err := lockLogAll()
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			ln.Close()
			holders, err := logAllHolders()
			if err != nil {
				t.Error(err)
				return
			}
			if len(holders) == 0 {
				if err := writeSysctl(logAllNetnsSysctl, orig); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestCleanup(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip")
	ctx := testContext(t)

	// A process that has exited leaves its pid free.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	self, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	stale := []owner{
		{pid: dead.Process.Pid, start: 1},
		{pid: self.pid, start: self.start + 1}, // a previous owner of our pid
	}
	var staleNames []string
	for _, o := range stale {
		name := labName(o, 99999) + "-res"
		if _, err := addNetns(ctx, name); err != nil {
			t.Fatal(err)
		}
		staleNames = append(staleNames, name)
		t.Cleanup(func() { deleteNetns(ctx, name) })
	}
	l := startLab(t, Config{})

	if err := Cleanup(); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, name := range staleNames {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s survived Cleanup (stat: %v)", name, err)
		}
	}
	for _, ns := range []*Netns{l.Resolver(), l.Upstream(), l.Outside()} {
		if _, err := os.Stat(ns.Path); err != nil {
			t.Errorf("live lab's %s removed by Cleanup: %v", ns.Name, err)
		}
	}
}

// The tests below run in parallel.

func TestNetnsDo(t *testing.T) {
	privtest.RequireRoot(t)
	t.Parallel()
	l := startLab(t, Config{})

	inode := func(path string) uint64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	// /proc/self is the main thread, which another parallel test's Do
	// may be holding in a lab namespace at this moment; a thread locked
	// to this goroutine, which Do never touched, is in the process's own.
	threadNetns := func() (uint64, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		fi, err := os.Stat("/proc/thread-self/ns/net")
		if err != nil {
			return 0, err
		}
		return fi.Sys().(*syscall.Stat_t).Ino, nil
	}
	home, err := threadNetns()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*Netns{l.Resolver(), l.Upstream(), l.Outside()} {
		var inside uint64
		err := ns.Do(func() error {
			fi, err := os.Stat("/proc/thread-self/ns/net")
			if err != nil {
				return err
			}
			inside = fi.Sys().(*syscall.Stat_t).Ino
			return nil
		})
		if err != nil {
			t.Fatalf("Do in %s: %v", ns.Name, err)
		}
		if want := inode(ns.Path); inside != want || inside == home {
			t.Errorf("Do in %s ran in netns inode %d, want %d", ns.Name, inside, want)
		}
	}
	// Do hands its thread back only after leaving the namespace: every
	// thread a goroutine can be scheduled on is in the process's own.
	type result struct {
		ino uint64
		err error
	}
	got := make(chan result, 64)
	for range cap(got) {
		go func() {
			ino, err := threadNetns()
			got <- result{ino, err}
		}()
	}
	for range cap(got) {
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.ino != home {
			t.Errorf("a thread was left in netns inode %d, want %d", r.ino, home)
		}
	}

	want := errors.New("from fn")
	if err := l.Resolver().Do(func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}

func TestIsolation(t *testing.T) {
	privtest.RequireRoot(t)
	t.Parallel()
	l := startLab(t, Config{SNAT: true})

	mine := sh(t, "ip", "-o", "address", "show")
	for _, family := range []int{4, 6} {
		fl := l.layout.family(family)
		addrs := []netip.Addr{fl.resolverUp, fl.upstream, fl.resolverOut, fl.outside, fl.inner}
		for _, a := range addrs {
			if !netip.MustParsePrefix("198.18.0.0/15").Contains(a) &&
				!netip.MustParsePrefix("fd00::/8").Contains(a) {
				t.Errorf("lab address %s is outside 198.18.0.0/15 and fd00::/8", a)
			}
			if strings.Contains(mine, " "+a.String()+"/") {
				t.Errorf("lab address %s is in the test's namespace", a)
			}
		}
	}

	linkNames := func(ns string) []string {
		out, err := exec.Command("ip", "-n", ns, "-j", "link", "show").Output()
		if err != nil {
			t.Fatalf("ip -n %s link: %v", ns, err)
		}
		var links []struct {
			Name string `json:"ifname"`
		}
		if err := json.Unmarshal(out, &links); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, link := range links {
			names = append(names, link.Name)
		}
		slices.Sort(names)
		return names
	}
	wantLinks := map[*Netns][]string{
		l.Resolver(): {"lo", l.layout.r2u, l.layout.r2o},
		l.Upstream(): {"lo", l.layout.u2r},
		l.Outside():  {"lo", l.layout.o2r},
	}
	for ns, want := range wantLinks {
		got := linkNames(ns.Name)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s has links %v, want %v", ns.Name, got, want)
		}
	}
	for _, name := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if v, err := l.Resolver().Sysctl(name); err != nil || v != "0" {
			t.Errorf("resolver %s = %q (%v), want 0", name, v, err)
		}
	}
	if links := labLinks(t); len(links) > 0 {
		t.Errorf("lab interfaces in the test's namespace: %v", links)
	}
}

func TestAnswers(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "nft", "iptables-restore", "ip6tables-restore",
		"iptables-save", "ip6tables-save")
	t.Parallel()

	const timeout = time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		name    string
		answers []Answer
		want    []Class // per answer, in send order
	}{
		{"on time", []Answer{{Delay: ms(100)}}, []Class{Accepted}},
		{"after the timeout", []Answer{{Delay: ms(1600)}}, []Class{Late}},
		{"duplicate after expiry", []Answer{{Delay: ms(100)}, {Delay: ms(1700)}},
			[]Class{Accepted, Late}},
		{"oversize while live", []Answer{{Delay: ms(100), Oversize: true}}, []Class{Tracked}},
		// Conntrack sees the dropped oversize answer before the filter
		// does, so it extends the entry past the second answer.
		{"oversize extends the flow", []Answer{{Delay: ms(500), Oversize: true}, {Delay: ms(1300)}},
			[]Class{Tracked, Accepted}},
		{"unanswered", nil, nil},
	}

	for _, fw := range []Firewall{NFTables, IPTables} {
		t.Run(string(fw), func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			const group = 9
			l := startLab(t, Config{Firewall: fw, NFLOGGroup: group, UDPTimeout: timeout})
			nf := watchNFLOG(t, l, group)

			type sent struct {
				family int
				c      int
				h      *QueryHandle
			}
			var queries []sent
			for _, family := range []int{4, 6} {
				for i, c := range cases {
					h, err := l.Query(ctx, QuerySpec{Family: family, Answers: c.answers})
					if err != nil {
						t.Fatalf("Query: %v", err)
					}
					queries = append(queries, sent{family, i, h})
				}
			}
			var spoofs []Spoofed
			for _, s := range []SpoofSpec{{Family: 4}, {Family: 6}, {Family: 4, Oversize: true}} {
				sp, err := l.Spoof(ctx, s)
				if err != nil {
					t.Fatalf("Spoof: %v", err)
				}
				spoofs = append(spoofs, sp)
			}
			if err := l.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			for _, q := range queries {
				if err := q.h.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}

			truth := l.Truth()
			if len(truth.Spoofs) != len(spoofs) {
				t.Fatalf("truth holds %d spoofed packets, %d were sent", len(truth.Spoofs), len(spoofs))
			}
			for i, sp := range spoofs {
				if got := truth.Spoofs[i]; got.Tuple != sp.Tuple || got.Expect != Unsolicited {
					t.Errorf("spoof %d: truth %s %v, sent %s", i, got.Tuple, got.Expect, sp.Tuple)
				}
			}
			ambiguous := false
			var late, tracked int
			for _, q := range queries {
				c := cases[q.c]
				t.Run(fmt.Sprintf("ipv%d/%s", q.family, c.name), func(t *testing.T) {
					checkQuery(t, l, truth, q.h, c.want, timeout)
				})
				for _, a := range truth.Answers {
					if a.Query != q.h.ID {
						continue
					}
					ambiguous = ambiguous || a.Ambiguous
					switch a.Expect {
					case Late:
						late++
					case Tracked:
						tracked++
					}
				}
			}
			if ambiguous {
				t.Log("an answer was ambiguous; counters not checked")
				return
			}

			counters, err := l.Counters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := RuleCounters{Drop: uint64(late + 2), Oversize: uint64(tracked + 1)}
			if counters != want {
				t.Errorf("rule counters %+v, want %+v (late %d, tracked %d, 3 spoofs)",
					counters, want, late, tracked)
			}
			checkNFLOG(t, nf, truth, int(want.Drop+want.Oversize))
		})
	}
}

// checkQuery compares one query's ground truth with what the resolver
// saw and what the case planned.
func checkQuery(t *testing.T, l *Lab, truth Truth, h *QueryHandle, want []Class,
	timeout time.Duration) {

	t.Helper()
	var qt QueryTruth
	for _, q := range truth.Queries {
		if q.ID == h.ID {
			qt = q
		}
	}
	if !qt.Seen || qt.Pending != 0 || qt.Listening {
		t.Fatalf("query not settled: %+v", qt)
	}
	if qt.Reply.Src != qt.Orig.Dst || qt.Reply.Dst != qt.Orig.Src {
		t.Errorf("without SNAT the reply %v should mirror the original %v", qt.Reply, qt.Orig)
	}
	if qt.Orig.Src.Addr() != l.ResolverAddr(h.Family) {
		t.Errorf("query left from %v, want %v", qt.Orig.Src, l.ResolverAddr(h.Family))
	}

	var answers []AnswerTruth
	for _, a := range truth.Answers {
		if a.Query == h.ID {
			answers = append(answers, a)
		}
	}
	if len(answers) != len(want) {
		t.Fatalf("%d answers sent, want %d", len(answers), len(want))
	}
	received := h.Received()
	lastAccepted := qt.Sent
	for i, a := range answers {
		if a.Ambiguous {
			t.Logf("answer %d is ambiguous (sent %v after the query); not checked",
				a.Index, a.Sent.Sub(a.QuerySent))
			continue
		}
		if a.Expect != want[i] {
			t.Errorf("answer %d: model expects %s, case plans %s", a.Index, a.Expect, want[i])
		}
		got := slices.Contains(received, a.Index)
		if got != (a.Expect == Accepted) || got != a.Received {
			t.Errorf("answer %d (%s): resolver received it: %v (truth says %v)",
				a.Index, a.Expect, got, a.Received)
		}
		if a.Reply != qt.Reply {
			t.Errorf("answer %d: reply tuple %v, query's %v", a.Index, a.Reply, qt.Reply)
		}
		switch a.Expect {
		case Late:
			if a.Lateness <= 0 || a.Sent.Sub(a.Expiry) != a.Lateness {
				t.Errorf("answer %d: lateness %v against expiry %v", a.Index, a.Lateness, a.Expiry)
			}
			if wantExpiry := lastAccepted.Add(timeout); !a.Expiry.Equal(wantExpiry) {
				t.Errorf("answer %d: expiry %v, want %v", a.Index, a.Expiry, wantExpiry)
			}
			if a.Answered != (i > 0 && answers[0].Expect == Accepted) {
				t.Errorf("answer %d: answered = %v", a.Index, a.Answered)
			}
		default:
			lastAccepted = a.Sent
		}
	}
	wantExpiry := lastAccepted.Add(timeout)
	if !qt.Ambiguous && !qt.ExpectedExpiry.Equal(wantExpiry) {
		t.Errorf("expected expiry %v, want %v", qt.ExpectedExpiry, wantExpiry)
	}
}

// checkNFLOG checks that NFLOG saw exactly the dropped packets, each at
// once (the rules' queue threshold is 1, where the default would batch
// for up to a second).
func checkNFLOG(t *testing.T, nf *nflogWatcher, truth Truth, want int) {
	t.Helper()
	names := make(map[int]string)
	for _, q := range truth.Queries {
		names[q.ID] = q.Name
	}
	dropped := make(map[string][]time.Time) // DNS name -> send times
	for _, a := range truth.Answers {
		if a.Expect != Accepted {
			dropped[names[a.Query]] = append(dropped[names[a.Query]], a.Sent)
		}
	}
	for _, s := range truth.Spoofs {
		dropped[s.Name] = append(dropped[s.Name], s.Sent)
	}

	deadline := time.Now().Add(2 * time.Second)
	records, bad := nf.snapshot()
	for len(records) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		records, bad = nf.snapshot()
	}
	if bad > 0 {
		t.Errorf("%d NFLOG payloads did not decode", bad)
	}
	if len(records) != want {
		t.Errorf("%d NFLOG records, want %d", len(records), want)
	}

	read := make(map[string][]time.Time)
	for _, r := range records {
		read[r.name] = append(read[r.name], r.read)
	}
	for name, reads := range read {
		sends := dropped[name]
		if len(reads) != len(sends) {
			t.Errorf("%s: %d NFLOG records, %d packets dropped", name, len(reads), len(sends))
			continue
		}
		slices.SortFunc(reads, time.Time.Compare)
		slices.SortFunc(sends, time.Time.Compare)
		for i := range reads {
			if delay := reads[i].Sub(sends[i]); delay > 500*time.Millisecond {
				t.Errorf("%s: NFLOG record read %v after the send: batched?", name, delay)
			}
		}
	}
}

func TestSNAT(t *testing.T) {
	privtest.RequireRoot(t)
	t.Parallel()
	for _, fw := range []Firewall{NFTables, IPTables} {
		l := startLab(t, Config{Firewall: fw, SNAT: true})
		for _, family := range []int{4, 6} {
			t.Run(fmt.Sprintf("%s/ipv%d", fw, family), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				h, err := l.Query(ctx, QuerySpec{Family: family,
					Answers: []Answer{{Delay: 200 * time.Millisecond}}})
				if err != nil {
					t.Fatal(err)
				}
				var reply events.Tuple
				for deadline := time.Now().Add(time.Second); ; {
					var ok bool
					if reply, ok = h.Reply(); ok {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the upstream never saw the query")
					}
					time.Sleep(5 * time.Millisecond)
				}

				if h.Orig.Src.Addr() == l.ResolverAddr(family) {
					t.Errorf("query left from %v, the egress address: no inner address", h.Orig.Src)
				}
				if reply.Dst.Addr() != l.ResolverAddr(family) || reply.Dst == h.Orig.Src {
					t.Errorf("reply tuple %v, want destination %v (SNAT of %v)",
						reply, l.ResolverAddr(family), h.Orig.Src)
				}
				flow, ok := findFlow(t, l, h.Orig.Src)
				if !ok {
					t.Fatalf("no conntrack entry for %v", h.Orig.Src)
				}
				r := flow.TupleReply
				got := events.Tuple{
					Src: netip.AddrPortFrom(r.IP.SourceAddress, r.Proto.SourcePort),
					Dst: netip.AddrPortFrom(r.IP.DestinationAddress, r.Proto.DestinationPort),
				}
				if got != reply {
					t.Errorf("kernel reply tuple %v, lab's %v", got, reply)
				}

				if err := h.Wait(ctx); err != nil {
					t.Fatal(err)
				}
				if got := h.Received(); !slices.Equal(got, []int{0}) {
					t.Errorf("received answers %v, want [0]", got)
				}
				for _, a := range l.Truth().Answers {
					if a.Query == h.ID && (a.Reply != reply || a.Expect != Accepted || !a.Received) {
						t.Errorf("truth %+v, want accepted and received on %v", a, reply)
					}
				}
			})
		}
	}
}

// findFlow dumps the resolver's conntrack table for the flow whose
// original source is src.
func findFlow(t *testing.T, l *Lab, src netip.AddrPort) (conntrack.Flow, bool) {
	t.Helper()
	ns, err := l.Resolver().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(ns.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		o := f.TupleOrig
		if netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort) == src {
			return f, true
		}
	}
	return conntrack.Flow{}, false
}

func TestCollectGarbage(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "conntrack")
	t.Parallel()
	ctx := testContext(t)
	l := startLab(t, Config{Timestamps: true, Accounting: true, UDPTimeout: time.Second})

	for name, want := range map[string]string{
		"net.netfilter.nf_conntrack_udp_timeout":        "1",
		"net.netfilter.nf_conntrack_udp_timeout_stream": "1",
		"net.netfilter.nf_conntrack_timestamp":          "1",
		"net.netfilter.nf_conntrack_acct":               "1",
	} {
		if got, err := l.Resolver().Sysctl(name); err != nil || got != want {
			t.Errorf("resolver %s = %q (%v), want %s", name, got, err, want)
		}
	}
	w := watchDestroy(t, l)

	tests := []struct {
		name    string
		family  int
		collect func() error
	}{
		{"CollectGarbage", 4, func() error { return l.CollectGarbage(ctx) }},
		{"conntrack -L", 6, func() error {
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.Resolver().Name,
				"conntrack", "-L", "-p", "udp").Output()
			if strings.Contains(string(out), "dport=53") {
				return fmt.Errorf("conntrack -L lists an expired entry:\n%s", out)
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, expiry := expiredEntry(t, l, w, tt.family)
			start := time.Now()
			if err := tt.collect(); err != nil {
				t.Fatal(err)
			}
			flow, ok := w.next(h.Orig.Src, time.Second)
			if !ok {
				t.Fatal("no DESTROY after the dump")
			}
			t.Logf("DESTROY read %v after the dump began", time.Since(start))
			checkDestroy(t, flow, h, expiry)
			if n, err := l.ConntrackCount(); err != nil || n != 0 {
				t.Errorf("conntrack count %d (%v) after the dump, want 0", n, err)
			}
		})
	}
}

// expiredEntry makes a flow whose entry has expired but is still in the
// table, uncollected. The kernel's collector may get there first (it
// runs about once a minute on an idle machine, more often on a busy one);
// then it tries again.
func expiredEntry(t *testing.T, l *Lab, w *destroyWatcher,
	family int) (*QueryHandle, time.Time) {

	t.Helper()
	ctx := testContext(t)
	for attempt := 1; attempt <= 5; attempt++ {
		h, err := l.Query(ctx, QuerySpec{Family: family,
			Answers: []Answer{{Delay: 100 * time.Millisecond}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if got := h.Received(); !slices.Equal(got, []int{0}) {
			t.Fatalf("received answers %v, want [0]; truth: %+v", got, l.Truth())
		}
		var expiry time.Time
		for _, q := range l.Truth().Queries {
			if q.ID == h.ID {
				expiry = q.ExpectedExpiry
			}
		}
		time.Sleep(time.Until(expiry.Add(50 * time.Millisecond)))

		n, err := l.ConntrackCount()
		if err != nil {
			t.Fatal(err)
		}
		if _, destroyed := w.next(h.Orig.Src, 0); !destroyed && n == 1 {
			return h, expiry
		}
		// Collected already: wait for its DESTROY so it cannot be
		// mistaken for the next attempt's.
		w.next(h.Orig.Src, time.Second)
		t.Logf("attempt %d: the kernel collected the entry first", attempt)
	}
	t.Fatal("the kernel collected the entry before every attempt")
	return nil, time.Time{}
}

// checkDestroy compares a DESTROY event with the lab's model.
func checkDestroy(t *testing.T, f conntrack.Flow, h *QueryHandle, expiry time.Time) {
	t.Helper()
	const tolerance = 50 * time.Millisecond
	t.Logf("DESTROY stop - expected expiry = %v, start - query sent = %v",
		f.Timestamp.Stop.Sub(expiry), f.Timestamp.Start.Sub(h.Sent))
	if d := f.Timestamp.Stop.Sub(expiry); d < -tolerance || d > tolerance {
		t.Errorf("DESTROY stop %v is %v from the expected expiry %v",
			f.Timestamp.Stop, d, expiry)
	}
	if d := f.Timestamp.Start.Sub(h.Sent); d < -tolerance || d > tolerance {
		t.Errorf("DESTROY start %v is %v from the query's send %v", f.Timestamp.Start, d, h.Sent)
	}
	if f.CountersOrig.Packets != 1 || f.CountersReply.Packets != 1 {
		t.Errorf("counters %d/%d packets, want 1/1", f.CountersOrig.Packets, f.CountersReply.Packets)
	}
}

// logAllState is nf_log_all_netns and whether another process holds it.
type logAllState struct {
	value  string
	others bool
}

func logAllNow(t *testing.T) logAllState {
	t.Helper()
	v, err := readSysctl(logAllNetnsSysctl)
	if err != nil {
		t.Fatal(err)
	}
	holders, err := logAllHolders()
	if err != nil {
		t.Fatal(err)
	}
	s := logAllState{value: v}
	for _, h := range holders {
		s.others = s.others || h.pid != os.Getpid()
	}
	return s
}

// checkLogAllRestored checks that nf_log_all_netns is back to its value
// before, unless another process held it meanwhile.
func checkLogAllRestored(t *testing.T, before logAllState) {
	t.Helper()
	now := logAllNow(t)
	if before.others || now.others {
		t.Logf("another process holds %s; not checked", logAllNetnsSysctl)
		return
	}
	if now.value != before.value {
		t.Errorf("%s = %s, want %s restored", logAllNetnsSysctl, now.value, before.value)
	}
}
