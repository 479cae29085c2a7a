// Package tui is ctwatch's live terminal view: verdict counters and rates,
// the lateness of late answers with a timeout recommendation, the servers
// behind the drops and the latest verdicts.
//
// A Collector, one of the pipeline's observers, aggregates events under a
// lock. The view never sees single events: a few times a second it takes
// a Snapshot, computes rates from the snapshots before it, and renders.
// The Model is the view's whole state and Render a pure function of it,
// so tests render fixed snapshots at fixed sizes.
package tui

import (
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Refresh bounds: the view redraws one to four times a second.
const (
	DefaultRefresh = 500 * time.Millisecond
	MinRefresh     = 250 * time.Millisecond
	MaxRefresh     = time.Second
)

// RateWindow is the span over which current rates are averaged.
const RateWindow = 5 * time.Second

// Config describes what the view watches and how it draws.
type Config struct {
	// Namespace describes the watched network namespace; "" means the
	// current one.
	Namespace string
	// Iface is the --iface filter; "" means every interface.
	Iface string
	// Port is the watched UDP port, shown when it is not 53.
	Port uint16
	// Started is when watching started, for the uptime; WarmUpEnd is when
	// unmatched drops start to count as unsolicited (zero: no warm-up).
	Started   time.Time
	WarmUpEnd time.Time
	// Refresh is the time between redraws, clamped to [MinRefresh,
	// MaxRefresh]; zero means DefaultRefresh.
	Refresh time.Duration
	// NoColor renders plain text: no colours and no other attributes.
	// Set it for NO_COLOR and for stable golden files.
	NoColor bool
	// Location is the time zone of the times shown; nil means local.
	Location *time.Location
	// Status reads the sources' health at each tick; nil shows none.
	Status func() Status
	// UDPTimeouts reads the UDP conntrack timeouts of the watched
	// namespace at each tick; nil shows them as unknown.
	UDPTimeouts func() (events.UDPTimeouts, error)
	// Done, when closed, says that no more data will come (the demo's
	// traffic has ended and its pipeline has stopped): the view takes a
	// last snapshot, stops refreshing and shows DoneNote until the user
	// quits. Nil means the view refreshes until it ends.
	Done     <-chan struct{}
	DoneNote string
}

func (c Config) refresh() time.Duration {
	if c.Refresh == 0 {
		return DefaultRefresh
	}
	return min(max(c.Refresh, MinRefresh), MaxRefresh)
}

// Source is what the view reads: a Collector, or a fake in tests.
type Source interface {
	Snapshot() Snapshot
	Reset()
}

// Model is the view's state. It changes only in Update, from snapshots,
// keys and window sizes.
type Model struct {
	cfg Config
	src Source
	st  styles

	width, height int
	paused        bool
	help          bool
	// finished is set once cfg.Done has closed: the counters are final.
	finished bool
	// scroll is how many of the newest recent verdicts are scrolled past.
	scroll int

	// snap is the snapshot shown, rates the rates computed with it.
	snap  Snapshot
	rates Rates
	// history holds the recent snapshots' counters for the rates, oldest
	// first, all of one generation.
	history []sample
}

// Rates are per-second rates over about RateWindow; Known is false until
// two snapshots of one generation have been seen.
type Rates struct {
	Known      bool
	Classes    [numClasses]float64
	FlowEvents float64
}

type sample struct {
	taken      time.Time
	generation uint64
	classes    [numClasses]uint64
	flowEvents uint64
}

// NewModel returns the view of src, before its first snapshot.
func NewModel(cfg Config, src Source) Model {
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	return Model{cfg: cfg, src: src, st: newStyles(cfg.NoColor), width: 80, height: 24}
}

// Messages the Model handles besides Bubble Tea's own.
type (
	tickMsg     struct{}
	doneMsg     struct{}
	snapshotMsg struct {
		snap Snapshot
		// force shows the snapshot even while paused (after a clear).
		force bool
	}
)

// Init starts the ticks with a first snapshot, and waits for cfg.Done.
func (m Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.takeSnapshot(false), m.tick()}
	if done := m.cfg.Done; done != nil {
		cmds = append(cmds, func() tea.Msg {
			<-done
			return doneMsg{}
		})
	}
	return tea.Batch(cmds...)
}

func (m Model) tick() tea.Cmd {
	return tea.Tick(m.cfg.refresh(), func(time.Time) tea.Msg { return tickMsg{} })
}

// takeSnapshot reads the source and the status outside the update loop.
func (m Model) takeSnapshot(force bool) tea.Cmd {
	src, status, timeouts := m.src, m.cfg.Status, m.cfg.UDPTimeouts
	return func() tea.Msg {
		s := src.Snapshot()
		if status != nil {
			s.Status = status()
		}
		if timeouts != nil {
			s.Timeouts, s.TimeoutsErr = timeouts()
		}
		return snapshotMsg{snap: s, force: force}
	}
}

// clear empties the source and shows the result at once.
func (m Model) clear() tea.Cmd {
	src, take := m.src, m.takeSnapshot(true)
	return func() tea.Msg {
		src.Reset()
		return take()
	}
}

// Update handles a message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg.String())
	case tickMsg:
		if m.finished {
			return m, nil // the last snapshot is shown; no more ticks
		}
		return m, tea.Batch(m.takeSnapshot(false), m.tick())
	case doneMsg:
		// The final counters, shown even while paused.
		m.finished = true
		return m, m.takeSnapshot(true)
	case snapshotMsg:
		m.apply(msg.snap, msg.force)
		return m, nil
	}
	return m, nil
}

func (m Model) key(k string) (tea.Model, tea.Cmd) {
	switch k {
	case "q", "ctrl+c":
		return m, tea.Quit
	case "p", "space":
		m.paused = !m.paused
	case "c":
		m.history = nil
		return m, m.clear()
	case "?", "h":
		m.help = !m.help
	case "esc":
		m.help = false
	case "up", "k":
		m.scroll = max(m.scroll-1, 0)
	case "down", "j":
		m.scroll++
	case "pgup":
		m.scroll = max(m.scroll-10, 0)
	case "pgdown":
		m.scroll += 10
	case "home", "g":
		m.scroll = 0
	case "ctrl+l":
		return m, tea.ClearScreen
	}
	m.scroll = min(m.scroll, max(len(m.snap.Recent)-1, 0))
	return m, nil
}

// apply records a snapshot for the rates and, unless paused, shows it.
// Snapshots are taken concurrently and may arrive out of order: an older
// one than the last seen is dropped.
func (m *Model) apply(s Snapshot, force bool) {
	if n := len(m.history); n > 0 {
		last := m.history[n-1]
		if s.Taken.Before(last.taken) {
			return
		}
		if s.Generation != last.generation {
			m.history = nil
		}
	}
	m.history = append(m.history, sample{
		taken: s.Taken, generation: s.Generation,
		classes: s.Classes, flowEvents: s.FlowEvents,
	})
	// Keep one sample at least RateWindow old as the base, no older.
	cut := s.Taken.Add(-RateWindow)
	for len(m.history) > 2 && !m.history[1].taken.After(cut) {
		m.history = m.history[1:]
	}

	if m.paused && !force {
		return
	}
	m.snap, m.rates = s, m.computeRates()
	m.scroll = min(m.scroll, max(len(s.Recent)-1, 0))
}

func (m *Model) computeRates() Rates {
	if len(m.history) < 2 {
		return Rates{}
	}
	base, cur := m.history[0], m.history[len(m.history)-1]
	dt := cur.taken.Sub(base.taken).Seconds()
	if dt <= 0 {
		return Rates{}
	}
	r := Rates{Known: true}
	for i := range r.Classes {
		r.Classes[i] = delta(cur.classes[i], base.classes[i]) / dt
	}
	r.FlowEvents = delta(cur.flowEvents, base.flowEvents) / dt
	return r
}

func delta(cur, base uint64) float64 {
	if cur < base {
		return 0
	}
	return float64(cur - base)
}

// View renders the model in the alternate screen.
func (m Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "ctwatch"
	return v
}

// Finished reports whether cfg.Done has closed.
func (m Model) Finished() bool { return m.finished }

// Paused reports whether the display is frozen.
func (m Model) Paused() bool { return m.paused }

// Rates returns the rates shown.
func (m Model) Rates() Rates { return m.rates }

// Shown returns the snapshot shown.
func (m Model) Shown() Snapshot { return m.snap }
