// Package demo drives a realistic mix of DNS traffic through a lab and
// compares ctwatch's verdicts with the lab's ground truth. `ctwatch demo`
// and the integration tests share it, so what the demo shows is what the
// tests check.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ctwatch/ctwatch/internal/lab"
)

// Kind is one ingredient of the mix.
type Kind uint8

// Kinds of traffic.
const (
	// OnTime: answered well within the timeout; nothing is dropped.
	OnTime Kind = iota
	// LateSoon: never answered in time; the answer comes shortly after
	// the entry expired, usually before garbage collection has removed
	// it, so the packet evicts it on the spot.
	LateSoon
	// LateAfterGC: the answer comes long after expiry, once the entry has
	// been collected; only the remembered DESTROY explains the drop.
	LateAfterGC
	// Duplicate: answered on time, then answered again after the entry
	// (refreshed by the first answer) expired: late and answered.
	Duplicate
	// Never: the query is never answered; its flow just expires.
	Never
	// Oversize: an answer too large for the (misordered) ruleset is
	// dropped while its flow is live: tracked.
	Oversize
	// Spoof: a packet from port 53 sent from outside, matching no flow.
	Spoof
	numKinds
)

var kindNames = [...]string{"on-time", "late-soon", "late-after-gc", "duplicate", "never", "oversize", "spoof"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Mix weighs the kinds; the zero Mix means DefaultMix.
type Mix [numKinds]int

// DefaultMix is mostly healthy traffic with every kind of drop in it.
var DefaultMix = Mix{
	OnTime: 30, LateSoon: 20, LateAfterGC: 10, Duplicate: 15, Never: 5, Oversize: 8, Spoof: 12,
}

// Scenario describes a run.
type Scenario struct {
	// Duration is how long new traffic starts; answers planned late keep
	// coming for up to LateAfterGC's delay after that.
	Duration time.Duration
	// Rate is items (queries or spoofs) per second.
	Rate float64
	// Families lists the address families to use (4, 6), round robin.
	Families []int
	Mix      Mix
	// GCEvery forces a conntrack garbage collection this often, as the
	// kernel's own collector would every minute or so on a busy table;
	// zero leaves collection to the kernel.
	GCEvery time.Duration
	// Seed makes the mix reproducible.
	Seed uint64
}

// Plan returns the delays for one item of kind k, for a lab whose UDP
// timeout is t. Margins keep every answer far (≥ 400 ms) from an expiry,
// so the kernel and the lab's model cannot disagree.
func Plan(rng *rand.Rand, k Kind, t time.Duration) []lab.Answer {
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	switch k {
	case OnTime:
		return []lab.Answer{{Delay: between(5*time.Millisecond, 300*time.Millisecond)}}
	case LateSoon:
		return []lab.Answer{{Delay: t + between(400*time.Millisecond, 2*time.Second)}}
	case LateAfterGC:
		return []lab.Answer{{Delay: t + between(5*time.Second, 8*time.Second)}}
	case Duplicate:
		first := between(5*time.Millisecond, 200*time.Millisecond)
		return []lab.Answer{{Delay: first}, {Delay: first + t + between(400*time.Millisecond, 3*time.Second)}}
	case Never:
		return nil
	case Oversize:
		return []lab.Answer{{Delay: between(5*time.Millisecond, 300*time.Millisecond), Oversize: true}}
	}
	return nil
}

// Traffic runs a scenario against l: it sends the mix for s.Duration,
// then waits for every planned answer. It returns how many items of each
// kind it sent.
func Traffic(ctx context.Context, l *lab.Lab, s Scenario) ([numKinds]int, error) {
	var sent [numKinds]int
	mix := s.Mix
	if mix == (Mix{}) {
		mix = DefaultMix
	}
	total := 0
	for _, w := range mix {
		total += w
	}
	families := s.Families
	if len(families) == 0 {
		families = []int{4, 6}
	}
	if s.Rate <= 0 || total <= 0 {
		return sent, errors.New("demo traffic: rate and mix must be positive")
	}
	rng := rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))
	timeout := l.Config().UDPTimeout

	gcDone := make(chan struct{})
	gcCtx, stopGC := context.WithCancel(ctx)
	go func() {
		defer close(gcDone)
		if s.GCEvery <= 0 {
			return
		}
		t := time.NewTicker(s.GCEvery)
		defer t.Stop()
		for {
			select {
			case <-gcCtx.Done():
				return
			case <-t.C:
				// A failed collection only shifts late answers from
				// "after GC" to "before GC"; both are late.
				_ = l.CollectGarbage(gcCtx)
			}
		}
	}()
	defer func() { stopGC(); <-gcDone }()

	interval := time.Duration(float64(time.Second) / s.Rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.Now().Add(s.Duration)
	for i := 0; time.Now().Before(end); i++ {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-tick.C:
		}
		k := pick(rng, mix, total)
		fam := families[i%len(families)]
		var err error
		if k == Spoof {
			_, err = l.Spoof(ctx, lab.SpoofSpec{Family: fam})
		} else {
			_, err = l.Query(ctx, lab.QuerySpec{Family: fam, Answers: Plan(rng, k, timeout)})
		}
		if err != nil {
			return sent, fmt.Errorf("demo traffic: %s: %w", k, err)
		}
		sent[k]++
	}
	if err := l.Wait(ctx); err != nil {
		return sent, fmt.Errorf("demo traffic: wait for answers: %w", err)
	}
	return sent, nil
}

func pick(rng *rand.Rand, mix Mix, total int) Kind {
	n := rng.IntN(total)
	for k, w := range mix {
		if n < w {
			return Kind(k)
		}
		n -= w
	}
	return OnTime
}
