package tui

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/ctwatch/ctwatch/internal/correlate"
)

// Layout thresholds: from wideWidth columns (and wideHeight rows) the
// counters and servers sit beside the chart; below, sections stack and
// shrink, down to about minWidth columns.
const (
	wideWidth  = 100
	wideHeight = 24
	leftWidth  = 46
	columnGap  = 3
	minWidth   = 40
)

// Render draws the model at its size: every line fits the width, and
// there are never more lines than the height.
func (m Model) Render() string {
	w, h := m.width, m.height
	if w <= 0 || h <= 0 {
		return ""
	}
	header := m.header(w)
	footer := m.footer(w)
	avail := h - len(header) - len(footer)

	var body []string
	switch {
	case m.help:
		body = m.helpLines()
	case w >= wideWidth && h >= wideHeight:
		body = m.wideBody(w, avail)
	default:
		body = m.narrowBody(w, avail)
	}
	if avail < 0 {
		avail = 0
	}
	if len(body) > avail {
		body = body[:avail]
	}
	for len(body) < avail {
		body = append(body, "")
	}

	lines := append(append(header, body...), footer...)
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(ansi.Truncate(l, w, ""), " ")
	}
	return strings.Join(lines, "\n")
}

// now is the time the view describes: the snapshot's, or the start
// before the first snapshot.
func (m Model) now() time.Time {
	if m.snap.Taken.IsZero() {
		return m.cfg.Started
	}
	return m.snap.Taken
}

func (m Model) header(w int) []string {
	st := m.st
	ns := m.cfg.Namespace
	if ns == "" {
		ns = "current"
	}
	iface := m.cfg.Iface
	if iface == "" {
		iface = "any"
	}
	first := []string{st.title.Render("ctwatch"), "netns " + ns, "iface " + iface}
	if m.cfg.Port != 0 && m.cfg.Port != 53 {
		first = append(first, fmt.Sprintf("port %d", m.cfg.Port))
	}
	now := m.now()
	if !m.cfg.Started.IsZero() {
		first = append(first, "up "+clock(now.Sub(m.cfg.Started)))
	}
	if left := m.cfg.WarmUpEnd.Sub(now); !m.cfg.WarmUpEnd.IsZero() && left > 0 {
		first = append(first, st.warn.Render("warm-up "+clock(left)+" left"))
	} else {
		first = append(first, "warm-up done")
	}
	if m.paused {
		first = append(first, st.warn.Render("PAUSED"))
	}

	s := m.snap.Status
	segs := first
	for _, src := range s.Sources {
		state := st.good.Render("up")
		switch {
		case m.finished:
			state = st.dim.Render("stopped") // not a failure: the end
		case !src.Up:
			state = st.bad.Render("down")
		}
		segs = append(segs, src.Name+" "+state)
	}
	events := "ct events –/s"
	if m.rates.Known {
		events = "ct events " + rate(m.rates.FlowEvents) + "/s"
	}
	segs = append(segs, events, m.lossText())
	if n := s.HeldLogs; n > 0 {
		segs = append(segs, st.warn.Render(fmt.Sprintf("%s log %s held until exit",
			count(n), plural(n, "message", "messages"))))
	}
	lines := wrapSegments(segs, w)
	if m.finished {
		note := m.cfg.DoneNote
		if note == "" {
			note = "finished: press q to quit"
		}
		for _, l := range wrap(note, w) {
			lines = append(lines, st.warn.Render(l))
		}
	}
	return lines
}

// lossText summarises what was lost: conntrack events, loss windows and
// drop records.
func (m Model) lossText() string {
	s, st := m.snap, m.st
	var parts []string
	if s.Status.EventsLostKnown {
		parts = append(parts, count(s.Status.EventsLost)+" events")
	}
	if s.LossWindows > 0 {
		parts = append(parts, count(s.LossWindows)+" "+plural(s.LossWindows, "overflow", "overflows"))
	}
	if s.Status.RecordsLost > 0 {
		parts = append(parts, count(s.Status.RecordsLost)+" drop records")
	}
	text := "lost 0"
	if len(parts) > 0 {
		text = "lost " + strings.Join(parts, ", ")
	}
	lost := s.Status.EventsLost > 0 || s.LossWindows > 0 || s.Status.RecordsLost > 0
	switch {
	case s.LossOpen:
		return st.bad.Render(text + " (loss window open)")
	case lost:
		return st.warn.Render(text)
	}
	return text
}

func (m Model) footer(w int) []string {
	k := m.st.key.Render
	keys := []string{k("q") + " quit", k("p") + " pause", k("c") + " clear",
		k("↑↓") + " scroll", k("?") + " help"}
	if m.paused {
		keys[1] = k("p") + " resume"
	}
	if m.help {
		keys[4] = k("?") + " close help"
	}
	line := strings.Join(keys, "  ")
	if ansi.StringWidth(line) > w {
		// Narrow: the keys alone; ? explains them.
		line = strings.Join([]string{k("q"), k("p"), k("c"), k("↑↓"), k("?") + " help"}, " ")
	}
	return []string{line}
}

// wideBody puts counters and servers on the left, the chart and the
// recommendation on the right, and the recent verdicts below.
func (m Model) wideBody(w, avail int) []string {
	rightW := w - leftWidth - columnGap
	rec := wrap("→ "+m.recommendation().String(), rightW)
	const recentMin = 5
	topBudget := avail - 2 - recentMin // a blank line above and below

	rightNeed := 1 + ChartBuckets + 1 + len(rec)
	counters := m.counters(leftWidth, true)
	serversWant := 2 + min(len(m.snap.Servers), 10)
	leftNeed := len(counters) + 1 + serversWant
	top := min(max(leftNeed, rightNeed), topBudget)

	left := append(counters, "")
	left = append(left, m.servers(leftWidth, top-len(left))...)
	right := m.chart(rightW, top-1-len(rec))
	if len(right) > 0 {
		right = append(right, "")
	}
	right = append(right, m.styleRec(rec)...)

	body := []string{""}
	body = append(body, joinColumns(left, right, leftWidth+columnGap, top)...)
	body = append(body, "")
	return append(body, m.recent(w, avail-len(body))...)
}

// narrowBody stacks the sections, shrinking the chart, the servers and
// the recent verdicts to what the height leaves.
func (m Model) narrowBody(w, avail int) []string {
	counters := m.counters(w, false)
	rec := m.styleRec(wrap("→ "+m.recommendation().String(), w))
	rest := avail - len(counters) - len(rec)

	chartWant := 1 + ChartBuckets
	serversWant := 2 + min(len(m.snap.Servers), 5)
	if len(m.snap.Servers) == 0 {
		serversWant = 2
	}
	recentWant := 2 + len(m.snap.Recent)

	// Minimums for the lists first, then the chart, then what is left.
	recentN, serversN, chartN := min(3, rest), 0, 0
	rest -= recentN
	if rest >= 3 {
		serversN = min(3, serversWant)
		rest -= serversN
	}
	if rest >= 3 {
		chartN = min(chartWant, rest)
		rest -= chartN
	}
	// A narrow chart merges buckets and may use fewer rows than it was
	// given; the lists get the rest.
	chart := m.chart(w, chartN)
	rest += chartN - len(chart)
	if more := min(serversWant-serversN, rest); serversN > 0 && more > 0 {
		serversN += more
		rest -= more
	}
	if more := min(recentWant-recentN, rest); more > 0 {
		recentN += more
		rest -= more
	}

	// Blank lines between sections when there is room for them.
	sections := [][]string{counters, chart, rec, m.servers(w, serversN), m.recent(w, recentN)}
	var body []string
	for _, s := range sections {
		if len(s) == 0 {
			continue
		}
		if len(body) > 0 && rest > 0 {
			body = append(body, "")
			rest--
		}
		body = append(body, s...)
	}
	return body
}

// counters lists the verdict classes with totals and rates. Wide, it
// has a header and the details of late and unknown verdicts on rows of
// their own; narrow, a short detail follows a row where it fits w.
func (m Model) counters(w int, wide bool) []string {
	s, st := m.snap, m.st
	var out []string
	if wide || w >= 60 {
		out = append(out, st.section.Render("verdicts")+strings.Repeat(" ", 9)+
			st.dim.Render(fmt.Sprintf("%9s %9s", "total", "now/s")))
	}
	// Below 36 columns the columns tighten so that the rates still fit.
	nameW, totalW, rateW := 15, 11, 9
	if !wide && w < 36 {
		nameW, totalW, rateW = 12, 9, 7
	}
	row := func(name string, style lipgloss.Style, n uint64, r string) string {
		return style.Render(fmt.Sprintf("%-*s", nameW, name)) +
			fmt.Sprintf("%*s %*s", totalW, count(n), rateW, r)
	}
	for _, c := range correlate.Classes {
		r := "–"
		if m.rates.Known {
			r = rate(m.rates.Classes[c])
		}
		line := row(c.String(), st.classStyle(c), s.Classes[c], r)
		details := m.classDetails(c)
		if wide {
			out = append(out, line)
			for _, d := range details {
				out = append(out, row("  "+d.name, st.dim, d.n, ""))
			}
			continue
		}
		if len(details) > 0 {
			note := fmt.Sprintf("(%s %s)", count(details[0].n), details[0].name)
			if c == correlate.Unknown {
				note = fmt.Sprintf("(%s %s)", details[0].name, count(details[0].n))
			}
			if ansi.StringWidth(line)+2+len(note) <= w {
				line += "  " + st.dim.Render(note)
			}
		}
		out = append(out, line)
	}
	return out
}

type detail struct {
	name string
	n    uint64
}

// classDetails splits a class: late answered or not, unknown by reason,
// largest first for unknown.
func (m Model) classDetails(c correlate.Class) []detail {
	s := m.snap
	switch c {
	case correlate.Late:
		if s.Classes[c] == 0 {
			return nil
		}
		answered := min(s.LateAnswered, s.Classes[c])
		return []detail{{"answered", answered}, {"unanswered", s.Classes[c] - answered}}
	case correlate.Unknown:
		var out []detail
		for _, r := range correlate.Reasons {
			if int(r) < numReasons && s.Reasons[r] > 0 {
				out = append(out, detail{r.String(), s.Reasons[r]})
			}
		}
		slices.SortStableFunc(out, func(a, b detail) int { return cmp.Compare(b.n, a.n) })
		return out
	}
	return nil
}

func (m Model) recommendation() Recommendation {
	var current time.Duration
	if m.snap.TimeoutsErr == nil {
		current = m.snap.Timeouts.Timeout
	}
	return Recommend(&m.snap.Lateness, current, RecommendQuantile)
}

func (m Model) styleRec(lines []string) []string {
	if !m.recommendation().Enough {
		return lines
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = m.st.good.Render(l)
	}
	return out
}

// chartLabels name the chart buckets.
var chartLabels = [ChartBuckets]string{
	"< 100ms", "100-250ms", "250-500ms", "0.5-1s", "1-2s", "2-3s", "3-5s",
	"5-10s", "10-20s", "20-30s", "30-60s", "60-90s", "90-120s", "120-180s", "≥ 180s",
}

// chart draws the lateness distribution in at most maxLines lines: a
// title, then one bar per bucket. Rows are marked where the quantile of
// the recommendation falls and where a flow on the stream timeout would
// still have been alive. When the height is short, empty buckets at both
// ends go first, then the slowest buckets are merged into one row.
func (m Model) chart(w, maxLines int) []string {
	if maxLines < 3 {
		return nil
	}
	s, st := m.snap, m.st
	l := &s.Lateness

	// The longest title that fits.
	var timeouts []string
	switch {
	case s.TimeoutsErr != nil:
		timeouts = []string{" (UDP timeouts unknown)", " (timeouts unknown)"}
	case s.Timeouts.Timeout > 0:
		timeouts = []string{
			fmt.Sprintf(" (udp timeout %s, stream %s)", seconds(s.Timeouts.Timeout), seconds(s.Timeouts.StreamTimeout)),
			fmt.Sprintf(" (timeout %s, stream %s)", seconds(s.Timeouts.Timeout), seconds(s.Timeouts.StreamTimeout)),
			fmt.Sprintf(" (timeout %s)", seconds(s.Timeouts.Timeout)),
		}
	}
	title := "lateness after expiry"
	for _, t := range timeouts {
		if c := "lateness of late answers after expiry" + t; len(c) <= w {
			title = c
			break
		}
		if c := title + t; len(c) <= w {
			title = c
			break
		}
	}
	out := []string{st.section.Render(title)}

	// Which buckets carry markers.
	var marks [ChartBuckets][]string
	if q, ok := l.Quantile(RecommendQuantile); ok && l.Total >= MinSamples {
		// The quantile bound is the end of a whole second: its bucket
		// holds the lateness just below it.
		i := chartBucket(q - time.Nanosecond)
		marks[i] = append(marks[i], fmt.Sprintf("%g%% below %s", RecommendQuantile*100, seconds(q)))
	}
	if t := s.Timeouts; s.TimeoutsErr == nil && t.Timeout > 0 && t.StreamTimeout > t.Timeout {
		i := chartBucket(t.StreamTimeout - t.Timeout)
		marks[i] = append(marks[i], "stream timeout")
	}

	if l.Total == 0 && ChartBuckets > maxLines-1 {
		return append(out, st.dim.Render("no late answers yet"))
	}
	type row struct {
		label string
		n     uint64
		marks []string
		first int // the first bucket in the row
	}
	rows := make([]row, 0, ChartBuckets)
	for i, n := range l.Chart {
		rows = append(rows, row{chartLabels[i], n, marks[i], i})
	}
	if len(rows) > maxLines-1 {
		first, last := 0, len(rows)-1
		for first < last && rows[first].n == 0 {
			first++
		}
		for last > first && rows[last].n == 0 {
			last--
		}
		rows = rows[first : last+1]
	}
	if keep := maxLines - 1; len(rows) > keep {
		// Group neighbours evenly, so that the whole range stays in view.
		per := (len(rows) + keep - 1) / keep
		var grouped []row
		for i := 0; i < len(rows); i += per {
			g := rows[i:min(i+per, len(rows))]
			r := row{first: g[0].first}
			for _, x := range g {
				r.n += x.n
				r.marks = append(r.marks, x.marks...)
			}
			r.label = rangeLabel(g[0].first, g[len(g)-1].first)
			grouped = append(grouped, r)
		}
		rows = grouped
	}

	var peak uint64
	for _, r := range rows {
		peak = max(peak, r.n)
	}
	const labelW, countW = 10, 7
	barW := max(w-labelW-countW-3-18, 4)
	for _, r := range rows {
		line := fmt.Sprintf("%*s │", labelW, r.label) + st.bar.Render(padRight(bar(r.n, peak, barW), barW)) +
			fmt.Sprintf("%*s", countW, count(r.n))
		if len(r.marks) > 0 {
			line += " " + st.marker.Render("◂ "+strings.Join(r.marks, ", "))
		}
		out = append(out, line)
	}
	return out
}

// rangeLabel names the lateness range of chart buckets first to last.
func rangeLabel(first, last int) string {
	if first == last {
		return chartLabels[first]
	}
	hi := ChartEdge(last)
	switch {
	case hi == 0:
		return "≥ " + short(ChartEdge(first-1))
	case first == 0:
		return "< " + short(hi)
	}
	return short(ChartEdge(first-1)) + "-" + short(hi)
}

// bar draws n of peak as a horizontal bar of at most w cells, in eighths
// of a cell; any n above zero shows.
func bar(n, peak uint64, w int) string {
	if n == 0 || peak == 0 || w <= 0 {
		return ""
	}
	eighths := int(math.Round(float64(n) / float64(peak) * float64(w*8)))
	eighths = max(eighths, 1)
	partial := []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}
	return strings.Repeat("█", eighths/8) + partial[eighths%8]
}

// servers lists the upstream servers with the most drops, in at most
// maxLines lines.
func (m Model) servers(w, maxLines int) []string {
	if maxLines < 2 {
		return nil
	}
	s, st := m.snap, m.st
	title := "top servers"
	if s.ServersTracked > 0 {
		title += fmt.Sprintf(" (%s tracked", count(uint64(s.ServersTracked)))
		if s.ServersEvicted > 0 {
			title += fmt.Sprintf(", %s forgotten", count(s.ServersEvicted))
		}
		title += ")"
	}
	out := []string{st.section.Render(title)}
	if len(s.Servers) == 0 {
		return append(out, st.dim.Render("no drops yet"))
	}
	const numW = 8
	addrW := max(min(w-3*numW, 39), 12)
	out = append(out, st.dim.Render(padRight("server", addrW)+
		fmt.Sprintf("%*s%*s%*s", numW, "late", numW, "unsol", numW, "other")))
	for _, sv := range s.Servers[:min(len(s.Servers), maxLines-2)] {
		out = append(out, padRight(ellipsis(sv.Addr.String(), addrW-1), addrW)+
			st.classStyle(correlate.Late).Render(fmt.Sprintf("%*s", numW, count(sv.Late)))+
			st.classStyle(correlate.Unsolicited).Render(fmt.Sprintf("%*s", numW, count(sv.Unsolicited)))+
			fmt.Sprintf("%*s", numW, count(sv.Other)))
	}
	return out
}

// recentColumns are the widths of the columns of the recent verdicts;
// a zero width drops the column.
type recentColumns struct {
	classW, serverW, portW, nameW int
}

// columnsFor fits the columns to w, dropping the name, then the port,
// then the server as the width shrinks. Time, class and lateness stay.
func columnsFor(w int) recentColumns {
	c := recentColumns{classW: 16}
	if w >= wideWidth {
		c.classW = 18
	}
	// time and gap, class and gap, lateness and gap
	base := 10 + c.classW + 2 + 10
	const portW, serverMin, serverMax, nameMin = 7, 14, 40, 12
	avail := w - base
	switch {
	case avail-portW >= serverMin+2+nameMin:
		c.portW = portW
		c.serverW = min(max(avail-portW-20, serverMin+2), serverMax)
		c.nameW = avail - portW - c.serverW
	case avail-portW >= serverMin:
		c.portW = portW
		c.serverW = min(avail-portW, serverMax)
	case avail >= serverMin:
		c.serverW = min(avail, serverMax)
	default:
		c.classW = max(min(c.classW, w-22), 7)
	}
	return c
}

// recent lists the latest verdicts, newest first, from the scroll offset.
func (m Model) recent(w, maxLines int) []string {
	if maxLines < 2 {
		return nil
	}
	s, st := m.snap, m.st
	rows := maxLines - 2
	from := min(m.scroll, max(len(s.Recent)-1, 0))
	to := min(from+rows, len(s.Recent))

	title := "recent verdicts"
	if len(s.Recent) > 0 {
		title += fmt.Sprintf(" (%d-%d of %d", from+1, to, len(s.Recent))
		if w >= 80 {
			title += ", newest first"
		}
		title += ")"
	}
	out := []string{st.section.Render(title)}
	if len(s.Recent) == 0 {
		return append(out, st.dim.Render("no drops yet"))
	}

	c := columnsFor(w)
	cells := func(t, class, server, port, lat, name string) string {
		var b strings.Builder
		b.WriteString(padRight(t, 8) + "  " + class)
		if c.serverW > 0 {
			b.WriteString(padRight(ellipsis(server, c.serverW-1), c.serverW))
		}
		if c.portW > 0 {
			b.WriteString(fmt.Sprintf("%5s  ", port))
		}
		b.WriteString(fmt.Sprintf("%8s  ", lat))
		if c.nameW > 0 {
			b.WriteString(ellipsis(name, c.nameW))
		}
		return b.String()
	}
	out = append(out, st.dim.Render(cells("time", padRight("class", c.classW+2), "server", "port", "lateness", "name")))
	for _, r := range s.Recent[from:to] {
		class := r.Class.String()
		switch {
		case r.Class == correlate.Late && r.Answered:
			class += "/answered"
		case r.Class == correlate.Late:
			class += "/unanswered"
		case r.Class == correlate.Unknown && r.Reason != correlate.ReasonNone:
			class += "/" + r.Reason.String()
		}
		class = st.classStyle(r.Class).Render(padRight(ellipsis(class, c.classW), c.classW)) + "  "
		lat := ""
		if r.Class == correlate.Late {
			lat = latency(r.Lateness)
			if r.Estimated {
				lat = "~" + lat
			}
		}
		name := strings.TrimSpace(r.Name + " " + r.Type)
		out = append(out, cells(r.Time.In(m.cfg.Location).Format(time.TimeOnly), class,
			r.Server.String(), strconv.Itoa(int(r.LocalPort)), lat, name))
	}
	return out
}

func (m Model) helpLines() []string {
	st := m.st
	k := func(keys, what string) string { return "  " + st.key.Render(padRight(keys, 22)) + what }
	return []string{
		"",
		st.section.Render("keys"),
		k("q, ctrl+c", "quit"),
		k("p, space", "pause the display (counting goes on)"),
		k("c", "clear counters, servers and recent verdicts"),
		k("↑ ↓ pgup pgdn home", "scroll the recent verdicts"),
		k("ctrl+l", "redraw the screen"),
		k("?", "close this help"),
		"",
		st.section.Render("verdicts"),
		"  late         a flow with this reply tuple expired before the packet came",
		"  unsolicited  no flow with this reply tuple within the remembered horizon",
		"  tracked      a live flow matches, yet the packet was dropped (rules, state)",
		"  unknown      cannot be told: warm-up, event loss, flows older than ctwatch",
		"",
		st.section.Render("recommendation"),
		"  The timeout that would have accepted a late answer is the UDP timeout",
		"  in force plus the answer's lateness; the view advises the current",
		fmt.Sprintf("  timeout plus the %g%% quantile of the lateness, in whole seconds,", RecommendQuantile*100),
		fmt.Sprintf("  once it has seen %d late answers.", MinSamples),
	}
}

// joinColumns puts left and right side by side, right starting at column
// at, for n lines.
func joinColumns(left, right []string, at, n int) []string {
	out := make([]string, n)
	for i := range out {
		var l, r string
		if i < len(left) {
			l = ansi.Truncate(left[i], at-columnGap, "")
		}
		if i < len(right) {
			r = right[i]
		}
		if r == "" {
			out[i] = l
			continue
		}
		out[i] = padRight(l, at) + r
	}
	return out
}

// wrapSegments joins segments with " · ", starting a new line where the
// next one would not fit w.
func wrapSegments(segs []string, w int) []string {
	const sep = " · "
	var lines []string
	var cur string
	for _, s := range segs {
		switch {
		case cur == "":
			cur = s
		case ansi.StringWidth(cur)+len(sep)+ansi.StringWidth(s) <= w:
			cur += sep + s
		default:
			lines = append(lines, cur)
			cur = s
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// wrap breaks plain text into lines of at most w cells at spaces.
func wrap(text string, w int) []string {
	var lines []string
	var cur string
	for _, word := range strings.Fields(text) {
		switch {
		case cur == "":
			cur = word
		case ansi.StringWidth(cur)+1+ansi.StringWidth(word) <= w:
			cur += " " + word
		default:
			lines = append(lines, cur)
			cur = word
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// padRight pads s with spaces to w cells.
func padRight(s string, w int) string {
	if n := ansi.StringWidth(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// ellipsis shortens plain text s to w cells, ending it with "…".
func ellipsis(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// count formats a counter with thousands separators.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	lead := len(s) % 3
	if lead > 0 {
		b.WriteString(s[:lead])
	}
	for i := lead; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// rate formats a per-second rate.
func rate(r float64) string {
	switch {
	case r >= 100:
		return count(uint64(math.Round(r)))
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 0, 64)
	}
	return strconv.FormatFloat(r, 'f', 1, 64)
}

// clock formats an elapsed time as 42s, 5m03s or 1h02m.
func clock(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// latency formats a lateness: milliseconds below ten seconds.
func latency(d time.Duration) string {
	if d < 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
}

// short formats a chart edge: 500ms, 2s, 90s.
func short(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%gs", d.Seconds())
}
