package correlate

import (
	"hash/maphash"
	"net/netip"
)

// flowKey is a reply tuple in 36 bytes. IPv4 addresses are stored in their
// IPv4-mapped IPv6 form, so a drop parsed as ::ffff:a.b.c.d matches a flow
// reported as a.b.c.d; IPv6 zones are ignored. The protocol is not part of
// the key: only UDP flows and drops reach the correlator.
type flowKey struct {
	src, dst     [16]byte
	sport, dport uint16
}

// keyOf builds the key of a reply tuple or of a drop's (source, dest).
func keyOf(src, dst netip.AddrPort) flowKey {
	return flowKey{
		src:   src.Addr().As16(),
		dst:   dst.Addr().As16(),
		sport: src.Port(),
		dport: dst.Port(),
	}
}

// recFlags holds a record's state and what is known about its times.
type recFlags uint8

const (
	// flagLive and flagExpired are the two states; a free slot has
	// neither.
	flagLive recFlags = 1 << iota
	flagExpired
	// flagAnswered: the flow had SEEN_REPLY.
	flagAnswered
	// flagEstimated: exp of an expired record is an estimate (no stop
	// timestamp). Live records' exp is always an estimate.
	flagEstimated
	// flagSeenOnly: known only from a dump; it may never emit events.
	flagSeenOnly
	// flagStartKernel: start is the kernel's timestamp, exact.
	flagStartKernel
	// flagStartCoarse: start is the arrival of a dump entry, an UPDATE or
	// a DESTROY, so only an upper bound; no answer delay can be computed.
	// With neither start flag, start is the NEW event's arrival.
	flagStartCoarse
	// flagLossUncertain: live, but its DESTROY may have been lost.
	flagLossUncertain
)

// flowRec is one remembered flow: 64 bytes, a size TestRecordSize guards.
// Times are Unix nanoseconds.
type flowRec struct {
	key flowKey
	id  uint32
	// next links records whose keys hash alike, newest first; free slots
	// use it for the free list.
	next  uint32
	flags recFlags
	start int64
	// exp is the expiry: the kernel's stop timestamp or an estimate for an
	// expired record, the estimated expiry for a live one.
	exp int64
}

func (r *flowRec) live() bool    { return r.flags&flagLive != 0 }
func (r *flowRec) expired() bool { return r.flags&flagExpired != 0 }

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
	// nilIdx ends chains and the free list.
	nilIdx = ^uint32(0)
)

// index stores records in a slab of fixed-size chunks, so that growing
// never copies (a 64 MiB copy would stall the pipeline) and capacity never
// overshoots by more than one chunk, and finds them through a map from a
// seeded hash of the key to the newest record with that hash. Seeding
// keeps remote parties from crafting tuples that share a chain.
//
// Warning: chunks and map buckets are kept after a burst; memory stays at
// the high-water mark, which MaxFlows bounds.
type index struct {
	seed   maphash.Seed
	heads  map[uint64]uint32
	chunks [][]flowRec
	free   uint32
	// hwm is the first slot never handed out.
	hwm uint32
	// n counts records in use.
	n int
}

func newIndex() index {
	return index{
		seed:  maphash.MakeSeed(),
		heads: make(map[uint64]uint32),
		free:  nilIdx,
	}
}

func (x *index) hash(k flowKey) uint64 { return maphash.Comparable(x.seed, k) }

func (x *index) rec(i uint32) *flowRec {
	return &x.chunks[i>>chunkBits][i&(chunkSize-1)]
}

// head returns the newest record whose key hashes to h, or nilIdx.
func (x *index) head(h uint64) uint32 {
	if i, ok := x.heads[h]; ok {
		return i
	}
	return nilIdx
}

// insert stores r and returns its slot.
func (x *index) insert(r flowRec) uint32 {
	var i uint32
	if x.free != nilIdx {
		i = x.free
		x.free = x.rec(i).next
	} else {
		i = x.hwm
		if int(i>>chunkBits) == len(x.chunks) {
			x.chunks = append(x.chunks, make([]flowRec, chunkSize))
		}
		x.hwm++
	}

	h := x.hash(r.key)
	r.next = x.head(h)
	*x.rec(i) = r
	x.heads[h] = i
	x.n++
	return i
}

// remove unlinks slot i from its chain and frees it.
func (x *index) remove(i uint32) {
	r := x.rec(i)
	h := x.hash(r.key)
	if head := x.heads[h]; head == i {
		if r.next == nilIdx {
			delete(x.heads, h)
		} else {
			x.heads[h] = r.next
		}
	} else {
		// Chains hold the flows of one reply tuple plus rare hash
		// collisions, so this walk is short.
		p := x.rec(head)
		for p.next != i {
			p = x.rec(p.next)
		}
		p.next = r.next
	}

	*r = flowRec{next: x.free}
	x.free = i
	x.n--
}

// ring is a FIFO that grows by doubling and shrinks when mostly empty; its
// size is always a power of two.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

const minRing = 16

func (q *ring[T]) len() int { return q.n }

func (q *ring[T]) push(v T) {
	if q.n == len(q.buf) {
		q.resize(max(minRing, 2*len(q.buf)))
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = v
	q.n++
}

// peek returns the oldest element; the ring must not be empty.
func (q *ring[T]) peek() *T { return &q.buf[q.head] }

// pop removes the oldest element; the ring must not be empty.
func (q *ring[T]) pop() T {
	v := q.buf[q.head]
	var zero T
	q.buf[q.head] = zero // release what T points to
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	if len(q.buf) > minRing && q.n < len(q.buf)/4 {
		q.resize(len(q.buf) / 2)
	}
	return v
}

func (q *ring[T]) resize(size int) {
	buf := make([]T, size)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
	}
	q.buf, q.head = buf, 0
}
