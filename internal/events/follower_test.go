package events_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/lab"
	"github.com/ctwatch/ctwatch/internal/lab/labtest"
	"github.com/ctwatch/ctwatch/internal/loadgen"
	"github.com/ctwatch/ctwatch/internal/netns"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// recorder collects what a follower emits. The follower calls it from its
// own goroutine; tests read it after waiting.
type recorder struct {
	mu     sync.Mutex
	flows  []events.FlowEvent
	losses []events.LossEvent
}

func (r *recorder) flow(ev events.FlowEvent) {
	r.mu.Lock()
	r.flows = append(r.flows, ev)
	r.mu.Unlock()
}

func (r *recorder) loss(ev events.LossEvent) {
	r.mu.Lock()
	r.losses = append(r.losses, ev)
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]events.FlowEvent, []events.LossEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.FlowEvent(nil), r.flows...), append([]events.LossEvent(nil), r.losses...)
}

// startFollowerIn runs a follower in the namespace at path until the test
// ends and returns its recorder.
func startFollowerIn(t *testing.T, path string, buf int) (*events.Follower, *recorder) {
	t.Helper()
	h, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	rec := &recorder{}
	f, err := events.NewFollower(events.FollowerConfig{
		NetNS: h.FD(), ReadBuffer: buf, Flow: rec.flow, Loss: rec.loss,
	})
	if err != nil {
		t.Fatalf("NewFollower: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Close()
	})
	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("follower stopped before its start-up dump: %v", err)
	}
	return f, rec
}

// TestFollowerLifecycle checks NEW, first reply and DESTROY of real lab
// flows: reply tuples (with and without SNAT, IPv4 and IPv6) and stop
// timestamps within 20 ms of the moment the entry really expired.
func TestFollowerLifecycle(t *testing.T) {
	for _, snat := range []bool{false, true} {
		t.Run(fmt.Sprintf("snat=%v", snat), func(t *testing.T) {
			t.Parallel()
			l := labtest.Start(t, lab.Config{SNAT: snat, Timestamps: true, Accounting: true, UDPTimeout: 2 * time.Second})
			_, rec := startFollowerIn(t, l.Resolver().Path, 0)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			plans := [][]lab.Answer{
				{{Delay: 50 * time.Millisecond}},
				nil,
				{{Delay: 10 * time.Millisecond}, {Delay: 900 * time.Millisecond}},
			}
			for i := 0; i < 12; i++ {
				fam := 4 + 2*(i%2)
				if _, err := l.Query(ctx, lab.QuerySpec{Family: fam, Answers: plans[i%len(plans)]}); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			// Every entry has expired 2 s after its last packet; a dump
			// then makes the kernel collect them all at once.
			time.Sleep(2500 * time.Millisecond)
			if err := l.CollectGarbage(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)

			flows, _ := rec.snapshot()
			byOrig := map[events.Tuple][]events.FlowEvent{}
			for _, ev := range flows {
				byOrig[ev.Orig] = append(byOrig[ev.Orig], ev)
			}
			truth := l.Truth()
			if len(truth.Queries) != 12 {
				t.Fatalf("lab made %d queries, want 12", len(truth.Queries))
			}
			for _, q := range truth.Queries {
				evs := byOrig[q.Orig]
				var types []events.FlowEventType
				for _, ev := range evs {
					types = append(types, ev.Type)
					if ev.Reply != q.Reply {
						t.Errorf("query %d %s: reply tuple %s, want %s", q.ID, ev.Type, ev.Reply, q.Reply)
					}
				}
				want := []events.FlowEventType{events.FlowStarted, events.FlowExpired}
				if q.Planned > 0 {
					want = []events.FlowEventType{events.FlowStarted, events.FlowReplied, events.FlowExpired}
				}
				if fmt.Sprint(types) != fmt.Sprint(want) {
					t.Errorf("query %d (%d answers): events %v, want %v", q.ID, q.Planned, types, want)
					continue
				}
				destroy := evs[len(evs)-1]
				if destroy.Stop.IsZero() || destroy.Start.IsZero() {
					t.Errorf("query %d: DESTROY without timestamps", q.ID)
					continue
				}
				if d := destroy.Stop.Sub(q.ExpectedExpiry).Abs(); d > 20*time.Millisecond {
					t.Errorf("query %d: stop %s is %v from the real expiry %s", q.ID,
						destroy.Stop.Format(time.StampMicro), d, q.ExpectedExpiry.Format(time.StampMicro))
				}
				if !destroy.HasCounters || destroy.OrigPackets != 1 {
					t.Errorf("query %d: DESTROY counters %v orig packets %d, want 1", q.ID,
						destroy.HasCounters, destroy.OrigPackets)
				}
				if destroy.Replied != (q.Planned > 0) {
					t.Errorf("query %d: replied %v, want %v", q.ID, destroy.Replied, q.Planned > 0)
				}
			}
		})
	}
}

// TestFollowerDumpsAtStart checks that flows created before the follower
// started are reported as FlowSeen by the start-up dump.
func TestFollowerDumpsAtStart(t *testing.T) {
	t.Parallel()
	l := labtest.Start(t, lab.Config{UDPTimeout: 20 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var orig []events.Tuple
	for i := 0; i < 6; i++ {
		h, err := l.Query(ctx, lab.QuerySpec{Family: 4 + 2*(i%2)})
		if err != nil {
			t.Fatal(err)
		}
		orig = append(orig, h.Orig)
	}
	time.Sleep(200 * time.Millisecond)

	_, rec := startFollowerIn(t, l.Resolver().Path, 0)
	time.Sleep(500 * time.Millisecond)
	flows, _ := rec.snapshot()
	seen := map[events.Tuple]events.FlowEvent{}
	for _, ev := range flows {
		if ev.Type == events.FlowSeen {
			seen[ev.Orig] = ev
		}
	}
	for _, o := range orig {
		ev, ok := seen[o]
		if !ok {
			t.Errorf("flow %s created before the follower was not dumped", o)
			continue
		}
		if ev.Timeout <= 0 || ev.Timeout > 20*time.Second {
			t.Errorf("flow %s: dumped timeout %v", o, ev.Timeout)
		}
	}
	if len(seen) != len(orig) {
		t.Errorf("dump found %d watched flows, want %d", len(seen), len(orig))
	}
}

// TestFollowerOverflow overflows a deliberately small buffer with a burst
// of new flows and checks that the loss is counted and reported, the table
// re-dumped, and that events keep flowing afterwards.
func TestFollowerOverflow(t *testing.T) {
	t.Parallel()
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft")
	ctx := context.Background()
	ns, err := loadgen.NewNamespace(ctx, fmt.Sprintf("ctwovf%d", os.Getpid()), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })

	// 16 KiB (the kernel doubles it) holds about a hundred events: a burst
	// of 100k/s overflows it, a trickle of 200/s never does.
	f, rec := startFollowerIn(t, ns.Path, 16<<10)
	if got := f.Stats().ReadBuffer; got > 64<<10 {
		t.Fatalf("receive buffer is %d bytes, wanted a small one", got)
	}
	if _, err := ns.Run(ctx, loadgen.Load{UDPFlows: 100000, Duration: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	st := f.Stats()
	_, losses := rec.snapshot()
	if st.Overflows == 0 {
		t.Fatalf("no overflow counted for a 100k/s burst into a %d-byte buffer (stats %+v)", st.ReadBuffer, st)
	}
	if st.Resyncs == 0 || st.Dumped == 0 {
		t.Errorf("overflow not followed by a re-dump: %+v", st)
	}
	if !st.KernelDropsKnown || st.KernelDrops == 0 {
		t.Errorf("kernel drop counter: known %v, %d", st.KernelDropsKnown, st.KernelDrops)
	}
	open, closed := lossWindows(t, losses)
	if open == 0 || closed == 0 || uint64(open) != st.Overflows {
		t.Errorf("loss events: %d open, %d closed for %d overflows", open, closed, st.Overflows)
	}

	// Events keep flowing: a slow trickle after the burst is seen whole.
	before := f.Stats().New
	res, err := ns.Run(ctx, loadgen.Load{UDPFlows: 200, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := f.Stats().New - before; got != res.UDP {
		t.Errorf("after the overflow the follower saw %d NEW events for %d new flows", got, res.UDP)
	}
}

// lossWindows counts the loss events that open a window and those that
// close one after a successful re-dump; any other is an error.
func lossWindows(t *testing.T, losses []events.LossEvent) (open, closed int) {
	t.Helper()
	for _, l := range losses {
		switch {
		case l.End.IsZero():
			open++
		case l.Resynced && !l.End.Before(l.Start):
			closed++
		default:
			t.Errorf("loss event %+v: neither open nor resynced", l)
		}
	}
	return open, closed
}
