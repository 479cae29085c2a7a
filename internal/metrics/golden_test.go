package metrics

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

var update = flag.Bool("update", false, "rewrite testdata/scrape.golden.prom from the fixed events")

const goldenScrape = "testdata/scrape.golden.prom"

// scrapeText renders what reg exports in the text exposition format. With
// withBuildInfo false it leaves out ctwatch_build_info, whose labels
// depend on the toolchain and the build flags.
func scrapeText(t *testing.T, reg prometheus.Gatherer, withBuildInfo bool) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if !withBuildInfo && mf.GetName() == nameBuildInfo {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	return buf.Bytes()
}

// fixedRegistry is the registry the golden scrape is made from: every
// source configured with fixed statistics, the fake /proc of testdata,
// and the fixed events.
func fixedRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, fixedOptions("testdata/proc"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	feedFixedEvents(m)
	return reg
}

// TestGoldenScrape compares the scrape with testdata/scrape.golden.prom.
// Regenerate it with go test ./internal/metrics -run TestGoldenScrape
// -update, never by hand, and review the diff.
func TestGoldenScrape(t *testing.T) {
	got := scrapeText(t, fixedRegistry(t), false)
	if *update {
		if err := os.WriteFile(goldenScrape, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenScrape)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("scrape differs from %s (-want +got):\n%s", goldenScrape, diff)
	}
}

// TestPromtoolCheckMetrics lints the checked-in golden scrape and a live
// scrape (with ctwatch_build_info) with promtool, Prometheus's own linter.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		privtest.Unavailable(t, "needs promtool (apt-get install prometheus): %v", err)
	}
	golden, err := os.ReadFile(goldenScrape)
	if err != nil {
		t.Fatal(err)
	}
	inputs := []struct {
		name string
		text []byte
	}{
		{"golden", golden},
		{"live", scrapeText(t, fixedRegistry(t), true)},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(in.text)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics: %v\n%s", err, out)
			}
		})
	}
}
