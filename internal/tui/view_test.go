package tui

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

var update = flag.Bool("update", false, "rewrite the golden views under testdata/")

// t0 is the fixtures' wall clock: a fixed instant, shown in UTC.
var t0 = time.Date(2026, 3, 12, 14, 10, 0, 0, time.UTC)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// fixtureServers are the upstreams of the fixture: two resolvers' worth
// of IPv4 and IPv6 servers and a spoofer's addresses.
var fixtureServers = []netip.Addr{
	netip.MustParseAddr("198.18.0.2"),
	netip.MustParseAddr("198.18.0.3"),
	netip.MustParseAddr("fd00:6374:5dd:1::2"),
	netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:53"),
}

// feed adds n verdicts of a fixed mix to c, one every 20 ms from the
// clock's time, moving the clock along.
func feed(c *Collector, clock *fakeClock, rng *rand.Rand, n int) {
	for i := range n {
		clock.t = clock.t.Add(20 * time.Millisecond)
		v := correlate.Verdict{
			Drop: events.Drop{
				Source: events.SourceNFLOG,
				Time:   clock.t.Add(-300 * time.Millisecond),
				Proto:  17,
				Src:    netip.AddrPortFrom(fixtureServers[rng.IntN(3)], 53),
				Dst:    netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), uint16(32768+rng.IntN(28000))),
			},
			Decided: clock.t,
		}
		switch k := rng.IntN(20); {
		case k < 11:
			v.Class = correlate.Late
			v.Answered = k < 4
			// Most late answers just miss the timeout; a tail comes
			// after garbage collection.
			v.Lateness = time.Duration(rng.ExpFloat64() * float64(1500*time.Millisecond))
			if k == 10 {
				v.Lateness += 20 * time.Second
			}
			v.FlowID = uint32(1000 + i)
		case k < 16:
			v.Class = correlate.Unsolicited
			v.Drop.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(6))}), 53)
			if k == 15 {
				v.Drop.Src = netip.AddrPortFrom(fixtureServers[3], 53)
			}
		case k < 18:
			v.Class = correlate.Tracked
			v.FlowID = uint32(1000 + i)
		default:
			v.Class, v.Reason = correlate.Unknown, correlate.ReasonEventLoss
		}
		if v.Drop.Src.Addr().Is4() && rng.IntN(4) > 0 {
			v.Drop.DNS = &events.DNSInfo{Response: true, Name: fmt.Sprintf("q%d.lab.test.", i), Type: "A"}
		}
		c.ObserveVerdict(v)
		for range 20 {
			c.ObserveFlow(events.FlowEvent{})
		}
	}
}

// fixedSource serves prepared snapshots.
type fixedSource struct{ snaps []Snapshot }

func (f *fixedSource) Snapshot() Snapshot {
	s := f.snaps[0]
	if len(f.snaps) > 1 {
		f.snaps = f.snaps[1:]
	}
	return s
}
func (f *fixedSource) Reset() {}

// fixtures are the views the golden files hold, by name.
func fixtures() map[string]struct {
	cfg   Config
	snaps []Snapshot
} {
	busyCfg := Config{
		Namespace: "/run/netns/resolver",
		Iface:     "eth0",
		Started:   t0.Add(-754 * time.Second),
		WarmUpEnd: t0.Add(-574 * time.Second),
		NoColor:   true,
		Location:  time.UTC,
	}
	clock := &fakeClock{t: t0.Add(-10 * time.Second)}
	c := NewCollector(CollectorConfig{Now: clock.now})
	rng := rand.New(rand.NewPCG(1, 2))
	feed(c, clock, rng, 200)
	c.ObserveLoss(events.LossEvent{Start: clock.t})
	c.ObserveLoss(events.LossEvent{Start: clock.t, End: clock.t, Resynced: true})
	first := c.Snapshot()
	clock.t = t0.Add(-5 * time.Second)
	feed(c, clock, rng, 250)
	second := c.Snapshot()
	for _, s := range []*Snapshot{&first, &second} {
		s.Status = Status{
			Sources:         []SourceHealth{{"conntrack", true}, {"nflog:5", true}, {"kernel-log", false}},
			EventsLost:      12,
			EventsLostKnown: true,
		}
		s.Timeouts = events.UDPTimeouts{Timeout: 30 * time.Second, StreamTimeout: 120 * time.Second}
	}

	startCfg := Config{
		Started:   t0.Add(-3 * time.Second),
		WarmUpEnd: t0.Add(177 * time.Second),
		Port:      5353,
		NoColor:   true,
		Location:  time.UTC,
	}
	start := NewCollector(CollectorConfig{Now: func() time.Time { return t0 }}).Snapshot()
	start.Status = Status{Sources: []SourceHealth{{"conntrack", true}}}
	start.TimeoutsErr = errors.New("no such file")

	return map[string]struct {
		cfg   Config
		snaps []Snapshot
	}{
		"busy":  {busyCfg, []Snapshot{first, second}},
		"start": {startCfg, []Snapshot{start}},
	}
}

// render feeds a model the fixture's snapshots at a size and renders it.
func render(t *testing.T, cfg Config, snaps []Snapshot, w, h int, keys ...string) string {
	t.Helper()
	var m tea.Model = NewModel(cfg, &fixedSource{snaps: snaps})
	m, _ = m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	for _, s := range snaps {
		m, _ = m.Update(snapshotMsg{snap: s})
	}
	for _, k := range keys {
		m, _ = m.Update(keyPress(k))
	}
	return m.(Model).Render()
}

// TestGolden renders fixed snapshots at fixed sizes with colour off and
// compares them with testdata/*.golden. Regenerate with
// go test ./internal/tui -run Golden -update, never by hand, and review
// the diff.
func TestGolden(t *testing.T) {
	sizes := []struct{ w, h int }{{120, 40}, {80, 24}, {60, 24}, {40, 20}, {30, 16}}
	for name, f := range fixtures() {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s-%dx%d", name, sz.w, sz.h), func(t *testing.T) {
				got := render(t, f.cfg, f.snaps, sz.w, sz.h)
				checkFits(t, got, sz.w, sz.h)
				golden(t, fmt.Sprintf("%s-%dx%d.golden", name, sz.w, sz.h), got)
			})
		}
	}
	t.Run("help-60x24", func(t *testing.T) {
		f := fixtures()["busy"]
		got := render(t, f.cfg, f.snaps, 60, 24, "?")
		checkFits(t, got, 60, 24)
		golden(t, "help-60x24.golden", got)
	})
}

// checkFits fails when the view is larger than the screen or carries
// escape sequences although colour is off.
func checkFits(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Errorf("view has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i+1, n, w, l)
		}
		if strings.Contains(l, "\x1b") {
			t.Errorf("line %d has an escape sequence with colour off: %q", i+1, l)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/tui -run Golden -update)", err)
	}
	if got != string(want) {
		t.Errorf("view differs from %s (run with -update and review the diff)\ngot:\n%s\nwant:\n%s",
			path, got, want)
	}
}

// keyPress builds the message Bubble Tea sends for a key.
func keyPress(k string) tea.KeyPressMsg {
	switch k {
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	}
	r := []rune(k)
	return tea.KeyPressMsg{Code: r[0], Text: k}
}
