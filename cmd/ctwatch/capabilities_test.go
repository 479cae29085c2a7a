package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/demo"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/lab"
	"github.com/ctwatch/ctwatch/internal/lab/labtest"
	"github.com/ctwatch/ctwatch/internal/output"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// capsGroup is the NFLOG group of the lab in the capability tests;
// groups are per namespace, so it cannot collide with other labs.
const capsGroup = 7

// nobody is the unprivileged uid and gid the binary runs as.
const nobody = "65534"

// buildForNobody builds ctwatch into a directory every user can read, so
// that an unprivileged uid can run it.
func buildForNobody(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctwatch-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ctwatch")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// asNetAdmin returns the command line that runs argv inside the network
// namespace ns as uid and gid 65534 with no supplementary groups and
// CAP_NET_ADMIN as its only capability: ambient, so that it survives
// exec, and the only one left in the bounding set. argv may start with
// more setpriv options.
func asNetAdmin(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", ns, "setpriv",
		"--reuid=" + nobody, "--regid=" + nobody, "--clear-groups",
		"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin",
		"--bounding-set=-all,+net_admin",
	}, argv...)
}

// asNobody runs argv inside ns as uid 65534 with no capabilities of its
// own: a file capability on the program is all it gets.
func asNobody(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", ns, "setpriv",
		"--reuid=" + nobody, "--regid=" + nobody, "--clear-groups",
		"--inh-caps=-all", "--ambient-caps=-all",
	}, argv...)
}

func startCapsLab(t *testing.T, fw lab.Firewall) *lab.Lab {
	t.Helper()
	return labtest.Start(t, lab.Config{
		Firewall:   fw,
		NFLOGGroup: capsGroup,
		Timestamps: true,
		Accounting: true,
	})
}

// TestDoctorNetAdminOnly runs `ctwatch doctor` in a lab's resolver
// namespace as an unprivileged uid, once with CAP_NET_ADMIN as an ambient
// capability (systemd's AmbientCapabilities, setpriv) and once through a
// file capability (setcap): every check passes both ways, so none of them,
// nft and iptables-save included, needs more.
func TestDoctorNetAdminOnly(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft", "iptables", "setpriv", "setcap")
	t.Parallel()
	bin := buildForNobody(t)
	fileCap := bin + "-setcap"
	if out, err := exec.Command("cp", bin, fileCap).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if out, err := exec.Command("setcap", "cap_net_admin+ep", fileCap).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}

	for _, fw := range []lab.Firewall{lab.NFTables, lab.IPTables} {
		t.Run(string(fw), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ns := filepath.Base(startCapsLab(t, fw).Resolver().Path)
			for _, tc := range []struct {
				name string
				argv []string
			}{
				{"ambient", asNetAdmin(ns, bin, "doctor", "--nflog-group", fmt.Sprint(capsGroup))},
				{"file capability", asNobody(ns, fileCap, "doctor", "--nflog-group", fmt.Sprint(capsGroup))},
				// The packaged unit: AmbientCapabilities and
				// NoNewPrivileges, running a binary the package gave
				// a file capability.
				{"ambient, no_new_privs, file capability", asNetAdmin(ns, "--no-new-privs",
					fileCap, "doctor", "--nflog-group", fmt.Sprint(capsGroup))},
			} {
				cmd := exec.CommandContext(ctx, tc.argv[0], tc.argv[1:]...)
				cmd.Dir = "/"
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Errorf("%s: doctor: %v\n%s", tc.name, err, out)
					continue
				}
				for _, want := range []string{
					"  ok    capabilities  ",
					"  ok    conntrack-active  ",
					"  ok    drop-rule  ",
					fmt.Sprintf("  ok    nflog-free %d  ", capsGroup),
					"\nall checks passed\n",
				} {
					if !bytes.Contains(out, []byte(want)) {
						t.Errorf("%s: doctor output lacks %q:\n%s", tc.name, want, out)
					}
				}
			}
		})
	}
}

// TestWatchNetAdminOnly runs the watch command inside a lab's resolver
// namespace as uid 65534 with CAP_NET_ADMIN alone, sends the demo's mix of
// late answers, duplicates and spoofed packets, and checks every JSON
// verdict against the lab's ground truth. setns into another namespace
// would need CAP_SYS_ADMIN, so ctwatch is started inside it, as a systemd
// unit with NetworkNamespacePath= or a pod with hostNetwork would be.
func TestWatchNetAdminOnly(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft", "setpriv")
	t.Parallel()
	bin := buildForNobody(t)
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	l := startCapsLab(t, lab.NFTables)

	// The horizon is also the warm-up: drops matching no flow are
	// unknown until ctwatch has watched for that long. 12 s covers the
	// latest answer of the mix (timeout + 8 s) and keeps the test short.
	const horizon = 12 * time.Second
	argv := asNetAdmin(filepath.Base(l.Resolver().Path), bin,
		"--nflog-group", fmt.Sprint(capsGroup), "--output", "json", "--web.disable",
		"--correlate.horizon", horizon.String(), "--log.level", "debug")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ctwatch: %v", err)
	}
	logs := &lineLog{ready: make(chan struct{})}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		logs.read(stderr, "conntrack table dumped")
	}()
	stopped := false
	stop := func() error {
		stopped = true
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		<-logsDone
		return cmd.Wait()
	}
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-logsDone
			cmd.Wait()
		}
	}()

	select {
	case <-logs.ready:
	case <-logsDone:
		t.Fatalf("ctwatch exited before it was ready:\n%s", logs.String())
	case <-ctx.Done():
		t.Fatalf("ctwatch not ready:\n%s", logs.String())
	}
	// Let the warm-up pass, so that spoofed packets can be unsolicited.
	select {
	case <-time.After(horizon + 500*time.Millisecond):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	sent, err := demo.Traffic(ctx, l, demo.Scenario{
		Duration: 4 * time.Second, Rate: 15, Families: []int{4, 6},
		GCEvery: 2 * time.Second, Seed: 7,
	})
	if err != nil {
		t.Fatalf("traffic: %v", err)
	}
	// The last drops wait out their grace window before a verdict.
	time.Sleep(2*correlate.DefaultGrace + 500*time.Millisecond)
	if err := stop(); err != nil {
		t.Errorf("ctwatch did not stop cleanly: %v\n%s", err, logs.String())
	}

	verdicts := decodeVerdicts(t, stdout.Bytes())
	rep := demo.Compare(l.Truth(), verdicts)
	var report strings.Builder
	rep.Print(&report)
	t.Logf("sent %v; %d verdicts\n%s", sent, len(verdicts), report.String())
	if !rep.OK() {
		t.Errorf("verdicts disagree with the ground truth")
	}
	for _, class := range []string{"late/unanswered", "late/answered", "unsolicited"} {
		if rep.Got[class] == 0 {
			t.Errorf("no %s verdict (got %v)", class, rep.Got)
		}
	}

	// Nothing may have failed for want of a privilege: ctwatch logs a
	// warning or an error for every source or setting it could not use.
	for _, line := range logs.lines() {
		lower := strings.ToLower(line)
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") ||
			strings.Contains(lower, "not permitted") || strings.Contains(lower, "permission denied") {
			t.Errorf("ctwatch log: %s", line)
		}
	}
}

// lineLog collects a process's log lines and signals when one contains
// the ready marker.
type lineLog struct {
	mu    sync.Mutex // guards buf: read by the test while the reader appends
	buf   []string
	ready chan struct{}
}

func (l *lineLog) read(r io.Reader, marker string) {
	sc := bufio.NewScanner(r)
	signalled := false
	for sc.Scan() {
		l.mu.Lock()
		l.buf = append(l.buf, sc.Text())
		l.mu.Unlock()
		if !signalled && strings.Contains(sc.Text(), marker) {
			signalled = true
			close(l.ready)
		}
	}
}

func (l *lineLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.buf...)
}

func (l *lineLog) String() string { return strings.Join(l.lines(), "\n") }

// decodeVerdicts turns ctwatch's JSON lines back into the verdict fields
// demo.Compare matches on: tuple, drop time, class and lateness.
func decodeVerdicts(t *testing.T, jsonLines []byte) []correlate.Verdict {
	t.Helper()
	classes := map[string]correlate.Class{}
	for _, c := range []correlate.Class{correlate.Unknown, correlate.Late,
		correlate.Unsolicited, correlate.Tracked} {
		classes[c.String()] = c
	}
	var out []correlate.Verdict
	for line := range strings.Lines(string(jsonLines)) {
		var r output.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("verdict %q: %v", line, err)
		}
		class, ok := classes[r.Class]
		if !ok {
			t.Fatalf("verdict %q: unknown class", line)
		}
		src, err1 := netip.ParseAddrPort(r.Server)
		dst, err2 := netip.ParseAddrPort(r.Client)
		if err1 != nil || err2 != nil {
			t.Fatalf("verdict %q: addresses: %v %v", line, err1, err2)
		}
		v := correlate.Verdict{
			Drop:    events.Drop{Time: r.Time, Src: src, Dst: dst, InIface: r.InIface},
			Class:   class,
			FlowID:  r.FlowID,
			Decided: r.Decided,
		}
		if r.Answered != nil {
			v.Answered = *r.Answered
		}
		if r.Lateness != nil {
			v.Lateness = time.Duration(*r.Lateness * float64(time.Second))
		}
		if r.Age != nil {
			v.Age = time.Duration(*r.Age * float64(time.Second))
		}
		out = append(out, v)
	}
	return out
}

// TestWatchWithoutNetAdmin is the control for TestWatchNetAdminOnly: the
// same command line without the capability fails at once, saying why.
func TestWatchWithoutNetAdmin(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft", "setpriv")
	t.Parallel()
	bin := buildForNobody(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := startCapsLab(t, lab.NFTables)

	argv := asNobody(filepath.Base(l.Resolver().Path), bin,
		"--nflog-group", fmt.Sprint(capsGroup), "--output", "json", "--web.disable")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("ctwatch without CAP_NET_ADMIN: err %v, ctx %v, want a failure\n%s", err, ctx.Err(), out)
	}
	if !strings.Contains(strings.ToLower(string(out)), "operation not permitted") {
		t.Errorf("ctwatch without CAP_NET_ADMIN does not say it lacks a permission:\n%s", out)
	}
}
