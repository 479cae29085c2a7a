package tui

import (
	"math"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/ctwatch/ctwatch/internal/correlate"
)

// countingSource serves snapshots built from counters the test sets, and
// counts resets as a Collector would: a new generation from zero.
type countingSource struct {
	snap   Snapshot
	resets int
}

func (c *countingSource) Snapshot() Snapshot { return c.snap }

func (c *countingSource) Reset() {
	c.resets++
	c.snap = Snapshot{Taken: c.snap.Taken, Since: c.snap.Taken, Generation: c.snap.Generation + 1}
}

// step sends msg to m and returns the new model and the command.
func step(t *testing.T, m Model, msg tea.Msg) (Model, tea.Cmd) {
	t.Helper()
	next, cmd := m.Update(msg)
	return next.(Model), cmd
}

// snapAt is a snapshot taken at t0+at with late and flow counters set.
func snapAt(at time.Duration, late, flows uint64) Snapshot {
	s := Snapshot{Taken: t0.Add(at), Since: t0, FlowEvents: flows}
	s.Classes[correlate.Late] = late
	return s
}

func withRecent(s Snapshot, n int) Snapshot {
	for i := range n {
		s.Recent = append(s.Recent, Recent{Time: s.Taken.Add(-time.Duration(i) * time.Second),
			Class: correlate.Unsolicited})
	}
	return s
}

func newTestModel(src Source) Model {
	next, _ := NewModel(Config{NoColor: true, Location: time.UTC, Started: t0}, src).
		Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	return next.(Model)
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keys   []string
		quit   bool
		paused bool
		help   bool
		scroll int
	}{
		{name: "q quits", keys: []string{"q"}, quit: true},
		{name: "ctrl+c quits", keys: []string{"ctrl+c"}, quit: true},
		{name: "p pauses", keys: []string{"p"}, paused: true},
		{name: "p again resumes", keys: []string{"p", "p"}},
		{name: "? shows help", keys: []string{"?"}, help: true},
		{name: "? again closes help", keys: []string{"?", "?"}},
		{name: "esc closes help", keys: []string{"?", "esc"}},
		{name: "down scrolls", keys: []string{"down", "down", "j"}, scroll: 3},
		{name: "up scrolls back", keys: []string{"down", "down", "up"}, scroll: 1},
		{name: "up stops at the top", keys: []string{"up", "k"}},
		{name: "pgdown", keys: []string{"pgdown"}, scroll: 10},
		{name: "scroll stops at the last verdict", keys: []string{"pgdown", "pgdown", "pgdown", "down"},
			scroll: 24},
		{name: "home", keys: []string{"pgdown", "home"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModel(&countingSource{})
			m, _ = step(t, m, snapshotMsg{snap: withRecent(snapAt(time.Second, 0, 0), 25)})
			var cmd tea.Cmd
			for _, k := range tc.keys {
				m, cmd = step(t, m, keyPress(k))
			}
			quit := false
			if cmd != nil {
				_, quit = cmd().(tea.QuitMsg)
			}
			if quit != tc.quit || m.Paused() != tc.paused || m.help != tc.help || m.scroll != tc.scroll {
				t.Errorf("quit %v paused %v help %v scroll %d; want %v %v %v %d",
					quit, m.Paused(), m.help, m.scroll, tc.quit, tc.paused, tc.help, tc.scroll)
			}
		})
	}
}

// TestScrollFollowsShrinkingList: a snapshot with fewer verdicts (after
// a clear) pulls the scroll offset back into the list.
func TestScrollFollowsShrinkingList(t *testing.T) {
	m := newTestModel(&countingSource{})
	m, _ = step(t, m, snapshotMsg{snap: withRecent(snapAt(time.Second, 0, 0), 25)})
	m, _ = step(t, m, keyPress("pgdown"))
	m, _ = step(t, m, snapshotMsg{snap: withRecent(snapAt(2*time.Second, 0, 0), 4)})
	if m.scroll != 3 {
		t.Errorf("scroll = %d after the list shrank to 4, want 3", m.scroll)
	}
	if got := m.Render(); !strings.Contains(got, "recent verdicts (4-4 of 4") {
		t.Errorf("view does not show the last verdict:\n%s", got)
	}
}

func TestResize(t *testing.T) {
	m := newTestModel(&countingSource{})
	m, _ = step(t, m, snapshotMsg{snap: withRecent(snapAt(time.Second, 3, 100), 30)})
	for _, sz := range []struct{ w, h int }{{120, 40}, {80, 24}, {30, 12}, {200, 60}, {20, 5}, {1, 1}} {
		m, _ = step(t, m, tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
		checkFits(t, m.Render(), sz.w, sz.h)
	}
	m, _ = step(t, m, tea.WindowSizeMsg{Width: 0, Height: 0})
	if got := m.Render(); got != "" {
		t.Errorf("view at 0x0 = %q, want nothing", got)
	}
}

func TestRates(t *testing.T) {
	m := newTestModel(&countingSource{})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(0, 0, 0)})
	if m.Rates().Known {
		t.Fatalf("rates known from one snapshot: %+v", m.Rates())
	}

	// 10 late answers and 500 events a second for 5 s, then 20 and 1,000.
	var late, flows uint64
	for i := 1; i <= 10; i++ {
		if i <= 5 {
			late, flows = late+10, flows+500
		} else {
			late, flows = late+20, flows+1000
		}
		m, _ = step(t, m, snapshotMsg{snap: snapAt(time.Duration(i)*time.Second, late, flows)})
		if i == 1 {
			checkRates(t, m.Rates(), 10, 500)
		}
	}
	// The rates cover the last RateWindow only.
	checkRates(t, m.Rates(), 20, 1000)
	if n := len(m.history); n != 6 {
		t.Errorf("history holds %d samples, want 6 (5 s at 1 s)", n)
	}
}

func checkRates(t *testing.T, r Rates, late, flows float64) {
	t.Helper()
	if !r.Known || math.Abs(r.Classes[correlate.Late]-late) > 1e-9 || math.Abs(r.FlowEvents-flows) > 1e-9 {
		t.Errorf("rates %+v, want late %g/s and flows %g/s", r, late, flows)
	}
}

func TestPaused(t *testing.T) {
	m := newTestModel(&countingSource{})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(0, 0, 0)})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(time.Second, 10, 0)})
	m, _ = step(t, m, keyPress("p"))
	frozen := m.Render()
	m, _ = step(t, m, snapshotMsg{snap: snapAt(2*time.Second, 50, 0)})
	if got := m.Shown().Classes[correlate.Late]; got != 10 {
		t.Errorf("paused view shows %d late, want the 10 shown at the pause", got)
	}
	if !strings.Contains(frozen, "PAUSED") || m.Render() != frozen {
		t.Errorf("paused view changed or lacks PAUSED:\n%s", m.Render())
	}

	// Counting went on: after resuming, the rate includes the paused time.
	m, _ = step(t, m, keyPress("p"))
	m, _ = step(t, m, snapshotMsg{snap: snapAt(3*time.Second, 60, 0)})
	checkRates(t, m.Rates(), 20, 0)
	if got := m.Shown().Classes[correlate.Late]; got != 60 {
		t.Errorf("resumed view shows %d late, want 60", got)
	}
}

func TestOutOfOrderSnapshots(t *testing.T) {
	m := newTestModel(&countingSource{})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(0, 0, 0)})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(2*time.Second, 20, 0)})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(time.Second, 5, 0)}) // late arrival
	if got := m.Shown().Taken; !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("shown snapshot taken at %v, want the newer one", got.Sub(t0))
	}
	checkRates(t, m.Rates(), 10, 0)
	if n := len(m.history); n != 2 {
		t.Errorf("history holds %d samples, want 2", n)
	}
}

func TestClear(t *testing.T) {
	src := &countingSource{snap: snapAt(0, 0, 0)}
	m := newTestModel(src)
	m, _ = step(t, m, snapshotMsg{snap: snapAt(0, 0, 0)})
	src.snap = snapAt(time.Second, 10, 100)
	m, _ = step(t, m, snapshotMsg{snap: src.snap})
	m, _ = step(t, m, keyPress("p")) // a clear shows its result even paused
	checkRates(t, m.Rates(), 10, 100)

	src.snap.Taken = t0.Add(1500 * time.Millisecond)
	m, cmd := step(t, m, keyPress("c"))
	if cmd == nil {
		t.Fatal("c gave no command")
	}
	m, _ = step(t, m, cmd())
	if src.resets != 1 {
		t.Errorf("source reset %d times, want 1", src.resets)
	}
	if s := m.Shown(); s.Classes[correlate.Late] != 0 || s.Generation != 1 {
		t.Errorf("after clear the view shows %d late of generation %d, want 0 of 1",
			s.Classes[correlate.Late], s.Generation)
	}
	if m.Rates().Known {
		t.Errorf("rates known right after a clear: %+v", m.Rates())
	}

	// Rates start again from the clear, never across it.
	m, _ = step(t, m, keyPress("p"))
	next := snapAt(2500*time.Millisecond, 3, 0)
	next.Generation = 1
	m, _ = step(t, m, snapshotMsg{snap: next})
	checkRates(t, m.Rates(), 3, 0)
}

// TestGenerationChange: a snapshot of a new generation (a clear made
// elsewhere) restarts the rates instead of computing them across it.
func TestGenerationChange(t *testing.T) {
	m := newTestModel(&countingSource{})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(0, 0, 0)})
	m, _ = step(t, m, snapshotMsg{snap: snapAt(time.Second, 100, 0)})
	s := snapAt(2*time.Second, 1, 0)
	s.Generation = 1
	m, _ = step(t, m, snapshotMsg{snap: s})
	if m.Rates().Known {
		t.Errorf("rates computed across a clear: %+v", m.Rates())
	}
}

func TestDone(t *testing.T) {
	src := &countingSource{snap: snapAt(time.Second, 7, 0)}
	src.snap.Status = Status{Sources: []SourceHealth{{"conntrack", false}}}
	done := make(chan struct{})
	m := NewModel(Config{NoColor: true, Location: time.UTC, Started: t0, Done: done,
		DoneNote: "Demo finished. Press q for the report."}, src)
	m, _ = step(t, m, tea.WindowSizeMsg{Width: 80, Height: 24})
	m, _ = step(t, m, keyPress("p"))

	m, cmd := step(t, m, doneMsg{})
	if !m.Finished() || cmd == nil {
		t.Fatalf("finished %v, command %v after done", m.Finished(), cmd)
	}
	m, _ = step(t, m, cmd())
	if got := m.Shown().Classes[correlate.Late]; got != 7 {
		t.Errorf("final snapshot shows %d late, want 7 (even paused)", got)
	}
	if _, cmd = step(t, m, tickMsg{}); cmd != nil {
		t.Error("a tick after done asked for more snapshots")
	}
	view := m.Render()
	for _, want := range []string{"Demo finished. Press q for the report.", "conntrack stopped"} {
		if !strings.Contains(view, want) {
			t.Errorf("finished view lacks %q:\n%s", want, view)
		}
	}
	checkFits(t, view, 80, 24)
}

// TestHeldLogs: the header says when log messages wait for the end.
func TestHeldLogs(t *testing.T) {
	s := snapAt(time.Second, 0, 0)
	s.Status.HeldLogs = 2
	got := render(t, Config{NoColor: true, Location: time.UTC}, []Snapshot{s}, 80, 24)
	if !strings.Contains(got, "2 log messages held until exit") {
		t.Errorf("view does not mention the held log messages:\n%s", got)
	}
}
