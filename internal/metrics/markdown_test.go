package metrics

import (
	"errors"
	"strings"
	"testing"
)

func TestMarkdownTable(t *testing.T) {
	table := MarkdownTable()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	docs := Descriptions()
	if len(lines) != len(docs)+2 {
		t.Fatalf("table has %d lines, want a header, a rule and %d rows", len(lines), len(docs))
	}
	for i, d := range docs {
		row := lines[i+2]
		if !strings.HasPrefix(row, "| `"+d.Name+"` | "+string(d.Type)+" | ") {
			t.Errorf("row %d = %q, want %s first", i, row, d.Name)
		}
		if got := strings.Count(row, " | "); got != 3 {
			t.Errorf("row %d has %d cell separators, want 3: %q", i, got, row)
		}
	}
	want := "| `ctwatch_drops_total` | counter | " +
		"`class`: `late`, `unsolicited`, `tracked`, `unknown`; " +
		"`source`: `nflog`, `kernel_log` |"
	if !strings.Contains(table, want) {
		t.Errorf("table lacks the row starting %q:\n%s", want, table)
	}
}

func TestExtractAndReplaceTable(t *testing.T) {
	doc := "intro\n" + TableBegin + "\nold table\n" + TableEnd + "\noutro\n"

	got, err := ExtractTable(doc)
	if err != nil || got != "old table\n" {
		t.Fatalf("ExtractTable = %q, %v; want %q", got, err, "old table\n")
	}

	next, err := ReplaceTable(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n" + TableBegin + "\n" + MarkdownTable() + TableEnd + "\noutro\n"
	if next != want {
		t.Errorf("ReplaceTable =\n%s\nwant\n%s", next, want)
	}
	if got, _ := ExtractTable(next); got != MarkdownTable() {
		t.Errorf("table after ReplaceTable differs from MarkdownTable")
	}
	if again, _ := ReplaceTable(next); again != next {
		t.Errorf("ReplaceTable is not idempotent")
	}
}

func TestExtractTableErrors(t *testing.T) {
	tests := []struct {
		name, doc string
	}{
		{"no markers", "# README\n"},
		{"no end", TableBegin + "\n| x |\n"},
		{"end before begin", TableEnd + "\n" + TableBegin + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ExtractTable(tt.doc); !errors.Is(err, ErrNoTable) {
				t.Errorf("ExtractTable err = %v, want ErrNoTable", err)
			}
			if _, err := ReplaceTable(tt.doc); !errors.Is(err, ErrNoTable) {
				t.Errorf("ReplaceTable err = %v, want ErrNoTable", err)
			}
		})
	}
}
