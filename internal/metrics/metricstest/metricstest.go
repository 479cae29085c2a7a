// Package metricstest helps tests outside internal/metrics keep documents
// in step with the metrics ctwatch exports.
package metricstest

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ctwatch/ctwatch/internal/metrics"
)

// CheckMarkdownTable fails t when the metric table between
// metrics.TableBegin and metrics.TableEnd in the Markdown file at path
// differs from metrics.MarkdownTable. With update true it rewrites the
// table in the file instead, leaving the rest of the file as it was; a
// README test wires that to its -update flag.
func CheckMarkdownTable(t testing.TB, path string, update bool) {
	t.Helper()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
		return
	}
	doc := string(b)

	if update {
		next, err := metrics.ReplaceTable(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
			return
		}
		if next != doc {
			if err := os.WriteFile(path, []byte(next), 0o644); err != nil {
				t.Fatalf("update %s: %v", path, err)
			}
		}
		return
	}

	got, err := metrics.ExtractTable(doc)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
		return
	}
	if diff := cmp.Diff(metrics.MarkdownTable(), got); diff != "" {
		t.Errorf("metric table in %s differs from the code (-code +document); "+
			"regenerate it with -update:\n%s", path, diff)
	}
}
