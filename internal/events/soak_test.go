package events_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/loadgen"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// soakRate is the new UDP flows per second of the soak tests.
const soakRate = 40000

// soakNamespace makes a load namespace whose flows expire after a second,
// so DESTROY events flow at the rate NEW events do, with kernel
// timestamps so the correlator gets exact expiries.
func soakNamespace(t *testing.T, tag string) *loadgen.Namespace {
	t.Helper()
	if testing.Short() {
		// -short leaves the soak out on a laptop; CI never passes it, and
		// there a soak that does not run is a failure.
		privtest.Unavailable(t, "soak test; runs without -short")
	}
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft")
	ns, err := loadgen.NewNamespace(context.Background(),
		fmt.Sprintf("ctw%s%d", tag, os.Getpid()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := ns.Handle().Do(func() error {
		return os.WriteFile("/proc/sys/net/netfilter/nf_conntrack_timestamp", []byte("1"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// runFollower starts a follower in ns; stop ends it and returns its final
// stats. flow and loss run on the follower's goroutine.
func runFollower(t *testing.T, ns *loadgen.Namespace, buf int,
	flow func(events.FlowEvent), loss func(events.LossEvent)) (f *events.Follower, stop func() events.FollowerStats) {
	t.Helper()
	f, err := events.NewFollower(events.FollowerConfig{
		NetNS: ns.Handle().FD(), ReadBuffer: buf, Flow: flow, Loss: loss,
	})
	if err != nil {
		t.Fatalf("NewFollower: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("follower stopped before its start-up dump: %v", err)
	}
	stopped := false
	stop = func() events.FollowerStats {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("follower Run: %v", err)
			}
		}
		st := f.Stats()
		f.Close()
		return st
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return f, stop
}

// collectAll makes the kernel evict every expired entry of the namespace
// now, so that their DESTROY events are sent: a dump evicts the expired
// entries it walks over. It returns once the table is empty.
func collectAll(t *testing.T, ns *loadgen.Namespace) {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: ns.Handle().FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		flows, err := c.Dump(nil)
		if err == nil && len(flows) == 0 && tableEmpty(t, ns) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("conntrack table not empty after 20 s (%d listed, %v)", len(flows), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tableEmpty(t *testing.T, ns *loadgen.Namespace) bool {
	var b []byte
	err := ns.Handle().Do(func() (err error) {
		b, err = os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) == "0"
}

// TestSoakDefaultBuffer sends 40,000 new UDP flows per second for a
// minute, and their expiries, through a follower with the default 64 MiB
// buffer: not one event may be lost. CTWATCH_SOAK_SECONDS shortens it.
func TestSoakDefaultBuffer(t *testing.T) {
	ns := soakNamespace(t, "soak")
	var flows, losses int
	_, stop := runFollower(t, ns, 0,
		func(events.FlowEvent) { flows++ },
		func(events.LossEvent) { losses++ })

	d := time.Duration(envInt("CTWATCH_SOAK_SECONDS", 60)) * time.Second
	res, err := ns.Run(context.Background(), loadgen.Load{UDPFlows: soakRate, Duration: d})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the last flows expire
	collectAll(t, ns)
	time.Sleep(500 * time.Millisecond) // their DESTROY events are read
	st := stop()

	rate := float64(res.UDP) / res.Elapsed.Seconds()
	t.Logf("sent %d flows in %v (%.0f/s); follower: new %d destroy %d overflows %d kernel drops %d, buffer %d bytes",
		res.UDP, res.Elapsed.Round(time.Millisecond), rate, st.New, st.Destroy, st.Overflows,
		st.KernelDrops, st.ReadBuffer)
	if rate < 0.95*soakRate {
		t.Errorf("load ran at %.0f flows/s, want %d", rate, soakRate)
	}
	if st.Overflows != 0 || losses != 0 {
		t.Errorf("%d overflows, %d loss events at the default buffer", st.Overflows, losses)
	}
	if !st.KernelDropsKnown || st.KernelDrops != 0 {
		t.Errorf("kernel dropped %d events (known %v)", st.KernelDrops, st.KernelDropsKnown)
	}
	if st.New != res.UDP || st.Destroy != res.UDP {
		t.Errorf("new %d, destroy %d; want %d of each", st.New, st.Destroy, res.UDP)
	}
	if st.DecodeErrors != 0 || st.Ignored != 0 {
		t.Errorf("%d decode errors, %d ignored events", st.DecodeErrors, st.Ignored)
	}
}

// TestSoakSmallBuffer overflows a deliberately small buffer with the same
// load and checks that every lost event is counted, every overflow is
// reported as a loss window, and that drops of flows whose events were
// lost are labelled unknown, never unsolicited or tracked.
//
// Every flow of the load has expired by the time its drops are judged, so
// the truth for each is late; ctwatch may say late or unknown, nothing
// else. Flows the follower never heard of must be unknown (event loss),
// both for drops after the load and for drops inside each loss window.
func TestSoakSmallBuffer(t *testing.T) {
	ns := soakNamespace(t, "soaksm")

	started := time.Now()
	var verdicts []correlate.Verdict
	corr := correlate.New(correlate.Config{
		UDPTimeout:    time.Second,
		StreamTimeout: time.Second,
		Emit:          func(v correlate.Verdict) { verdicts = append(verdicts, v) },
	}, started.Add(-correlate.DefaultHorizon)) // no warm-up: the namespace is new

	// The follower's callbacks feed the correlator on its goroutine; the
	// test reads both only after stop.
	// expired holds the reply tuples whose DESTROY arrived: the flows
	// whose expiry ctwatch knows. A resync dump re-lists live flows, so
	// every other flow was seen alive, but its end lies in a loss window.
	expired := map[events.Tuple]bool{}
	var losses []events.LossEvent
	_, stop := runFollower(t, ns, envInt("CTWATCH_SOAK_SMALL_BUFFER", 16<<10),
		func(ev events.FlowEvent) {
			if ev.Type == events.FlowExpired {
				expired[ev.Reply] = true
			}
			corr.ObserveFlow(ev)
		},
		func(ev events.LossEvent) {
			losses = append(losses, ev)
			corr.ObserveLoss(ev)
		})

	res, err := ns.Run(context.Background(), loadgen.Load{UDPFlows: soakRate, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	collectAll(t, ns)
	time.Sleep(500 * time.Millisecond)
	st := stop()

	// Every loss counted: the kernel's drop counter accounts for each
	// NEW and DESTROY that did not arrive.
	missing := 2*res.UDP - st.New - st.Destroy
	t.Logf("sent %d flows; follower: new %d destroy %d overflows %d resyncs %d kernel drops %d; %d loss events",
		res.UDP, st.New, st.Destroy, st.Overflows, st.Resyncs, st.KernelDrops, len(losses))
	if st.Overflows == 0 || missing == 0 {
		t.Fatalf("a %d-byte buffer did not overflow at %d flows/s", st.ReadBuffer, soakRate)
	}
	if !st.KernelDropsKnown || st.KernelDrops != missing {
		t.Errorf("kernel counted %d dropped events (known %v), %d are missing",
			st.KernelDrops, st.KernelDropsKnown, missing)
	}
	open, closed := lossWindows(t, losses)
	if uint64(open) != st.Overflows || uint64(closed) != st.Overflows || st.ResyncFailures != 0 {
		t.Errorf("%d overflows reported as %d open and %d closed windows (%d resync failures)",
			st.Overflows, open, closed, st.ResyncFailures)
	}

	// One drop for every flow sent, judged now.
	now := time.Now()
	unseen := 0
	for seq := res.First; seq <= res.Last; seq++ {
		d := dropOf(seq, now)
		if !expired[d.Tuple()] {
			unseen++
		}
		corr.AddDrop(d, now)
	}
	// And, inside each loss window, a drop for each of up to 1000 flows
	// whose expiry was lost.
	inWindow := 0
	for _, l := range losses {
		if l.End.IsZero() {
			continue
		}
		at := l.Start.Add(l.End.Sub(l.Start) / 2)
		n := 0
		for seq := res.First; seq <= res.Last && n < 1000; seq++ {
			if d := dropOf(seq, at); !expired[d.Tuple()] {
				corr.AddDrop(d, now)
				n++
			}
		}
		inWindow += n
	}
	corr.Flush(now)

	if len(verdicts) != int(res.UDP)+inWindow {
		t.Fatalf("%d verdicts for %d drops", len(verdicts), int(res.UDP)+inWindow)
	}
	var classes [4]int
	wrong := 0
	for _, v := range verdicts {
		classes[v.Class]++
		lost := !expired[v.Drop.Tuple()]
		ok := v.Class == correlate.Late || v.Class == correlate.Unknown
		if lost {
			ok = v.Class == correlate.Unknown && v.Reason == correlate.ReasonEventLoss
		}
		if !ok {
			if wrong < 10 {
				t.Errorf("drop %s at %s (flow events lost: %v): %v %v",
					v.Drop.Tuple(), v.Drop.Time.Format(time.StampMicro), lost, v.Class, v.Reason)
			}
			wrong++
		}
	}
	t.Logf("%d drops (%d of flows whose expiry was lost, %d inside loss windows): late %d, unknown %d, unsolicited %d, tracked %d",
		len(verdicts), unseen, inWindow, classes[correlate.Late], classes[correlate.Unknown],
		classes[correlate.Unsolicited], classes[correlate.Tracked])
	if wrong > 0 {
		t.Errorf("%d drops wrongly labelled", wrong)
	}
	if unseen == 0 || inWindow == 0 {
		t.Errorf("%d flows lost their expiry, %d drops inside loss windows: the loss path was not exercised",
			unseen, inWindow)
	}
}

// dropOf is a drop of a late answer to flow seq at t: the reply tuple.
func dropOf(seq uint64, t time.Time) events.Drop {
	src, dst := loadgen.UDPFlow(seq)
	return events.Drop{
		Source: events.SourceNFLOG, Time: t, Received: t, Proto: 17,
		Src: dst, Dst: src, Length: 28,
	}
}
