// Package promrules holds only tests: they check ctwatch's Prometheus
// rules with promtool, Prometheus's own checker and rule unit tester, and
// that the unit tests cover every alert both firing and staying quiet.
package promrules

import (
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

const (
	rulesFile = "ctwatch-rules.yml"
	testsFile = "ctwatch-rules.test.yml"
)

// promtool runs promtool with args in this directory and fails the test,
// with promtool's output, when it exits non-zero.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	privtest.RequireCommand(t, "promtool")
	out, err := exec.Command("promtool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	out := promtool(t, "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules printed no SUCCESS:\n%s", out)
	}
	t.Log(strings.TrimSpace(out))
}

func TestPromtoolTestRules(t *testing.T) {
	out := promtool(t, "test", "rules", testsFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules printed no SUCCESS:\n%s", out)
	}
}

// TestPromtoolTestRulesCatchesAFault makes sure the unit tests can fail:
// with the late-answer threshold raised tenfold, the case that expects
// CtwatchLateAnswersRising to fire must break.
func TestPromtoolTestRulesCatchesAFault(t *testing.T) {
	privtest.RequireCommand(t, "promtool")
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	const threshold = "job_instance:ctwatch_late_drops_per_flow:ratio_rate5m > 0.01"
	if !strings.Contains(string(rules), threshold) {
		t.Fatalf("%s no longer contains %q; update this test", rulesFile, threshold)
	}
	tests, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	broken := strings.Replace(string(rules), threshold,
		"job_instance:ctwatch_late_drops_per_flow:ratio_rate5m > 0.1", 1)
	if err := os.WriteFile(dir+"/"+rulesFile, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/"+testsFile, tests, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("promtool", "test", "rules", testsFile)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("promtool test rules passed with a broken threshold:\n%s", out)
	}
	if !strings.Contains(string(out), "CtwatchLateAnswersRising") {
		t.Errorf("failure does not name the broken alert:\n%s", out)
	}
}

// TestEveryAlertTested reads both files and checks that each alert has a
// unit test in which it fires and one in which it stays quiet, and that
// no test names an alert the rules do not define.
func TestEveryAlertTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, rulesFile, &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, testsFile, &tests)

	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				quiet[a.Alertname]++
			}
		}
	}
	defined := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			defined[r.Alert] = true
			if fires[r.Alert] == 0 {
				t.Errorf("%s: no unit test in which it fires", r.Alert)
			}
			if quiet[r.Alert] == 0 {
				t.Errorf("%s: no unit test in which it stays quiet", r.Alert)
			}
		}
	}
	// The alerts the dashboard issue asks for, by name.
	for _, want := range []string{
		"CtwatchLateAnswersRising", "CtwatchUnsolicitedBurst",
		"CtwatchConntrackEventLoss", "CtwatchSourceDown", "CtwatchSourceSilent",
	} {
		if !defined[want] {
			t.Errorf("%s is not defined in %s", want, rulesFile)
		}
	}
	var names []string
	for n := range fires {
		names = append(names, n)
	}
	for n := range quiet {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !defined[n] {
			t.Errorf("%s tests %s, which %s does not define", testsFile, n, rulesFile)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
