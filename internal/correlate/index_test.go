package correlate

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/ctwatch/ctwatch/internal/events"
)

// TestRecordSize guards the per-flow budget: the record is most of it.
func TestRecordSize(t *testing.T) {
	if got := unsafe.Sizeof(flowRec{}); got != 64 {
		t.Errorf("flowRec is %d bytes, want 64", got)
	}
	if got := unsafe.Sizeof(flowKey{}); got != 36 {
		t.Errorf("flowKey is %d bytes, want 36", got)
	}
}

func TestKeyOf(t *testing.T) {
	tests := []struct {
		name       string
		a, b       events.Tuple
		wantEquals bool
	}{
		{"same tuple", tupleA, tupleA, true},
		{"IPv4 and IPv4-mapped", tupleA, tupleA6, true},
		{"other port", tupleA, tupleB, false},
		{"other server", tupleA, tupleC, false},
		{"direction matters", tupleA, events.Tuple{Src: tupleA.Dst, Dst: tupleA.Src}, false},
		{"zone ignored", tuple6, events.Tuple{
			Src: netip.AddrPortFrom(tuple6.Src.Addr().WithZone("veth0"), 53),
			Dst: tuple6.Dst,
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := keyOf(tt.a.Src, tt.a.Dst), keyOf(tt.b.Src, tt.b.Dst)
			if got := ka == kb; got != tt.wantEquals {
				t.Errorf("keyOf(%v) == keyOf(%v) is %t", tt.a, tt.b, got)
			}
		})
	}
}

func TestRing(t *testing.T) {
	var q ring[int]
	next, want := 0, 0
	// Grow through several sizes, drain to shrink, interleaving so the
	// head wraps around.
	for round := range 5 {
		for range 100 * (round + 1) {
			q.push(next)
			next++
			if next%3 == 0 {
				if got := q.pop(); got != want {
					t.Fatalf("pop = %d, want %d", got, want)
				}
				want++
			}
		}
		for q.len() > 10 {
			if got := q.pop(); got != want {
				t.Fatalf("pop = %d, want %d", got, want)
			}
			want++
		}
	}
	if q.len() != next-want {
		t.Errorf("len = %d, want %d", q.len(), next-want)
	}
	if len(q.buf) > 64 {
		t.Errorf("ring did not shrink: %d slots for %d", len(q.buf), q.len())
	}
}

// TestRandomOperations drives the index through random flows, reuse of
// tuples and ids, losses and evictions, checking its structure throughout.
func TestRandomOperations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := newHarness(Config{MaxFlows: 300})
	now := time.Duration(0)
	type flow struct {
		id    uint32
		reply events.Tuple
		start time.Duration
	}
	var live []flow
	tupleN := func(n int) events.Tuple {
		return events.Tuple{
			Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(n % 3)}), 53),
			Dst: netip.AddrPortFrom(netip.MustParseAddr("198.18.1.10"), uint16(40000+n%50)),
		}
	}

	for i := range 20000 {
		now += time.Duration(rng.IntN(400)) * ms
		switch op := rng.IntN(100); {
		case op < 30:
			f := flow{uint32(rng.IntN(500)), tupleN(rng.IntN(1000)), now}
			live = append(live, f)
			newFlow(now, f.id, f.reply)(h)
		case op < 45 && len(live) > 0:
			f := live[rng.IntN(len(live))]
			reply(now, f.id, f.reply)(h)
		case op < 70 && len(live) > 0:
			j := rng.IntN(len(live))
			f := live[j]
			live = append(live[:j], live[j+1:]...)
			var o []flowOpt
			if rng.IntN(2) == 0 {
				o = append(o, stamps(f.start, max(f.start, now-time.Duration(rng.IntN(60))*sec)))
			}
			destroy(now, f.id, f.reply, o...)(h)
		case op < 75:
			seen(now, uint32(rng.IntN(500)), tupleN(rng.IntN(1000)))(h)
		case op < 95:
			lagDrop(now-time.Duration(rng.IntN(2000))*ms, now, tupleN(rng.IntN(1000)))(h)
		case op < 96:
			lossOpen(now - 2*sec)(h)
		case op < 97:
			loss(now-3*sec, now)(h)
		default:
			advance(now)(h)
		}
		if i%97 == 0 {
			checkInvariants(t, h.c)
			if t.Failed() {
				t.Fatalf("after %d operations", i)
			}
		}
	}
	h.c.Flush(at(now))
	checkInvariants(t, h.c)

	s := h.c.Stats()
	var verdicts uint64
	for _, n := range s.Verdicts {
		verdicts += n
	}
	if verdicts != uint64(len(h.verdicts)) {
		t.Errorf("Stats counts %d verdicts, %d emitted", verdicts, len(h.verdicts))
	}
	if s.Live+s.Expired > 300 || s.Evicted == 0 {
		t.Errorf("bound not enforced: %+v", s)
	}
}

// checkInvariants verifies the index's structure: every record in use is
// on its hash chain exactly once, free slots are on the free list, expired
// records are in expQ exactly once, live ones in liveQ, counts agree.
func checkInvariants(t *testing.T, c *Correlator) {
	t.Helper()
	x := &c.idx

	used, live, expired := 0, 0, 0
	for i := uint32(0); i < x.hwm; i++ {
		r := x.rec(i)
		switch {
		case r.live() && r.expired():
			t.Errorf("slot %d both live and expired", i)
		case r.live():
			live++
		case r.expired():
			expired++
		default:
			continue
		}
		used++
		n := 0
		for j := x.head(x.hash(r.key)); j != nilIdx; j = x.rec(j).next {
			if j == i {
				n++
			}
			if n > 1 || j >= x.hwm {
				break
			}
		}
		if n != 1 {
			t.Errorf("slot %d found %d times on its chain", i, n)
		}
	}
	if used != x.n || live != c.nlive || expired != c.nexp {
		t.Errorf("counted used %d live %d expired %d; index says %d, %d, %d",
			used, live, expired, x.n, c.nlive, c.nexp)
	}
	if used > c.cfg.MaxFlows {
		t.Errorf("%d flows exceed MaxFlows %d", used, c.cfg.MaxFlows)
	}

	free := 0
	for j := x.free; j != nilIdx && free <= int(x.hwm); j = x.rec(j).next {
		if r := x.rec(j); r.live() || r.expired() {
			t.Errorf("slot %d on the free list is in use", j)
		}
		free++
	}
	if free != int(x.hwm)-x.n {
		t.Errorf("free list has %d slots, want %d", free, int(x.hwm)-x.n)
	}

	chained := 0
	for h, j := range x.heads {
		for ; j != nilIdx; j = x.rec(j).next {
			if x.hash(x.rec(j).key) != h {
				t.Errorf("slot %d on the chain of another hash", j)
			}
			chained++
			if chained > x.n {
				break
			}
		}
	}
	if chained != x.n {
		t.Errorf("chains hold %d records, want %d", chained, x.n)
	}

	inExp := make(map[uint32]int)
	for k := range c.expQ.len() {
		inExp[c.expQ.buf[(c.expQ.head+k)&(len(c.expQ.buf)-1)]]++
	}
	inLive := make(map[uint32]bool)
	for k := range c.liveQ.len() {
		inLive[c.liveQ.buf[(c.liveQ.head+k)&(len(c.liveQ.buf)-1)]] = true
	}
	for i := uint32(0); i < x.hwm; i++ {
		r := x.rec(i)
		if r.expired() && inExp[i] != 1 {
			t.Errorf("expired slot %d is %d times in expQ", i, inExp[i])
		}
		if !r.expired() && inExp[i] != 0 {
			t.Errorf("slot %d in expQ is not expired", i)
		}
		if r.live() && !inLive[i] {
			t.Errorf("live slot %d missing from liveQ", i)
		}
	}
}
