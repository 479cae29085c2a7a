package kernlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden* from the current output")

const (
	corpusPath = "testdata/corpus.txt"
	goldenPath = "testdata/corpus.golden.jsonl"
)

// corpusCase is one named case of testdata/corpus.txt.
type corpusCase struct {
	name  string
	lines []string
}

// readCorpus reads the corpus: "## name" starts a case, and every line
// up to the next case (blank lines included) is one of its physical
// lines. Lines starting with "# " before the first case are comments.
func readCorpus(t testing.TB) []corpusCase {
	t.Helper()
	data, err := os.ReadFile(corpusPath)
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			cases = append(cases, corpusCase{name: strings.TrimPrefix(line, "## ")})
		case len(cases) == 0:
			if line != "" && !strings.HasPrefix(line, "# ") {
				t.Fatalf("corpus: line before the first case: %q", line)
			}
		default:
			c := &cases[len(cases)-1]
			c.lines = append(c.lines, line)
		}
	}
	return cases
}

// testParser is the parser the golden output is made with: UTC for
// zone-less stamps and a fixed reference date for the missing year.
func testParser() *Parser {
	return &Parser{
		Location: time.UTC,
		Now: func() time.Time {
			return time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
		},
	}
}

// goldenEntry is one logical line of the golden output.
type goldenEntry struct {
	Case   string  `json:"case"`
	Lines  int     `json:"lines"`
	Result Result  `json:"result"`
	Error  string  `json:"error,omitempty"`
	Record *Record `json:"record,omitempty"`
}

// runCase feeds a case through a Joiner and a Parser, as the followers
// do, and returns one entry per logical line.
func runCase(c corpusCase) []goldenEntry {
	p := testParser()
	var j Joiner
	var out []goldenEntry
	emit := func(line []byte, n int) {
		var rec Record
		res, err := p.Parse(line, &rec)
		e := goldenEntry{Case: c.name, Lines: n, Result: res}
		if err != nil {
			e.Error = err.Error()
		}
		if res != NotFirewall {
			e.Record = &rec
		}
		out = append(out, e)
	}
	for _, l := range c.lines {
		if line, n, ok := j.Push([]byte(l)); ok {
			emit(line, n)
		}
	}
	if line, n, ok := j.Flush(); ok {
		emit(line, n)
	}
	return out
}

func marshalEntries(t *testing.T, entries []goldenEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("%s: %v", e.Case, err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// TestCorpus compares the parse of every corpus case with the golden
// file. Run with -update to rewrite the golden file after a deliberate
// change, and review the diff.
func TestCorpus(t *testing.T) {
	cases := readCorpus(t)
	if len(cases) < 40 {
		t.Fatalf("corpus has %d cases, want at least 40", len(cases))
	}

	if *update {
		var all []goldenEntry
		for _, c := range cases {
			all = append(all, runCase(c)...)
		}
		if err := os.WriteFile(goldenPath, marshalEntries(t, all), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenPath)
	}

	want := readGolden(t)
	seen := make(map[string]bool)
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("corpus: case %q appears twice", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			got := marshalEntries(t, runCase(c))
			exp := want[c.name]
			if !bytes.Equal(got, exp) {
				t.Errorf("output differs from %s\ngot:\n%s\nwant:\n%s", goldenPath, got, exp)
			}
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s has case %q that the corpus lacks; run with -update", goldenPath, name)
		}
	}
}

// readGolden returns the golden lines grouped by case, in file order.
func readGolden(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	defer f.Close()
	out := make(map[string][]byte)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Case string `json:"case"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", goldenPath, err)
		}
		out[e.Case] = append(append(out[e.Case], sc.Bytes()...), '\n')
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// corpusLines returns every physical line of the corpus, for fuzz seeds
// and benchmarks.
func corpusLines(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, c := range readCorpus(t) {
		for _, l := range c.lines {
			out = append(out, []byte(l))
		}
	}
	return out
}
