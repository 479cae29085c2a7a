package correlate

import "github.com/ctwatch/ctwatch/internal/events"

// lossWindow is a span of possibly lost conntrack events, [start, end], or
// [start, ∞) while open (no resync yet). Times are Unix nanoseconds.
type lossWindow struct {
	start, end int64
	open       bool
}

// maxLossWindows bounds the list; beyond it the two oldest windows merge
// into one covering both, which only widens what is called Unknown.
const maxLossWindows = 64

// ObserveLoss records a window of lost conntrack events. A LossEvent that
// is not Resynced, or has no End, opens a window that stays open until a
// resynced one arrives; that one closes every open window at its End.
// Closing a window marks each live flow whose estimated expiry is not
// after End as possibly having lost its DESTROY (the flows the re-dump
// confirmed have had their expiry pushed past End by their FlowSeen
// events, which precede the LossEvent). A zero Start is taken as the start
// of watching.
//
// Start must not be later than the first lost event was generated: drops
// before it are taken to be fully explained by the events observed. A
// follower that reads behind the kernel should subtract its lag.
//
// Verdicts already emitted are not revised, so report a loss as soon as it
// is detected and again when the re-dump completes.
func (c *Correlator) ObserveLoss(ev events.LossEvent) {
	start := c.start
	if !ev.Start.IsZero() {
		start = ev.Start.UnixNano()
	}
	if !ev.Resynced || ev.End.IsZero() {
		c.addLoss(lossWindow{start: start, open: true})
		return
	}

	end := ev.End.UnixNano()
	for i := range c.losses {
		if c.losses[i].open {
			c.losses[i].end, c.losses[i].open = max(end, c.losses[i].start), false
		}
	}
	c.addLoss(lossWindow{start: min(start, end), end: end})
	c.markUncertain(end)
}

func (c *Correlator) addLoss(w lossWindow) {
	if n := len(c.losses); n > 0 {
		// Fold a window into the previous one when they overlap, which is
		// the common case of an open window and the resync closing it.
		last := &c.losses[n-1]
		if !last.open && !w.open && w.start <= last.end && w.start >= last.start {
			last.end = max(last.end, w.end)
			return
		}
	}
	if len(c.losses) == maxLossWindows {
		a, b := c.losses[0], c.losses[1]
		c.losses[1] = lossWindow{
			start: min(a.start, b.start),
			end:   max(a.end, b.end),
			open:  a.open || b.open,
		}
		c.losses = append(c.losses[:0], c.losses[1:]...)
	}
	c.losses = append(c.losses, w)
}

// markUncertain flags live flows that could have been collected, and their
// DESTROY lost, by end: those whose estimated expiry is not after it. The
// scan is linear, but so is the re-dump that precedes it.
func (c *Correlator) markUncertain(end int64) {
	for ci, chunk := range c.idx.chunks {
		n := min(chunkSize, int(c.idx.hwm)-ci*chunkSize)
		for j := range chunk[:n] {
			if r := &chunk[j]; r.live() && r.exp <= end {
				r.flags |= flagLossUncertain
			}
		}
	}
}

// lossCovers reports whether a flow that left no trace, because its events
// fell into a loss window, could explain a drop at t: it started after the
// window opened (Grace of slack for clock differences) and its DESTROY was
// emitted by the window's end, so its late answers end Horizon after that.
func (c *Correlator) lossCovers(t int64) bool {
	for _, w := range c.losses {
		if t >= w.start-c.grace && (w.open || t <= w.end+c.horizon) {
			return true
		}
	}
	return false
}

// openLossCovers reports whether t lies in a window still open, where any
// live flow may have lost its DESTROY.
func (c *Correlator) openLossCovers(t int64) bool {
	for _, w := range c.losses {
		if w.open && t >= w.start-c.grace {
			return true
		}
	}
	return false
}

// pruneLosses drops closed windows that no drop judged from now on can
// fall into, allowing for drops that lag by up to MaxDropLag.
func (c *Correlator) pruneLosses(now int64) {
	keep := c.losses[:0]
	for _, w := range c.losses {
		if w.open || w.end+c.retention >= now {
			keep = append(keep, w)
		}
	}
	clear(c.losses[len(keep):])
	c.losses = keep
}
