package tui

import (
	"cmp"
	"net/netip"
	"slices"
)

// DefaultMaxServers is how many upstream servers the Collector tracks at
// most. Spoofed packets can come from any address, so the table is
// bounded; a new server evicts the one with the fewest drops.
const DefaultMaxServers = 1024

// ServerCount is the drops counted for one upstream server (the source
// address of dropped packets).
type ServerCount struct {
	Addr        netip.Addr
	Late        uint64
	Unsolicited uint64
	// Other counts tracked and unknown verdicts.
	Other uint64
}

// Total returns every drop counted for the server.
func (s ServerCount) Total() uint64 { return s.Late + s.Unsolicited + s.Other }

// serverTable counts drops per server for at most limit servers. It is a
// min-heap on the total, indexed by address, so that adding a drop and
// evicting the server with the fewest drops both cost O(log limit).
// Counts of a server start when it enters the table: a server evicted and
// seen again starts from zero, and only servers with few drops are
// evicted.
type serverTable struct {
	limit   int
	heap    []ServerCount
	index   map[netip.Addr]int // position in heap
	evicted uint64
}

func newServerTable(limit int) serverTable {
	if limit <= 0 {
		limit = DefaultMaxServers
	}
	return serverTable{limit: limit, index: make(map[netip.Addr]int)}
}

// add counts one drop from addr in the column its verdict picks.
func (t *serverTable) add(addr netip.Addr, late, unsolicited bool) {
	i, ok := t.index[addr]
	appended := false
	switch {
	case ok:
	case len(t.heap) < t.limit:
		i, appended = len(t.heap), true
		t.heap = append(t.heap, ServerCount{Addr: addr})
		t.index[addr] = i
	default:
		// Replace the server with the fewest drops, at the root.
		delete(t.index, t.heap[0].Addr)
		t.evicted++
		i = 0
		t.heap[0] = ServerCount{Addr: addr}
		t.index[addr] = 0
	}

	s := &t.heap[i]
	switch {
	case late:
		s.Late++
	case unsolicited:
		s.Unsolicited++
	default:
		s.Other++
	}
	if appended {
		t.up(i) // a newcomer, at one drop, may be below its parent
	} else {
		t.down(i)
	}
}

func (t *serverTable) less(i, j int) bool { return t.heap[i].Total() < t.heap[j].Total() }

func (t *serverTable) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.index[t.heap[i].Addr] = i
	t.index[t.heap[j].Addr] = j
}

func (t *serverTable) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

// down restores the heap after the count at i grew.
func (t *serverTable) down(i int) {
	n := len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && t.less(r, l) {
			c = r
		}
		if !t.less(c, i) {
			return
		}
		t.swap(i, c)
		i = c
	}
}

// topServers sorts s, most drops first (late and unsolicited before
// others, then by address so that the order is stable), and keeps n.
func topServers(s []ServerCount, n int) []ServerCount {
	sortServers(s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}

func sortServers(s []ServerCount) {
	slices.SortFunc(s, func(a, b ServerCount) int {
		if c := cmp.Compare(b.Late+b.Unsolicited, a.Late+a.Unsolicited); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Total(), a.Total()); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
}
