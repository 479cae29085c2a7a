package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report for a person: one line per check, its fix
// below it, and a closing verdict.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "ctwatch doctor: %s, UDP port %d\n\n", r.Namespace, r.Port)
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.Check))
	}
	indent := strings.Repeat(" ", 2+4+2+width+2)
	for _, res := range r.Results {
		label := res.Status.String()
		if res.Status == Fail {
			label = "FAIL"
		}
		detail := wrap(res.Detail, max(textWidth-len(indent), 40))
		fmt.Fprintf(&b, "  %-4s  %-*s  %s\n", label, width, res.Check, detail[0])
		for _, line := range detail[1:] {
			fmt.Fprintf(&b, "%s%s\n", indent, line)
		}
		for i, line := range res.Fix {
			lead := "     "
			if i == 0 {
				lead = "fix: "
			}
			fmt.Fprintf(&b, "%s%s%s\n", indent, lead, line)
		}
	}
	b.WriteString("\n")
	switch {
	case r.Failed > 0:
		fmt.Fprintf(&b, "%s, %s: ctwatch cannot work until the failures are fixed\n",
			plural(r.Failed, "check failed", "checks failed"), plural(r.Warnings, "warning", "warnings"))
	case r.Warnings > 0:
		fmt.Fprintf(&b, "%s: ctwatch works, less precisely\n", plural(r.Warnings, "warning", "warnings"))
	default:
		b.WriteString("all checks passed\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// textWidth is where the text report wraps details. Fix lines are never
// wrapped: they are commands to copy.
const textWidth = 100

// wrap splits text into lines of at most width columns at spaces; a word
// longer than width gets a line of its own.
func wrap(text string, width int) []string {
	var (
		lines []string
		cur   strings.Builder
	)
	for _, word := range strings.Fields(text) {
		if cur.Len() > 0 && cur.Len()+1+len(word) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	return append(lines, cur.String())
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// WriteJSON writes the report as one indented JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
