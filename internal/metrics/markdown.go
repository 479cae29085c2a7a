package metrics

import (
	"errors"
	"fmt"
	"strings"
)

// Markers around the generated metric table in a Markdown document. The
// README carries them so that a test can find the table and compare it
// with the code, and regenerate it on request.
const (
	TableBegin = "<!-- metrics table: generated from internal/metrics; do not edit -->"
	TableEnd   = "<!-- end of metrics table -->"
)

// ErrNoTable is returned (wrapped) when a document lacks the table markers.
var ErrNoTable = errors.New("metrics table markers not found")

// MarkdownTable renders Descriptions as the Markdown table the README
// shows: one row per metric with its type, labels (with the values known
// in advance) and help text. The result ends with a newline.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Metric | Type | Labels | Description |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, d := range Descriptions() {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n",
			d.Name, d.Type, markdownLabels(d.Labels), escapeCell(d.Help))
	}
	return b.String()
}

func markdownLabels(labels []Label) string {
	if len(labels) == 0 {
		return ""
	}
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		s := "`" + l.Name + "`"
		if len(l.Values) > 0 {
			vs := make([]string, 0, len(l.Values))
			for _, v := range l.Values {
				vs = append(vs, "`"+v+"`")
			}
			s += ": " + strings.Join(vs, ", ")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// escapeCell keeps a help string from ending the table cell early.
func escapeCell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// ExtractTable returns the text between TableBegin and TableEnd in doc,
// without the markers and without the line break that follows TableBegin,
// so that a current table equals MarkdownTable. It returns an error wrapping ErrNoTable when
// either marker is missing or they are out of order.
func ExtractTable(doc string) (string, error) {
	_, inner, _, err := splitTable(doc)
	if err != nil {
		return "", err
	}
	return inner, nil
}

// ReplaceTable returns doc with the text between the markers replaced by
// MarkdownTable. It returns an error wrapping ErrNoTable when the markers
// are missing.
func ReplaceTable(doc string) (string, error) {
	before, _, after, err := splitTable(doc)
	if err != nil {
		return "", err
	}
	return before + "\n" + MarkdownTable() + after, nil
}

// splitTable cuts doc into the part up to and including TableBegin, the
// table, and the part from TableEnd on.
func splitTable(doc string) (before, inner, after string, err error) {
	i := strings.Index(doc, TableBegin)
	if i < 0 {
		return "", "", "", fmt.Errorf("extract table: %w: %q", ErrNoTable, TableBegin)
	}
	start := i + len(TableBegin)
	j := strings.Index(doc[start:], TableEnd)
	if j < 0 {
		return "", "", "", fmt.Errorf("extract table: %w: %q after %q",
			ErrNoTable, TableEnd, TableBegin)
	}
	end := start + j
	inner = strings.TrimPrefix(doc[start:end], "\n")
	return doc[:start], inner, doc[end:], nil
}
