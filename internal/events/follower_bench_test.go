package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/loadgen"
	"github.com/ctwatch/ctwatch/internal/netns"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// childEnv makes the test binary run a follower instead of the tests: the
// benchmark measures the follower's CPU as a separate process, exactly as
// it measures `conntrack -E`.
const childEnv = "CTWATCH_BENCH_FOLLOWER_NETNS"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(followerChild(path))
	}
	os.Exit(m.Run())
}

type childReport struct {
	Events events.FollowerStats
	Flows  uint64
	Losses int
}

// followerChild runs a follower in the namespace at path until SIGTERM and
// prints a childReport as JSON.
func followerChild(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	h, err := netns.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var rep childReport
	buf, _ := strconv.Atoi(os.Getenv("CTWATCH_BENCH_BUFFER"))
	f, err := events.NewFollower(events.FollowerConfig{
		NetNS:          h.FD(),
		ReadBuffer:     buf,
		NoKernelFilter: os.Getenv("CTWATCH_BENCH_NOFILTER") != "",
		Flow:           func(events.FlowEvent) { rep.Flows++ },
		Loss:           func(events.LossEvent) { rep.Losses++ },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if p := os.Getenv("CTWATCH_BENCH_CPUPROFILE"); p != "" {
		pf, err := os.Create(p)
		if err == nil {
			_ = pprof.StartCPUProfile(pf)
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Println("ready")
	if err := f.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rep.Events = f.Stats()
	f.Close()
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

type proc struct {
	cmd *exec.Cmd
	out *bufio.Reader
}

func startFollower(tb testing.TB, ns string, env ...string) *proc {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+ns)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &proc{cmd: cmd, out: bufio.NewReader(out)}
	if line, err := p.out.ReadString('\n'); err != nil || line != "ready\n" {
		tb.Fatalf("follower child did not start: %q %v", line, err)
	}
	return p
}

func (p *proc) stop(tb testing.TB) (childReport, time.Duration) {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var rep childReport
	if err := json.NewDecoder(p.out).Decode(&rep); err != nil {
		tb.Fatalf("follower child report: %v", err)
	}
	if err := p.cmd.Wait(); err != nil {
		tb.Fatalf("follower child: %v", err)
	}
	return rep, cpu(p.cmd.ProcessState)
}

func cpu(ps *os.ProcessState) time.Duration { return ps.UserTime() + ps.SystemTime() }

var conntrackShown = regexp.MustCompile(`(\d+) flow events have been shown`)

func startConntrack(tb testing.TB, ns string) (*exec.Cmd, *bufio.Reader) {
	tb.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "conntrack", "-E", "-p", "udp")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { devnull.Close() })
	cmd.Stdout = devnull
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd, bufio.NewReader(stderr)
}

func stopConntrack(tb testing.TB, cmd *exec.Cmd, stderr *bufio.Reader) (uint64, bool, time.Duration) {
	tb.Helper()
	_ = cmd.Process.Signal(syscall.SIGINT)
	var (
		shown uint64
		lost  bool
	)
	for {
		line, err := stderr.ReadString('\n')
		if m := conntrackShown.FindStringSubmatch(line); m != nil {
			shown, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if regexp.MustCompile(`(?i)no buffer space|enobufs`).MatchString(line) {
			lost = true
		}
		if err != nil {
			break
		}
	}
	_ = cmd.Wait()
	return shown, lost, cpu(cmd.ProcessState)
}

// BenchmarkFollower drives generated load through a namespace and runs, at
// the same time on the same events, ctwatch's follower (as a child process)
// and `conntrack -E -p udp` writing to /dev/null. It reports events per
// second, whether anything was lost, and CPU seconds per million events for
// both, without and with TCP noise (which the follower filters in the
// kernel and conntrack -E in userspace).
//
// One iteration is one full run; use -benchtime=1x.
func BenchmarkFollower(b *testing.B) {
	privtest.RequireRoot(b)
	privtest.RequireCommand(b, "ip", "nft", "conntrack")
	rate := envInt("CTWATCH_BENCH_RATE", 20000)
	secs := envInt("CTWATCH_BENCH_SECONDS", 10)
	for _, tc := range []struct {
		name     string
		tcp      int
		noFilter bool
	}{
		{"udp-only", 0, false},
		{"with-tcp-noise", rate, false},
		// The same noise with the BPF filter off: every TCP event reaches
		// userspace and is discarded there.
		{"with-tcp-noise-no-bpf", rate, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchOnce(b, rate, tc.tcp, tc.noFilter, time.Duration(secs)*time.Second)
			}
		})
	}
}

func benchOnce(b *testing.B, udp, tcp int, noFilter bool, d time.Duration) {
	ctx := context.Background()
	ns, err := loadgen.NewNamespace(ctx, fmt.Sprintf("ctwbench%d", os.Getpid()), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()

	var env []string
	if noFilter {
		env = append(env, "CTWATCH_BENCH_NOFILTER=1")
	}
	fol := startFollower(b, ns.Path, env...)
	ct, ctErr := startConntrack(b, ns.Name)
	time.Sleep(300 * time.Millisecond) // let conntrack -E subscribe

	res, err := ns.Run(ctx, loadgen.Load{UDPFlows: udp, TCPFlows: tcp, Duration: d})
	if err != nil {
		b.Fatal(err)
	}
	// Let the last flows expire and be collected: force collection by
	// dumping the table once their timeout has passed.
	time.Sleep(2 * time.Second)
	_ = exec.Command("ip", "netns", "exec", ns.Name, "conntrack", "-L").Run()
	time.Sleep(time.Second)

	rep, folCPU := fol.stop(b)
	shown, ctLost, ctCPU := stopConntrack(b, ct, ctErr)

	watched := rep.Events.New + rep.Events.Update + rep.Events.Destroy
	perM := func(c time.Duration, n uint64) float64 {
		if n == 0 {
			return 0
		}
		return c.Seconds() / float64(n) * 1e6
	}
	b.ReportMetric(float64(res.UDP)/res.Elapsed.Seconds(), "udp-flows/s")
	b.ReportMetric(float64(watched)/res.Elapsed.Seconds(), "events/s")
	b.ReportMetric(res.Elapsed.Seconds(), "load-s")
	b.ReportMetric(float64(watched), "ctwatch-events")
	b.ReportMetric(float64(rep.Events.Overflows), "overflows")
	if rep.Events.KernelDropsKnown {
		b.ReportMetric(float64(rep.Events.KernelDrops), "kernel-drops")
	}
	b.ReportMetric(perM(folCPU, watched), "ctwatch-cpu-s/Mevents")
	b.ReportMetric(float64(shown), "conntrack-events")
	b.ReportMetric(perM(ctCPU, shown), "conntrack-cpu-s/Mevents")
	// 1 when conntrack -E reported ENOBUFS: it lost events on this load.
	b.ReportMetric(boolMetric(ctLost), "conntrack-enobufs")
	b.Logf("sent udp=%d tcp=%d in %v; ctwatch events=%d (new %d, destroy %d, ignored %d) overflows=%d cpu=%v; conntrack -E events=%d lost=%v cpu=%v",
		res.UDP, res.TCP, res.Elapsed.Round(time.Millisecond), watched, rep.Events.New, rep.Events.Destroy, rep.Events.Ignored,
		rep.Events.Overflows, folCPU, shown, ctLost, ctCPU)
	if rep.Events.Overflows == 0 && rep.Events.New != res.UDP {
		b.Errorf("follower saw %d NEW events for %d flows without reporting loss", rep.Events.New, res.UDP)
	}
}

func boolMetric(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
