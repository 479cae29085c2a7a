package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ctwatch/ctwatch/internal/events"
)

// listenGrace is how long the resolver keeps reading after the last
// planned answer is due.
const listenGrace = time.Second

// QuerySpec plans one query and the upstream's answers to it.
type QuerySpec struct {
	// Family is 4 or 6.
	Family int
	// Name is the question; empty means "q<ID>.lab.test.".
	Name string
	// Answers are sent by the upstream; none means the query is never
	// answered, two or more mean duplicates.
	Answers []Answer
}

// Answer is one planned answer.
type Answer struct {
	// Delay is counted from the moment the resolver sent the query.
	Delay time.Duration
	// Oversize pads the answer past the oversize rule's limit, so it is
	// dropped even while its flow is live.
	Oversize bool
}

// planKey finds a query's plan from what the upstream reads.
type planKey struct {
	id   uint16
	name string // lower case, fully qualified
}

// query is the lab's record of one query. Fields below the line are
// guarded by Lab.mu.
type query struct {
	id      int
	family  int
	name    string
	dnsID   uint16
	answers []Answer
	orig    events.Tuple
	done    chan struct{} // closed when the resolver stops reading

	sent     time.Time         // right before the resolver's send
	sendDone time.Time         // right after it; zero until then
	seen     bool              // the upstream received the query
	reply    events.Tuple      // as the upstream saw it: answers' tuple
	sends    []answerSend      // answers sent, in order
	received map[int]time.Time // answer index -> when the resolver read it
	pending  int               // planned answers not sent or given up
}

// answerSend is one answer the upstream sent.
type answerSend struct {
	index int
	start time.Time // right before sendto
	end   time.Time // right after
}

// QueryHandle follows one query after Query returns.
type QueryHandle struct {
	// ID numbers queries from 1 in the order a lab made them.
	ID     int
	Family int
	Name   string
	DNSID  uint16
	// Orig is the flow's original tuple: resolver socket -> upstream:53.
	Orig events.Tuple
	// Sent is taken right before the send.
	Sent time.Time

	lab *Lab
	q   *query
}

// Wait blocks until the resolver has stopped reading (all planned
// answers were due listenGrace ago, or the lab closed) or ctx ends.
func (h *QueryHandle) Wait(ctx context.Context) error {
	select {
	case <-h.q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for query %d: %w", h.ID, ctx.Err())
	}
}

// Received returns the indexes (into QuerySpec.Answers) of the answers
// the resolver's socket has read so far, in increasing order.
func (h *QueryHandle) Received() []int {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	idx := make([]int, 0, len(h.q.received))
	for i := range h.q.received {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

// Reply returns the flow's reply tuple as the upstream saw the query:
// upstream:53 -> the resolver's address and port after SNAT. ok is
// false until the upstream has received the query.
func (h *QueryHandle) Reply() (reply events.Tuple, ok bool) {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	return h.q.reply, h.q.seen
}

// Query sends one DNS query from a fresh UDP socket in the resolver
// namespace to the upstream's port 53 and returns right after the send.
// The socket stays open, reading, until every planned answer is due plus
// a second; the upstream sends the planned answers on time. ctx bounds
// the send only.
func (l *Lab) Query(ctx context.Context, spec QuerySpec) (*QueryHandle, error) {
	if err := checkQuerySpec(spec); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if err := l.checkOpen(); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}

	network := "udp" + strconv.Itoa(spec.Family)
	var conn *net.UDPConn
	err := l.resolver.Do(func() error {
		var err error
		conn, err = l.listenFreshPort(network, spec)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query: open socket: %w", err)
	}
	server := netip.AddrPortFrom(l.UpstreamAddr(spec.Family), 53)

	q, msg, err := l.register(spec, conn, server)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.WriteToUDPAddrPort(msg, server); err != nil {
		l.mu.Lock()
		delete(l.pending, planKey{q.dnsID, strings.ToLower(q.name)})
		l.queries = slices.DeleteFunc(l.queries, func(x *query) bool { return x == q })
		l.settle(q.pending)
		q.pending = 0
		l.mu.Unlock()
		close(q.done)
		conn.Close()
		l.wg.Done()
		return nil, fmt.Errorf("query %d: send: %w", q.id, err)
	}
	l.mu.Lock()
	q.sendDone = time.Now()
	l.mu.Unlock()

	last := time.Duration(0)
	for _, a := range spec.Answers {
		last = max(last, a.Delay)
	}
	go l.listen(conn, q, server, q.sent.Add(last+listenGrace))

	return &QueryHandle{
		ID:     q.id,
		Family: q.family,
		Name:   q.name,
		DNSID:  q.dnsID,
		Orig:   q.orig,
		Sent:   q.sent,
		lab:    l,
		q:      q,
	}, nil
}

// checkQuerySpec rejects specs Query cannot carry out.
func checkQuerySpec(spec QuerySpec) error {
	if !validFamily(spec.Family) {
		return fmt.Errorf("query: family %d is not 4 or 6", spec.Family)
	}
	if len(spec.Answers) > maxAnswers {
		return fmt.Errorf("query: %d answers, at most %d", len(spec.Answers), maxAnswers)
	}
	for i, a := range spec.Answers {
		if a.Delay < 0 {
			return fmt.Errorf("query: answer %d has negative delay", i)
		}
	}
	if spec.Name != "" {
		if _, ok := dns.IsDomainName(spec.Name); !ok {
			return fmt.Errorf("query: bad name %q", spec.Name)
		}
	}
	return nil
}

// register numbers a new query, records its plan where the upstream will
// find it, and stamps its send time. On success the caller owns one count
// of l.wg, for the reader it starts.
func (l *Lab) register(spec QuerySpec, conn *net.UDPConn,
	server netip.AddrPort) (*query, []byte, error) {

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, fmt.Errorf("query: %w", ErrClosed)
	}

	id := l.nextID + 1
	name := spec.Name
	if name == "" {
		name = "q" + strconv.Itoa(id) + "." + labDomain
	}
	name = dns.Fqdn(name)
	q := &query{
		id:       id,
		family:   spec.Family,
		name:     name,
		dnsID:    uint16(id),
		answers:  slices.Clone(spec.Answers),
		done:     make(chan struct{}),
		received: make(map[int]time.Time),
		pending:  len(spec.Answers),
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	q.orig = events.Tuple{
		Src: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()),
		Dst: server,
	}
	key := planKey{q.dnsID, strings.ToLower(name)}
	if _, dup := l.pending[key]; dup {
		return nil, nil, fmt.Errorf("query: id %d and name %s are already in flight",
			q.dnsID, name)
	}
	msg, err := buildQuery(q.dnsID, name, q.family)
	if err != nil {
		return nil, nil, fmt.Errorf("query: %w", err)
	}

	l.nextID = id
	l.queries = append(l.queries, q)
	l.pending[key] = q
	l.unsent += q.pending
	l.wg.Add(1)
	q.sent = time.Now()
	return q, msg, nil
}

// listen reads the answers to q until the deadline or Close, then
// closes the socket. Answers the upstream will now never send (it never
// saw the query) are given up, so Lab.Wait does not hang on them.
func (l *Lab) listen(conn *net.UDPConn, q *query, server netip.AddrPort, until time.Time) {
	defer l.wg.Done()
	defer close(q.done)
	defer conn.Close()

	conn.SetReadDeadline(until)
	stop := context.AfterFunc(l.ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	buf := make([]byte, 65536)
	for {
		// The read fails at the deadline, which Close moves into the
		// past; any other error ends the query the same way.
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		at := time.Now()
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != server {
			continue
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) != nil || !m.Response || m.Id != q.dnsID {
			continue
		}
		i, ok := answerIndex(&m)
		if !ok || i >= len(q.answers) {
			continue
		}
		l.mu.Lock()
		if _, dup := q.received[i]; !dup {
			q.received[i] = at
		}
		l.mu.Unlock()
	}

	l.mu.Lock()
	if !q.seen {
		delete(l.pending, planKey{q.dnsID, strings.ToLower(q.name)})
		l.settle(q.pending)
		q.pending = 0
	}
	l.mu.Unlock()
}

// Query source ports come from queryPortMin..queryPortMax, above the
// spoofer's range, so the two never meet.
const (
	queryPortMin = 33000
	queryPortMax = 60999
)

// listenFreshPort opens the query's socket on a port no earlier query
// may still have a conntrack entry for. The kernel would otherwise pick
// any free port, and a new socket on the port of a flow whose entry is
// still alive continues that flow (same tuple): its state, answered or
// not, and its expiry would belong to the old query, and the model, which
// gives each query a flow of its own, would be wrong.
func (l *Lab) listenFreshPort(network string, spec QuerySpec) (*net.UDPConn, error) {
	last := time.Duration(0)
	for _, a := range spec.Answers {
		last = max(last, a.Delay)
	}
	// The entry lives until the last packet plus the timeout; the last
	// packet is at most the last answer, or the query itself.
	busy := last + listenGrace + l.cfg.UDPTimeout + 2*time.Second

	src := l.sourceAddr(spec.Family)
	var lastErr error
	for range 64 {
		port := l.reservePort(spec.Family, busy)
		conn, err := net.ListenUDP(network, &net.UDPAddr{IP: src.AsSlice(), Port: int(port)})
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no free query port: %w", lastErr)
}

// reservePort picks a random query port that is not reserved and
// reserves it for d.
func (l *Lab) reservePort(family int, d time.Duration) uint16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.portBusy == nil {
		l.portBusy = map[int]map[uint16]time.Time{}
	}
	busy := l.portBusy[family]
	if busy == nil {
		busy = map[uint16]time.Time{}
		l.portBusy[family] = busy
	}
	now := time.Now()
	var port uint16
	// At the rates the lab runs, a few hundred ports are busy out of
	// 28000; the bound only stops a pathological caller spinning.
	for range 1 << 16 {
		port = uint16(queryPortMin + rand.IntN(queryPortMax-queryPortMin+1))
		if until, ok := busy[port]; !ok || !now.Before(until) {
			break
		}
	}
	busy[port] = now.Add(d)
	return port
}
