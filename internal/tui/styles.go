package tui

import (
	"charm.land/lipgloss/v2"

	"github.com/ctwatch/ctwatch/internal/correlate"
)

// styles are the view's text styles. With colour off every style is the
// zero style, so rendered text carries no escape sequences at all.
type styles struct {
	title, section, dim, warn, good, bad, bar, marker, key lipgloss.Style
	class                                                  [numClasses]lipgloss.Style
}

func newStyles(noColor bool) styles {
	if noColor {
		return styles{}
	}
	fg := func(c string) lipgloss.Style { return lipgloss.NewStyle().Foreground(lipgloss.Color(c)) }
	s := styles{
		title:   lipgloss.NewStyle().Bold(true),
		section: lipgloss.NewStyle().Bold(true).Underline(true),
		dim:     lipgloss.NewStyle().Faint(true),
		warn:    fg("3").Bold(true),
		good:    fg("2"),
		bad:     fg("1").Bold(true),
		bar:     fg("6"),
		marker:  fg("5"),
		key:     lipgloss.NewStyle().Bold(true),
	}
	s.class[correlate.Late] = fg("3")
	s.class[correlate.Unsolicited] = fg("1")
	s.class[correlate.Tracked] = fg("5")
	s.class[correlate.Unknown] = lipgloss.NewStyle().Faint(true)
	return s
}

// classStyle returns the style of class c.
func (s styles) classStyle(c correlate.Class) lipgloss.Style {
	if int(c) < len(s.class) {
		return s.class[c]
	}
	return lipgloss.Style{}
}
