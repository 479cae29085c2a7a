package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestParseLog(t *testing.T) {
	const input = `Dec  4 04:11:41 ns1 kernel: [  307.757925] dns-drop: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.18.0.2 DST=198.18.1.1 LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=UDP SPT=53 DPT=40000 LEN=56
Dec  4 04:11:42 ns1 kernel: [  308.1] audit: something unrelated
<4>1 2026-12-04T04:11:43.5Z ns1 kernel - - - [wan-lan-D]IN=eth0 OUT= SRC=fd00::2 DST=fd00::1 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=12345 PROTO=UDP SPT=5353 DPT=5353 LEN=56
Dec  4 04:11:44 ns1 kernel: dns-drop: IN=eth0 OUT= SRC=198.18.0.300 DST=198.18.1.1 LEN=76 TTL=64 PROTO=UDP SPT=53 DPT=40000 LEN=56
`
	tests := []struct {
		name      string
		args      []string
		records   int
		summary   string
		malformed int
	}{
		{"firewall records only", []string{"parse-log", "-"}, 2,
			"4 lines: 2 firewall records, 1 other lines skipped, 1 malformed records", 0},
		{"with malformed", []string{"parse-log", "--malformed"}, 2,
			"2 firewall records", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := env{stdin: strings.NewReader(input), stdout: &stdout, stderr: &stderr}
			if err := e.run(context.Background(), tt.args); err != nil {
				t.Fatalf("run: %v (stderr %s)", err, stderr.String())
			}
			var records, malformed int
			sc := bufio.NewScanner(&stdout)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("not JSON: %q: %v", sc.Text(), err)
				}
				if _, ok := m["malformed"]; ok {
					malformed++
					if m["error"] == "" {
						t.Errorf("malformed record without error: %v", m)
					}
					continue
				}
				records++
				if records == 1 {
					if m["src"] != "198.18.0.2" || m["src_port"] != float64(53) || m["prefix"] != "dns-drop:" || m["in_iface"] != "eth0" {
						t.Errorf("first record: %v", m)
					}
				}
				if records == 2 && (m["src_port"] != float64(5353) || m["prefix"] != "[wan-lan-D]") {
					t.Errorf("second record: %v", m)
				}
			}
			if records != tt.records || malformed != tt.malformed {
				t.Errorf("got %d records and %d malformed, want %d and %d", records, malformed, tt.records, tt.malformed)
			}
			if !strings.Contains(stderr.String(), tt.summary) {
				t.Errorf("summary %q lacks %q", stderr.String(), tt.summary)
			}
		})
	}
}

func TestParseLogMissingFile(t *testing.T) {
	var stdout, stderr bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	err := e.run(context.Background(), []string{"parse-log", "/nonexistent/kern.log"})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v, want a clear no such file error", err)
	}
}

func TestUsageErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	err := e.run(context.Background(), []string{"--bogus"})
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("err = %v (exit %d), want a usage error with exit 2", err, exitCode(err))
	}
	err = e.run(context.Background(), []string{"--output=xml"})
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("--output=xml: err = %v, want a usage error", err)
	}
}
