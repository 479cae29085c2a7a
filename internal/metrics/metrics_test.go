package metrics

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

func TestLint(t *testing.T) {
	reg, m := newFixed(t)
	feedFixedEvents(m)

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestNewRejectsDuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, Options{ProcRoot: fakeProc(t, "30", "120")}); err != nil {
		t.Fatalf("first New: %v", err)
	}
	before := seriesCount(t, reg)
	if _, err := New(reg, Options{}); err == nil {
		t.Fatal("second New on the same registry succeeded; want an error")
	}
	if after := seriesCount(t, reg); after != before {
		t.Errorf("failed New left %d series behind", after-before)
	}
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: nameLossSeconds, Help: "A clashing metric.",
	}))
	if _, err := New(other, Options{}); err == nil {
		t.Fatal("New over a clashing metric succeeded; want an error")
	}
	if n := seriesCount(t, other); n != 1 {
		t.Errorf("failed New left %d series, want only the clashing one", n)
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("New(nil) succeeded; want an error")
	}
}

// TestDescriptionsMatchRegistry keeps the documentation honest: every
// gathered family is documented with its exact type, help and label
// names, every documented metric is gathered, and every label value
// documented as known in advance is exported before any event.
func TestDescriptionsMatchRegistry(t *testing.T) {
	reg, _ := newFixed(t)
	fams := gather(t, reg)

	docs := make(map[string]MetricDoc)
	for _, d := range Descriptions() {
		if _, dup := docs[d.Name]; dup {
			t.Errorf("%s documented twice", d.Name)
		}
		docs[d.Name] = d
	}

	for name, mf := range fams {
		d, ok := docs[name]
		if !ok {
			t.Errorf("%s is exported but not documented", name)
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != string(d.Type) {
			t.Errorf("%s: type %s, documented %s", name, got, d.Type)
		}
		if mf.GetHelp() != d.Help {
			t.Errorf("%s: help %q, documented %q", name, mf.GetHelp(), d.Help)
		}
		want := slices.Sorted(slices.Values(d.LabelNames()))
		for _, m := range mf.GetMetric() {
			var got []string
			for _, lp := range m.GetLabel() {
				got = append(got, lp.GetName())
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: labels %v, documented %v", name, got, want)
				break
			}
		}
		for _, l := range d.Labels {
			if len(l.Values) == 0 {
				continue
			}
			var got []string
			for _, m := range mf.GetMetric() {
				got = append(got, labelsOf(m)[l.Name])
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if want := slices.Sorted(slices.Values(l.Values)); !slices.Equal(got, want) {
				t.Errorf("%s{%s}: exported values %v before any event, documented %v",
					name, l.Name, got, want)
			}
		}
	}
	for name := range docs {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s is documented but not exported", name)
		}
	}
}

func TestHelpIsASentence(t *testing.T) {
	for _, d := range Descriptions() {
		h := d.Help
		if h == "" || h[0] < 'A' || h[0] > 'Z' || !strings.HasSuffix(h, ".") {
			t.Errorf("%s: help %q is not a full sentence", d.Name, h)
		}
		if strings.ContainsAny(h, "\n|") {
			t.Errorf("%s: help %q contains a line break or a pipe", d.Name, h)
		}
	}
}

func TestPreinitialisedAtZero(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if _, err := New(reg, Options{ProcRoot: fakeProc(t, "30", "120")}); err != nil {
		t.Fatal(err)
	}
	fams := gather(t, reg)

	// Every class and source combination, at zero.
	drops := fams[nameDrops].GetMetric()
	if len(drops) != len(correlate.Classes)*2 {
		t.Errorf("%s has %d series, want %d", nameDrops, len(drops), len(correlate.Classes)*2)
	}
	for _, c := range correlate.Classes {
		for _, s := range []string{"nflog", "kernel_log"} {
			m := find(t, fams, nameDrops, map[string]string{"class": c.String(), "source": s})
			if v := value(m); v != 0 {
				t.Errorf("%s{class=%s,source=%s} = %v, want 0", nameDrops, c, s, v)
			}
		}
	}

	tests := []struct {
		name, label string
		values      []string
	}{
		{nameUnknownDrops, "reason", append(reasonStrings(), "unspecified")},
		{nameFlowsExpired, "answered", []string{"true", "false"}},
		{nameEvents, "type", []string{"seen", "new", "reply", "destroy"}},
		{nameResyncs, "result", []string{"success", "failure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range tt.values {
				if got := value(find(t, fams, tt.name, map[string]string{tt.label: v})); got != 0 {
					t.Errorf("%s{%s=%q} = %v, want 0", tt.name, tt.label, v, got)
				}
			}
		})
	}
	for _, name := range []string{nameFlowsStarted, nameOverflows, nameLossSeconds} {
		if got := value(find(t, fams, name, nil)); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
	for _, answered := range []string{"true", "false"} {
		h := find(t, fams, nameLateness, map[string]string{"answered": answered}).GetHistogram()
		if h.GetSampleCount() != 0 {
			t.Errorf("%s{answered=%s} count %d, want 0", nameLateness, answered, h.GetSampleCount())
		}
	}
}

func TestObserveVerdict(t *testing.T) {
	reg, m := newFixed(t)
	feedFixedEvents(m)
	fams := gather(t, reg)

	counts := []struct {
		class, source string
		want          float64
	}{
		{"late", "nflog", 1},
		{"late", "kernel_log", 1},
		{"unsolicited", "nflog", 2},
		{"unsolicited", "kernel_log", 0},
		{"tracked", "kernel_log", 1},
		{"unknown", "nflog", 1},
		{"unknown", "kernel_log", 1},
	}
	for _, c := range counts {
		got := value(find(t, fams, nameDrops, map[string]string{"class": c.class, "source": c.source}))
		if got != c.want {
			t.Errorf("%s{class=%s,source=%s} = %v, want %v", nameDrops, c.class, c.source, got, c.want)
		}
	}
	for reason, want := range map[string]float64{"warm-up": 1, "event-loss": 1, "index-full": 0} {
		got := value(find(t, fams, nameUnknownDrops, map[string]string{"reason": reason}))
		if got != want {
			t.Errorf("%s{reason=%s} = %v, want %v", nameUnknownDrops, reason, got, want)
		}
	}

	hists := []struct {
		name     string
		labels   map[string]string
		sum      float64
		le       float64 // a bucket bound
		belowLE  uint64  // observations at or below le
		observed uint64
	}{
		{nameLateness, map[string]string{"answered": "true"}, 1.5, 2, 1, 1},
		{nameLateness, map[string]string{"answered": "false"}, 12, 10, 0, 1},
		{nameLateness, map[string]string{"answered": "false"}, 12, 15, 1, 1},
		{nameAge, nil, 31.5 + 42, 45, 2, 2},
		{nameAge, nil, 31.5 + 42, 30, 0, 2},
		{nameAnswerTime, nil, 1.243, 0.005, 1, 3},
		{nameAnswerTime, nil, 1.243, 1, 2, 3},
	}
	for _, h := range hists {
		got := find(t, fams, h.name, h.labels).GetHistogram()
		if got.GetSampleCount() != h.observed {
			t.Errorf("%s%v: count %d, want %d", h.name, h.labels, got.GetSampleCount(), h.observed)
		}
		if math.Abs(got.GetSampleSum()-h.sum) > 1e-9 {
			t.Errorf("%s%v: sum %v, want %v", h.name, h.labels, got.GetSampleSum(), h.sum)
		}
		found := false
		for _, b := range got.GetBucket() {
			if b.GetUpperBound() == h.le {
				found = true
				if b.GetCumulativeCount() != h.belowLE {
					t.Errorf("%s%v: bucket le=%v holds %d, want %d",
						h.name, h.labels, h.le, b.GetCumulativeCount(), h.belowLE)
				}
			}
		}
		if !found {
			t.Errorf("%s%v: no bucket le=%v", h.name, h.labels, h.le)
		}
	}
}

// TestNativeHistograms checks that the histograms also carry native
// buckets, which only the protobuf exposition shows.
func TestNativeHistograms(t *testing.T) {
	reg, m := newFixed(t)
	feedFixedEvents(m)
	fams := gather(t, reg)

	for _, name := range []string{nameLateness, nameAge, nameAnswerTime} {
		for _, s := range fams[name].GetMetric() {
			h := s.GetHistogram()
			if h.GetSampleCount() == 0 {
				continue
			}
			if h.GetSchema() != 3 {
				t.Errorf("%s: native schema %d, want 3 (factor 1.1)", name, h.GetSchema())
			}
			if len(h.GetPositiveSpan()) == 0 {
				t.Errorf("%s: no native buckets", name)
			}
		}
	}
}

func TestObserveFlow(t *testing.T) {
	reg, m := newFixed(t)
	feedFixedEvents(m)
	m.ObserveFlow(events.FlowEvent{Type: 0})
	m.ObserveFlow(events.FlowEvent{Type: 200})
	fams := gather(t, reg)

	if got := len(fams[nameEvents].GetMetric()); got != 4 {
		t.Errorf("%s has %d series after unknown types, want 4", nameEvents, got)
	}
	for typ, want := range map[string]float64{"seen": 1, "new": 3, "reply": 2, "destroy": 3} {
		if got := value(find(t, fams, nameEvents, map[string]string{"type": typ})); got != want {
			t.Errorf("%s{type=%s} = %v, want %v", nameEvents, typ, got, want)
		}
	}
	if got := value(find(t, fams, nameFlowsStarted, nil)); got != 3 {
		t.Errorf("%s = %v, want 3", nameFlowsStarted, got)
	}
	for answered, want := range map[string]float64{"true": 2, "false": 1} {
		got := value(find(t, fams, nameFlowsExpired, map[string]string{"answered": answered}))
		if got != want {
			t.Errorf("%s{answered=%s} = %v, want %v", nameFlowsExpired, answered, got, want)
		}
	}
}

func TestObserveLoss(t *testing.T) {
	tests := []struct {
		name             string
		losses           []events.LossEvent
		overflows        float64
		success, failure float64
		lossSeconds      float64
	}{
		{
			name:      "resynced at once",
			losses:    []events.LossEvent{{Start: t0, End: t0.Add(time.Second), Resynced: true}},
			overflows: 1, success: 1, lossSeconds: 1,
		},
		{
			name: "retry of the same window",
			losses: []events.LossEvent{
				{Start: t0, End: t0.Add(time.Second)},
				{Start: t0, End: t0.Add(3 * time.Second), Resynced: true},
			},
			overflows: 1, success: 1, failure: 1, lossSeconds: 3,
		},
		{
			name: "new overflow after a failed resync",
			losses: []events.LossEvent{
				{Start: t0, End: t0.Add(time.Second)},
				{Start: t0.Add(time.Second), End: t0.Add(4 * time.Second), Resynced: true},
			},
			overflows: 2, success: 1, failure: 1, lossSeconds: 4,
		},
		{
			name: "two separate windows",
			losses: []events.LossEvent{
				{Start: t0, End: t0.Add(time.Second), Resynced: true},
				{Start: t0, End: t0.Add(time.Second), Resynced: true},
			},
			overflows: 2, success: 2, lossSeconds: 2,
		},
		{
			name: "reported open, then resynced",
			losses: []events.LossEvent{
				{Start: t0},
				{Start: t0, End: t0.Add(2 * time.Second), Resynced: true},
			},
			overflows: 1, success: 1, lossSeconds: 2,
		},
		{
			name:      "reported open only",
			losses:    []events.LossEvent{{Start: t0}},
			overflows: 1,
		},
		{
			name:      "still open",
			losses:    []events.LossEvent{{Start: t0, End: t0.Add(time.Second)}},
			overflows: 1, failure: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := New(reg, Options{ProcRoot: fakeProc(t, "30", "120")})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range tt.losses {
				m.ObserveLoss(l)
			}
			fams := gather(t, reg)
			check := func(name string, labels map[string]string, want float64) {
				t.Helper()
				if got := value(find(t, fams, name, labels)); got != want {
					t.Errorf("%s%v = %v, want %v", name, labels, got, want)
				}
			}
			check(nameOverflows, nil, tt.overflows)
			check(nameResyncs, map[string]string{"result": "success"}, tt.success)
			check(nameResyncs, map[string]string{"result": "failure"}, tt.failure)
			check(nameLossSeconds, nil, tt.lossSeconds)
		})
	}
}

func TestSources(t *testing.T) {
	reg, _ := newFixed(t)
	fams := gather(t, reg)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{nameSourceUp, map[string]string{"source": "conntrack"}, 1},
		{nameSourceUp, map[string]string{"source": "nflog"}, 1},
		{nameSourceUp, map[string]string{"source": "kernel_log"}, 1},
		{nameSourceLast, map[string]string{"source": "conntrack"}, float64(t0.Unix() - 2)},
		{nameSourceLast, map[string]string{"source": "nflog"}, float64(t0.Unix() - 1)},
		{nameEventsLost, nil, 17},
		{nameCTMessages, nil, 1200},
		{nameCTRcvBuf, nil, 128 << 20},
		{nameLogLines, map[string]string{"result": "firewall"}, 40},
		{nameLogLines, map[string]string{"result": "malformed"}, 2},
		{nameNFDecodeErrors, map[string]string{"group": "5", "reason": "truncated"}, 1},
		{nameNFDecodeErrors, map[string]string{"group": "5", "reason": "attributes"}, 0},
		{nameNFGroupUp, map[string]string{"group": "5"}, 1},
		{nameRemembered, map[string]string{"state": "expired"}, 340},
		{nameWarmUp, nil, 1},
		{nameUDPTimeout, map[string]string{"kind": "udp"}, 30},
		{nameUDPTimeout, map[string]string{"kind": "udp_stream"}, 120},
		{nameUDPTimeoutError, nil, 0},
	}
	for _, tt := range tests {
		if got := value(find(t, fams, tt.name, tt.labels)); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if mf := fams[nameSourceLast]; mf.GetType().String() != "GAUGE" {
		t.Errorf("%s is a %s", nameSourceLast, mf.GetType())
	}
	for _, name := range []string{nameCTMessages, nameLogLines, nameNFMessages, nameEvictions} {
		if mf := fams[name]; mf.GetType().String() != "COUNTER" {
			t.Errorf("%s is a %s, want a counter", name, mf.GetType())
		}
	}
}

// TestSourcesNotConfigured: a source without a callback exports nothing,
// and unknown quantities are left out rather than exported as zero.
func TestSourcesNotConfigured(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	opts := Options{
		Conntrack: func() ConntrackStats { return ConntrackStats{Up: false} },
		NFLOG: func() []NFLOGGroupStats {
			return []NFLOGGroupStats{{Group: 1, Up: true}, {Group: 2, Up: false}}
		},
		ProcRoot: fakeProc(t, "30", "120"),
	}
	if _, err := New(reg, opts); err != nil {
		t.Fatal(err)
	}
	fams := gather(t, reg)

	for _, name := range []string{
		nameLogLines, nameLogLost, nameRemembered, nameWarmUp,
		nameEventsLost, nameSourceLast,
	} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s exported; want it absent", name)
		}
	}
	if got := len(fams[nameSourceUp].GetMetric()); got != 2 {
		t.Errorf("%s has %d series, want 2 (conntrack, nflog)", nameSourceUp, got)
	}
	if got := value(find(t, fams, nameSourceUp, map[string]string{"source": "conntrack"})); got != 0 {
		t.Errorf("conntrack up = %v, want 0", got)
	}
	// One group down makes the nflog source down.
	if got := value(find(t, fams, nameSourceUp, map[string]string{"source": "nflog"})); got != 0 {
		t.Errorf("nflog up = %v with a group down, want 0", got)
	}
}

func TestUDPTimeoutReadErrors(t *testing.T) {
	var logs bytes.Buffer
	fail := true
	reg := prometheus.NewPedanticRegistry()
	_, err := New(reg, Options{
		UDPTimeouts: func() (events.UDPTimeouts, error) {
			if fail {
				return events.UDPTimeouts{}, errors.New("no conntrack here")
			}
			return events.UDPTimeouts{Timeout: 10 * time.Second, StreamTimeout: 60 * time.Second}, nil
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}

	for range 3 {
		fams := gather(t, reg)
		if _, ok := fams[nameUDPTimeout]; ok {
			t.Errorf("%s exported although the read failed", nameUDPTimeout)
		}
	}
	fams := gather(t, reg)
	if got := value(find(t, fams, nameUDPTimeoutError, nil)); got != 4 {
		t.Errorf("%s = %v, want 4", nameUDPTimeoutError, got)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("logged %d warnings for 4 failed reads, want 1:\n%s", n, logs.String())
	}

	fail = false
	fams = gather(t, reg)
	if got := value(find(t, fams, nameUDPTimeout, map[string]string{"kind": "udp"})); got != 10 {
		t.Errorf("udp timeout = %v, want 10", got)
	}
	if !strings.Contains(logs.String(), "readable again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

func TestProcessCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, Options{Process: true, ProcRoot: fakeProc(t, "30", "120")}); err != nil {
		t.Fatal(err)
	}
	fams := gather(t, reg)
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", nameBuildInfo} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
}

// TestCardinality feeds drops from random addresses and ports, of every
// class and source, and checks that no series appears: addresses and ports
// never become label values.
func TestCardinality(t *testing.T) {
	reg, m := newFixed(t)
	feedFixedEvents(m)
	before := seriesCount(t, reg)

	rng := rand.New(rand.NewPCG(1, 2))
	randAddrPort := func() netip.AddrPort {
		var a netip.Addr
		if rng.IntN(2) == 0 {
			var b [4]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			a = netip.AddrFrom4(b)
		} else {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			a = netip.AddrFrom16(b)
		}
		return netip.AddrPortFrom(a, uint16(rng.Uint32()))
	}
	reasons := unknownReasons()
	sources := dropSources()
	for range 10000 {
		src, dst := randAddrPort(), randAddrPort()
		m.ObserveVerdict(correlate.Verdict{
			Drop: events.Drop{
				Source: sources[rng.IntN(len(sources))],
				Time:   t0, Received: t0, Proto: 17, Src: src, Dst: dst,
				Length: rng.IntN(1500), TTL: rng.IntN(256),
				DNS: &events.DNSInfo{ID: uint16(rng.Uint32()), Name: src.String() + ".example."},
			},
			Class:    correlate.Classes[rng.IntN(len(correlate.Classes))],
			Reason:   reasons[rng.IntN(len(reasons))],
			Answered: rng.IntN(2) == 0,
			Lateness: time.Duration(rng.Int64N(int64(5 * time.Minute))),
			Age:      time.Duration(rng.Int64N(int64(10 * time.Minute))),
			FlowID:   rng.Uint32(),
		})
		m.ObserveFlow(events.FlowEvent{
			Type:  flowEventTypes()[rng.IntN(4)],
			ID:    rng.Uint32(),
			Zone:  uint16(rng.Uint32()),
			Orig:  events.Tuple{Src: dst, Dst: src},
			Reply: events.Tuple{Src: src, Dst: dst},
		})
	}

	if after := seriesCount(t, reg); after != before {
		t.Errorf("series: %d before, %d after 10,000 random drops", before, after)
	}
	for name, mf := range gather(t, reg) {
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				v := lp.GetValue()
				if _, err := netip.ParseAddr(v); err == nil {
					t.Errorf("%s{%s=%q}: an address as a label value", name, lp.GetName(), v)
				}
				if _, err := netip.ParseAddrPort(v); err == nil {
					t.Errorf("%s{%s=%q}: an address and port as a label value", name, lp.GetName(), v)
				}
				if _, err := strconv.Atoi(v); err == nil && lp.GetName() != "group" {
					t.Errorf("%s{%s=%q}: a number (a port?) as a label value", name, lp.GetName(), v)
				}
			}
		}
	}
}

// reasonStrings returns the strings of correlate.Reasons.
func reasonStrings() []string {
	var s []string
	for _, r := range correlate.Reasons {
		s = append(s, r.String())
	}
	return s
}
