package metricstest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/internal/metrics"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
	msgs   []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, format)
}

// Fatalf records the failure; CheckMarkdownTable returns after each Fatalf
// so that it also works with a TB whose Fatalf does not stop the test.
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func writeDoc(t *testing.T, table string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "README.md")
	doc := "# ctwatch\n\n## Metrics\n\n" + metrics.TableBegin + "\n" + table +
		metrics.TableEnd + "\n\nMore text.\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckMarkdownTable(t *testing.T) {
	tests := []struct {
		name     string
		table    string
		wantFail bool
	}{
		{"current", metrics.MarkdownTable(), false},
		{"stale", "| Metric | Type |\n|---|---|\n", true},
		{"missing row", strings.SplitAfterN(metrics.MarkdownTable(), "\n", 4)[0], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			CheckMarkdownTable(r, writeDoc(t, tt.table), false)
			if r.failed != tt.wantFail {
				t.Errorf("failed = %v (%v), want %v", r.failed, r.msgs, tt.wantFail)
			}
		})
	}
}

func TestCheckMarkdownTableUpdate(t *testing.T) {
	path := writeDoc(t, "stale\n")
	CheckMarkdownTable(t, path, true)
	CheckMarkdownTable(t, path, false)

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "# ctwatch\n") || !strings.HasSuffix(string(b), "More text.\n") {
		t.Errorf("update changed text outside the table:\n%s", b)
	}
}

func TestCheckMarkdownTableNoMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, []byte("# no table\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, update := range []bool{false, true} {
		r := &recorder{TB: t}
		CheckMarkdownTable(r, path, update)
		if !r.failed {
			t.Errorf("update=%v: no failure for a document without markers", update)
		}
	}
}
