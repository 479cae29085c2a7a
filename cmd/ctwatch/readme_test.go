package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"

	"github.com/ctwatch/ctwatch/internal/metrics/metricstest"
)

var update = flag.Bool("update", false, "rewrite the generated tables in README.md")

const (
	flagsBegin = "<!-- flags table: generated from cmd/ctwatch; do not edit -->"
	flagsEnd   = "<!-- end of flags table -->"
)

// flagsMarkdown renders every command and flag of the CLI, as the README
// documents them.
func flagsMarkdown() string {
	m := newCLI(io.Discard, io.Discard).app.Model()
	var b strings.Builder
	row := func(f *kingpin.FlagModel) {
		name := "--" + f.Name
		if !f.IsBoolFlag() {
			name += "=" + strings.ToUpper(strings.NewReplacer(".", "-").Replace(f.Name))
		}
		def := strings.Join(f.Default, ", ")
		if def != "" {
			def = "`" + def + "`"
		}
		help := strings.ReplaceAll(f.Help, "|", `\|`)
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, def, help)
	}
	fmt.Fprintf(&b, "\nGlobal flags:\n\n| flag | default | meaning |\n|---|---|---|\n")
	for _, f := range m.Flags {
		if f.Hidden || f.Name == "help" || f.Name == "version" {
			continue
		}
		row(f)
	}
	for _, c := range m.Commands {
		if c.Hidden || c.Name == "help" {
			continue
		}
		fmt.Fprintf(&b, "\n`ctwatch %s", c.Name)
		for _, a := range c.Args {
			fmt.Fprintf(&b, " [%s]", strings.ToUpper(a.Name))
		}
		fmt.Fprintf(&b, "`: %s\n", c.Help)
		var flags []*kingpin.FlagModel
		for _, f := range c.Flags {
			if !f.Hidden {
				flags = append(flags, f)
			}
		}
		if len(flags) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n| flag | default | meaning |\n|---|---|---|\n")
		for _, f := range flags {
			row(f)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// TestREADMEFlags fails when the README's flag tables and the CLI differ.
func TestREADMEFlags(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, flagsBegin), strings.Index(doc, flagsEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers %q ... %q", flagsBegin, flagsEnd)
	}
	got := doc[i+len(flagsBegin) : j]
	want := flagsMarkdown()
	if got == want {
		return
	}
	if *update {
		doc = doc[:i+len(flagsBegin)] + want + doc[j:]
		if err := os.WriteFile("../../README.md", []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md flag tables differ from the code; run go test ./cmd/ctwatch -run README -update\nwant:\n%s", want)
}

// TestREADMEMetrics fails when the README's metric table and the code
// differ.
func TestREADMEMetrics(t *testing.T) {
	metricstest.CheckMarkdownTable(t, "../../README.md", *update)
}
