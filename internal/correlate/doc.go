// Package correlate decides, for each packet a firewall dropped, whether it
// was a late answer to a UDP flow whose conntrack entry had expired, an
// unsolicited packet, a packet of a flow that was still tracked, or cannot
// be told.
//
// A Correlator remembers live and recently expired flows, keyed by their
// reply tuple, and matches each drop's (source, destination) against it.
// It imports nothing but the plain types of package events, starts no
// goroutines and never reads a clock: every method is given the current
// time (events carry their arrival time), so tests drive it with a fake
// clock. Calls must be serialised by the caller.
//
// # Flows
//
// NEW (FlowStarted) or a dump entry (FlowSeen) makes a flow live; the first
// FlowReplied marks it answered and reports the answer delay through
// Config.OnAnswer; DESTROY (FlowExpired) makes it expired. The expiry is
// the kernel's stop timestamp when there is one. Without it the expiry is
// estimated as the last event's arrival plus the timeout that event
// reported, capped by the DESTROY's own arrival (an entry cannot be
// destroyed before it expires), and the flow is marked Estimated. A flow's
// start is the kernel's start timestamp when known, else the arrival of its
// NEW; a flow first met in a dump, an UPDATE or a DESTROY without a start
// timestamp only has an upper bound for its start.
//
// Several flows can share a reply tuple over time (the resolver reuses a
// source port). A drop at time T is matched to the flow with that reply
// tuple that started last before T: that is the one the kernel would have
// looked up. Starts known only from an arrival time are allowed Grace of
// slack, since the packet that created the flow precedes the event.
//
// # Verdicts
//
// For a drop at T (the kernel's time of the packet):
//
//  1. The matched flow expired at E <= T with E within Horizon of T:
//     Late, Lateness = T-E, Age = T-start, Answered from the flow. Decided
//     at once: the DESTROY is already known and nothing can change it.
//     If it expired after T (E > T), the flow was live when the packet
//     came: Tracked. With an estimated E within EstimateMargin of T the
//     verdict is Unknown with ReasonNoTimestamp.
//  2. The matched flow is live: the drop waits Grace for a DESTROY. A
//     late packet that meets its expired, not yet collected entry evicts it
//     on the spot, and the DESTROY then arrives within about a millisecond
//     of the drop, in either order. If it arrives (with E <= T), rule 1
//     gives Late; if not, the entry really was live: Tracked.
//  3. Nothing matches: the drop waits Grace too, then is Unknown with
//     ReasonWarmUp if T < start+Horizon (the flow may have expired before
//     ctwatch watched), ReasonEventLoss if T falls in a loss window (see
//     below), ReasonCapacity if flows were evicted by MaxFlows whose expiry
//     lay within Horizon of T, ReasonDropLag if flows forgotten by the
//     horizon could still explain T (the drop came in very late); otherwise
//     Unsolicited. Evicted and forgotten flows are not tracked per tuple:
//     only the latest such expiry is kept, so these two reasons cover every
//     unmatched drop in the span, whatever its tuple.
//  4. The matched flow is known only from a dump (FlowSeen, no NEW and no
//     later event): flows created while nobody listened never emit events,
//     so its DESTROY may never come. At the end of the grace: T past its
//     estimated expiry gives Unknown with ReasonPredates, else Tracked.
//
// A pending drop is decided by the first Advance or AddDrop whose time is
// at or past its deadline (arrival + Grace), using every event observed by
// then; call Advance often (every few tens of milliseconds) to keep the
// delay close to Grace.
//
// # Event loss
//
// A lost event can only mislead in two ways, and the rules follow them:
//
//   - A lost DESTROY leaves a flow live in the index although the kernel
//     collected it. A later late packet then matches a live flow, no
//     DESTROY comes (the entry is gone), and it would be called Tracked.
//     Such a DESTROY was emitted inside the window [Ls, Le], so the flow's
//     expiry is at most Le. When a resynced LossEvent closes the window,
//     every live flow whose estimated expiry is at most Le and that the
//     re-dump did not push beyond Le is marked uncertain: drops matching it
//     are Unknown with ReasonEventLoss until its DESTROY does arrive or it
//     is forgotten. While a window is open every drop matching a live flow
//     at T >= Ls is Unknown the same way.
//   - A lost NEW whose DESTROY is lost too leaves no trace at all. The
//     flow started after Ls and its DESTROY was emitted by Le, so it can
//     explain drops at T in [Ls, Le+Horizon] (late answers count for up to
//     Horizon after the expiry). An unmatched drop in that range (Grace of
//     slack before Ls for clock differences) is Unknown with
//     ReasonEventLoss. A lost NEW alone is harmless: the re-dump lists the
//     flow if it is live, or its DESTROY brings reply tuple, timestamps
//     and the replied bit; a lost UPDATE alone is repaired by the replied
//     bit of the dump or the DESTROY.
//
// Drops decided before the LossEvent is observed are not revised, so the
// conntrack follower should report a loss as soon as it sees ENOBUFS (End
// zero or Resynced false, which opens the window) and again when the
// re-dump completes.
//
// # Memory
//
// A remembered flow costs one 64-byte record in a chunked slab, one entry in
// a map from a seeded hash of the reply tuple to the newest record of that
// hash (records with equal hashes are chained), and a 4-byte entry in one or
// two FIFO queues; BenchmarkMemoryPerFlow measures the total. Expired flows
// are forgotten Horizon+Grace+MaxDropLag after their expiry, live flows
// whose DESTROY never came that long after their estimated expiry. When
// MaxFlows is reached the oldest expired flow (or, failing that, the
// oldest live one) is evicted and counted.
package correlate
