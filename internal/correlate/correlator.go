package correlate

import (
	"math"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Correlator remembers flows and turns drops into verdicts; see the package
// documentation for the rules. It is not safe for concurrent use: one
// goroutine feeds it events, drops and clock ticks in arrival order.
type Correlator struct {
	cfg Config
	// Config durations in nanoseconds, and when watching began.
	horizon, grace, margin int64
	udpTimeout, stream     int64
	start                  int64
	// retention is how long past its expiry a flow is kept: Horizon for
	// lateness, Grace for drops still pending, MaxDropLag for drops that
	// are handed over late.
	retention int64

	idx index
	// liveQ holds live records in creation order. Entries are not removed
	// when a record expires or its slot is reused, so the head is checked
	// before use. expQ holds expired records in order of their DESTROY;
	// its entries are always valid because an expired record is only ever
	// freed from the head of expQ.
	liveQ, expQ ring[uint32]
	nlive, nexp int

	pending ring[pendingDrop]
	losses  []lossWindow

	// evictMark and forgotMark are the latest expiry among flows evicted
	// by MaxFlows and forgotten by the horizon: an unmatched drop within
	// Horizon after them might have matched one.
	evictMark, forgotMark int64

	// alias maps the reversed original tuple of a live NAT'd flow to its
	// reply key: while the entry lives the kernel undoes the NAT before
	// the filter's input hook, so a packet dropped there (tracked) carries
	// the original addresses, not the reply tuple. Late packets find no
	// entry and are never translated, so aliases are needed only for live
	// flows; they are removed on DESTROY and swept when they outnumber
	// the live flows.
	alias map[flowKey]aliasTarget

	stats counters
}

// aliasTarget is the flow an alias points to.
type aliasTarget struct {
	key flowKey
	id  uint32
}

// pendingDrop waits for the end of its grace window.
type pendingDrop struct {
	drop     events.Drop
	key      flowKey
	at       int64 // the drop's time (T)
	deadline int64
}

// counters are the cumulative parts of Stats.
type counters struct {
	evicted, forgotten, stale, orphans, ignored, answers uint64
	verdicts                                             [numClasses]uint64
	unknown                                              [numReasons]uint64
}

// Stats is a snapshot of the correlator's state and cumulative counts.
type Stats struct {
	// Live and Expired count the flows remembered in each state.
	Live, Expired int
	// PendingDrops counts drops waiting for their grace window to end.
	PendingDrops int
	// LossWindows counts the loss windows still relevant; LossOpen is true
	// while one awaits its resync.
	LossWindows int
	LossOpen    bool

	// Evicted counts flows removed early because MaxFlows was reached.
	Evicted uint64
	// Forgotten counts expired flows removed after the horizon.
	Forgotten uint64
	// Stale counts live flows removed because their DESTROY never came
	// (lost, or the flow predates ctwatch) within the horizon past their
	// estimated expiry.
	Stale uint64
	// Orphans counts flows first met in an UPDATE or DESTROY: their NEW
	// was lost or came before ctwatch listened.
	Orphans uint64
	// Ignored counts flow events with an unknown type or no arrival time.
	Ignored uint64
	// Answers counts answer delays reported through Config.OnAnswer.
	Answers uint64
	// Verdicts counts verdicts by Class (index with the Class), Unknown
	// the Unknown ones by Reason.
	Verdicts [numClasses]uint64
	Unknown  [numReasons]uint64
}

// New returns a Correlator that began watching at start: drops earlier
// than start plus the horizon may belong to flows it never saw.
func New(cfg Config, start time.Time) *Correlator {
	cfg = cfg.withDefaults()
	return &Correlator{
		cfg:        cfg,
		horizon:    int64(cfg.Horizon),
		grace:      int64(cfg.Grace),
		margin:     int64(cfg.EstimateMargin),
		udpTimeout: int64(cfg.UDPTimeout),
		stream:     int64(cfg.StreamTimeout),
		start:      start.UnixNano(),
		retention:  int64(cfg.Horizon + cfg.Grace + cfg.MaxDropLag),
		idx:        newIndex(),
		evictMark:  math.MinInt64,
		forgotMark: math.MinInt64,
	}
}

// Stats returns current counts.
func (c *Correlator) Stats() Stats {
	s := Stats{
		Live:         c.nlive,
		Expired:      c.nexp,
		PendingDrops: c.pending.len(),
		LossWindows:  len(c.losses),
		Evicted:      c.stats.evicted,
		Forgotten:    c.stats.forgotten,
		Stale:        c.stats.stale,
		Orphans:      c.stats.orphans,
		Ignored:      c.stats.ignored,
		Answers:      c.stats.answers,
		Verdicts:     c.stats.verdicts,
		Unknown:      c.stats.unknown,
	}
	for _, w := range c.losses {
		s.LossOpen = s.LossOpen || w.open
	}
	return s
}

// ObserveFlow records one conntrack event or dump entry. Its arrival time
// (ev.Received) serves as the current time; events without one, or of an
// unknown type, are counted in Stats.Ignored and otherwise ignored.
func (c *Correlator) ObserveFlow(ev events.FlowEvent) {
	if ev.Received.IsZero() {
		c.stats.ignored++
		return
	}
	k := keyOf(ev.Reply.Src, ev.Reply.Dst)
	now := ev.Received.UnixNano()
	c.trackAlias(k, &ev)

	switch ev.Type {
	case events.FlowSeen:
		c.seen(k, &ev, now)
	case events.FlowStarted:
		c.started(k, &ev, now)
	case events.FlowReplied:
		c.replied(k, &ev, now)
	case events.FlowExpired:
		c.destroyed(k, &ev, now)
	default:
		c.stats.ignored++
	}
}

// trackAlias keeps c.alias in step with a flow event.
func (c *Correlator) trackAlias(k flowKey, ev *events.FlowEvent) {
	a := keyOf(ev.Orig.Dst, ev.Orig.Src)
	if a == k {
		return // not NAT'd: the reply tuple is what drops carry
	}
	switch ev.Type {
	case events.FlowSeen, events.FlowStarted:
		if c.alias == nil {
			c.alias = make(map[flowKey]aliasTarget)
		}
		c.alias[a] = aliasTarget{key: k, id: ev.ID}
		if len(c.alias) > 2*c.nlive+1024 {
			c.sweepAliases()
		}
	case events.FlowExpired:
		if t, ok := c.alias[a]; ok && t.key == k {
			delete(c.alias, a)
		}
	}
}

// sweepAliases drops aliases whose flow is no longer live (forgotten
// without a DESTROY, or evicted).
func (c *Correlator) sweepAliases() {
	for a, t := range c.alias {
		if c.findLive(t.key, t.id) == nilIdx {
			delete(c.alias, a)
		}
	}
}

// resolveAlias returns the reply key a drop's key stands for.
func (c *Correlator) resolveAlias(k flowKey) flowKey {
	if t, ok := c.alias[k]; ok && c.findLive(t.key, t.id) != nilIdx {
		return t.key
	}
	return k
}

// timeout is the lifetime left after ev, as the kernel reported it. A zero
// Timeout is taken as absent (the kernel also reports zero in the last
// second of a flow's life, which this overestimates by the default).
func (c *Correlator) timeout(ev *events.FlowEvent, wasAnswered bool) int64 {
	switch {
	case ev.Timeout > 0:
		return int64(ev.Timeout)
	case ev.Type == events.FlowReplied && wasAnswered:
		// A second reply-side update is the ASSURED one: the kernel has
		// moved the flow to the stream timeout.
		return c.stream
	}
	return c.udpTimeout
}

// findLive returns the live record with key k and conntrack id, or nilIdx.
func (c *Correlator) findLive(k flowKey, id uint32) uint32 {
	for i := c.idx.head(c.idx.hash(k)); i != nilIdx; {
		r := c.idx.rec(i)
		if r.key == k && r.id == id && r.live() {
			return i
		}
		i = r.next
	}
	return nilIdx
}

// seen handles a dump entry. A flow we already track is refreshed (the
// dump is proof it is live, and clears any suspicion of a lost DESTROY);
// an unknown one is remembered as seen-only.
func (c *Correlator) seen(k flowKey, ev *events.FlowEvent, now int64) {
	if i := c.findLive(k, ev.ID); i != nilIdx {
		r := c.idx.rec(i)
		r.exp = now + c.timeout(ev, r.flags&flagAnswered != 0)
		r.flags &^= flagLossUncertain
		if ev.Replied {
			r.flags |= flagAnswered
		}
		if !ev.Start.IsZero() && r.flags&flagStartKernel == 0 {
			r.start = ev.Start.UnixNano()
			r.flags = r.flags&^flagStartCoarse | flagStartKernel
		}
		return
	}

	r := flowRec{
		key:   k,
		id:    ev.ID,
		flags: flagLive | flagSeenOnly | flagStartCoarse,
		start: now,
		exp:   now + c.timeout(ev, false),
	}
	if ev.Replied {
		r.flags |= flagAnswered
	}
	if !ev.Start.IsZero() {
		r.start = ev.Start.UnixNano()
		r.flags = r.flags&^flagStartCoarse | flagStartKernel
	}
	c.insertLive(r, now)
}

// started handles NEW. A repeated NEW for a live id only refreshes it.
func (c *Correlator) started(k flowKey, ev *events.FlowEvent, now int64) {
	if i := c.findLive(k, ev.ID); i != nilIdx {
		r := c.idx.rec(i)
		r.exp = now + c.timeout(ev, r.flags&flagAnswered != 0)
		return
	}

	r := flowRec{
		key:   k,
		id:    ev.ID,
		flags: flagLive,
		start: now,
		exp:   now + c.timeout(ev, false),
	}
	if !ev.Start.IsZero() {
		r.start = ev.Start.UnixNano()
		r.flags |= flagStartKernel
	}
	c.insertLive(r, now)
}

// replied handles the UPDATE that sets SEEN_REPLY (and, repeated, the
// ASSURED one). The first reply of a flow whose start is known yields an
// Answer. An unknown flow is remembered; its NEW was missed, but having
// events at all means its DESTROY will come.
func (c *Correlator) replied(k flowKey, ev *events.FlowEvent, now int64) {
	i := c.findLive(k, ev.ID)
	if i == nilIdx {
		c.stats.orphans++
		c.insertLive(flowRec{
			key:   k,
			id:    ev.ID,
			flags: flagLive | flagAnswered | flagStartCoarse,
			start: now,
			exp:   now + c.timeout(ev, false),
		}, now)
		return
	}

	r := c.idx.rec(i)
	wasAnswered := r.flags&flagAnswered != 0
	r.exp = now + c.timeout(ev, wasAnswered)
	r.flags = r.flags&^flagSeenOnly | flagAnswered
	if wasAnswered || r.flags&flagStartCoarse != 0 {
		return
	}
	c.stats.answers++
	if c.cfg.OnAnswer != nil {
		c.cfg.OnAnswer(Answer{
			FlowID: r.id,
			Reply:  ev.Reply,
			At:     ev.Received,
			Delay:  time.Duration(max(0, now-r.start)),
			Exact:  r.flags&flagStartKernel != 0,
		})
	}
}

// destroyed handles DESTROY: the flow becomes expired, with the kernel's
// stop timestamp as expiry or, lacking it, the estimate capped by the
// event's arrival. DESTROY also carries the start timestamp and the
// SEEN_REPLY bit, which repair a missed NEW or UPDATE.
func (c *Correlator) destroyed(k flowKey, ev *events.FlowEvent, now int64) {
	i := c.findLive(k, ev.ID)
	if i == nilIdx {
		c.destroyedUnknown(k, ev, now)
		return
	}

	r := c.idx.rec(i)
	r.flags = r.flags&^(flagLive|flagSeenOnly|flagLossUncertain) | flagExpired
	r.applyDestroy(ev, now)
	c.nlive--
	c.nexp++
	c.expQ.push(i)
}

// applyDestroy records what a DESTROY tells of a flow: the kernel's start
// timestamp, whether it was answered, and its expiry. Without a stop
// timestamp all that is known is that the flow had expired by now, the
// arrival of the event, or by the estimate r.exp if that is earlier.
func (r *flowRec) applyDestroy(ev *events.FlowEvent, now int64) {
	if !ev.Start.IsZero() {
		r.start = ev.Start.UnixNano()
		r.flags = r.flags&^flagStartCoarse | flagStartKernel
	}
	if ev.Replied {
		r.flags |= flagAnswered
	}
	if !ev.Stop.IsZero() {
		r.exp = ev.Stop.UnixNano()
	} else {
		r.exp = min(r.exp, now)
		r.flags |= flagEstimated
	}
}

// destroyedUnknown remembers a DESTROY for a flow never seen live, unless
// it repeats one already recorded.
func (c *Correlator) destroyedUnknown(k flowKey, ev *events.FlowEvent, now int64) {
	r := flowRec{
		key:   k,
		id:    ev.ID,
		flags: flagExpired | flagStartCoarse,
		start: now,
		exp:   now,
	}
	r.applyDestroy(ev, now)

	for j := c.idx.head(c.idx.hash(k)); j != nilIdx; {
		o := c.idx.rec(j)
		if o.key == k && o.id == ev.ID && o.expired() && !ev.Stop.IsZero() &&
			o.exp == r.exp {
			return // a duplicate DESTROY
		}
		j = o.next
	}

	c.stats.orphans++
	c.makeRoom(now)
	c.expQ.push(c.idx.insert(r))
	c.nexp++
}

func (c *Correlator) insertLive(r flowRec, now int64) {
	c.makeRoom(now)
	c.liveQ.push(c.idx.insert(r))
	c.nlive++
}

// makeRoom frees one slot when the index is full: first whatever the
// horizon lets go, then the oldest expired flow, then the oldest live one.
func (c *Correlator) makeRoom(now int64) {
	if c.idx.n < c.cfg.MaxFlows {
		return
	}
	c.forget(now)
	if c.idx.n < c.cfg.MaxFlows {
		return
	}

	c.stats.evicted++
	if c.expQ.len() > 0 {
		i := c.expQ.pop()
		c.evictMark = max(c.evictMark, c.idx.rec(i).exp)
		c.idx.remove(i)
		c.nexp--
		return
	}
	for c.liveQ.len() > 0 {
		i := c.liveQ.pop()
		r := c.idx.rec(i)
		if !r.live() {
			continue
		}
		// A live flow may expire any time from now on; drops up to a
		// horizon after that might have been its late answers.
		c.evictMark = max(c.evictMark, r.exp, now)
		c.idx.remove(i)
		c.nlive--
		return
	}
}

// forget drops expired flows past the retention, and live ones whose
// estimated expiry is that old (their DESTROY is not coming).
func (c *Correlator) forget(now int64) {
	cutoff := now - c.retention
	for c.expQ.len() > 0 {
		i := *c.expQ.peek()
		r := c.idx.rec(i)
		// DESTROYs come up to a GC interval after the expiry, so expQ is
		// only roughly ordered by exp; a record queued behind a later one
		// waits for it, which costs memory, never correctness, because
		// matching enforces the horizon itself.
		if r.exp >= cutoff {
			break
		}
		c.expQ.pop()
		c.forgotMark = max(c.forgotMark, r.exp)
		c.idx.remove(i)
		c.nexp--
		c.stats.forgotten++
	}
	for c.liveQ.len() > 0 {
		i := *c.liveQ.peek()
		r := c.idx.rec(i)
		if !r.live() {
			c.liveQ.pop() // expired since, or slot freed
			continue
		}
		if r.exp >= cutoff {
			break
		}
		c.liveQ.pop()
		c.forgotMark = max(c.forgotMark, r.exp)
		c.idx.remove(i)
		c.nlive--
		c.stats.stale++
	}
}

// AddDrop judges a dropped packet, at once when a remembered expiry
// decides it, otherwise after the grace window. Drops pending from before
// are decided first. A zero d.Time is taken to be now.
func (c *Correlator) AddDrop(d events.Drop, now time.Time) {
	n := now.UnixNano()
	c.advance(n, now)

	p := pendingDrop{
		drop:     d,
		key:      c.resolveAlias(keyOf(d.Src, d.Dst)),
		at:       n,
		deadline: n + c.grace,
	}
	if !d.Time.IsZero() {
		p.at = d.Time.UnixNano()
	}
	if v, ok := c.judge(&p, false, now); ok {
		c.emit(v)
		return
	}
	c.pending.push(p)
}

// Advance moves the clock to now: it decides drops whose grace window has
// ended, forgets flows past the horizon and loss windows no drop can fall
// into any more.
func (c *Correlator) Advance(now time.Time) { c.advance(now.UnixNano(), now) }

func (c *Correlator) advance(n int64, now time.Time) {
	// Decide before forgetting, so a drop never loses its flow to the
	// same tick that ends its wait.
	for c.pending.len() > 0 && c.pending.peek().deadline <= n {
		p := c.pending.pop()
		v, _ := c.judge(&p, true, now)
		c.emit(v)
	}
	c.forget(n)
	c.pruneLosses(n)
}

// Flush decides every pending drop now, grace window or not; use it when
// the input ends (a replayed log) or at shutdown.
func (c *Correlator) Flush(now time.Time) {
	for c.pending.len() > 0 {
		p := c.pending.pop()
		v, _ := c.judge(&p, true, now)
		c.emit(v)
	}
}

func (c *Correlator) emit(v Verdict) {
	c.stats.verdicts[v.Class]++
	if v.Class == Unknown {
		c.stats.unknown[v.Reason]++
	}
	if c.cfg.Emit != nil {
		c.cfg.Emit(v)
	}
}

// match returns the flow a drop at t belongs to: among records with its
// key, the one that started last at or before t (starts known only from an
// arrival time get Grace of slack). An expired one more than Horizon
// before t no longer counts.
func (c *Correlator) match(k flowKey, t int64) uint32 {
	best := nilIdx
	var bestStart int64
	for i := c.idx.head(c.idx.hash(k)); i != nilIdx; {
		r := c.idx.rec(i)
		slack := c.grace
		if r.flags&flagStartKernel != 0 {
			slack = 0
		}
		if r.key == k && r.start-slack <= t &&
			(best == nilIdx || r.start > bestStart) {
			best, bestStart = i, r.start
		}
		i = r.next
	}
	if best != nilIdx {
		if r := c.idx.rec(best); r.expired() && t-r.exp > c.horizon {
			return nilIdx
		}
	}
	return best
}

// judge applies the verdict rules to p. Before the deadline (final false)
// it decides only what no later event can change and reports false
// otherwise.
func (c *Correlator) judge(p *pendingDrop, final bool, now time.Time) (Verdict, bool) {
	v := Verdict{Drop: p.drop, Decided: now}
	t := p.at

	if i := c.match(p.key, t); i != nilIdx {
		r := c.idx.rec(i)
		v.FlowID = r.id
		v.Answered = r.flags&flagAnswered != 0
		v.Age = time.Duration(max(0, t-r.start))
		if r.expired() {
			c.judgeExpired(&v, r, t)
			return v, true
		}
		if !final {
			return v, false
		}
		switch {
		case r.flags&flagLossUncertain != 0 || c.openLossCovers(t):
			v.Class, v.Reason = Unknown, ReasonEventLoss
		case r.flags&flagSeenOnly != 0 && t > r.exp:
			v.Class, v.Reason, v.Estimated = Unknown, ReasonPredates, true
		default:
			v.Class = Tracked
		}
		return v, true
	}

	if !final {
		return v, false
	}
	v.Class = Unknown
	switch {
	case t < c.start+c.horizon:
		v.Reason = ReasonWarmUp
	case c.lossCovers(t):
		v.Reason = ReasonEventLoss
	case c.evictMark >= t-c.horizon:
		v.Reason = ReasonCapacity
	case c.forgotMark >= t-c.horizon:
		v.Reason = ReasonDropLag
	default:
		v.Class = Unsolicited
	}
	return v, true
}

// judgeExpired decides a drop at t matching the expired record r.
func (c *Correlator) judgeExpired(v *Verdict, r *flowRec, t int64) {
	late := t - r.exp
	if r.flags&flagEstimated == 0 {
		if late >= 0 {
			v.Class, v.Lateness = Late, time.Duration(late)
		} else {
			v.Class = Tracked // it expired after the packet came
		}
		return
	}

	v.Estimated = true
	switch {
	case late > c.margin:
		v.Class, v.Lateness = Late, time.Duration(late)
	case late < -c.margin:
		v.Class = Tracked
	default:
		v.Class, v.Reason = Unknown, ReasonNoTimestamp
	}
}
