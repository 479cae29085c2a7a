package kernlog

import (
	"strings"
	"testing"
)

// joinAll pushes lines through a Joiner and returns the logical lines
// and the physical-line count of each.
func joinAll(j *Joiner, lines []string) (out []string, counts []int) {
	for _, l := range lines {
		if b, n, ok := j.Push([]byte(l)); ok {
			out, counts = append(out, string(b)), append(counts, n)
		}
	}
	if b, n, ok := j.Flush(); ok {
		out, counts = append(out, string(b)), append(counts, n)
	}
	return out, counts
}

func TestJoiner(t *testing.T) {
	const rec = "Dec  4 04:11:41 ns1 kernel: DROP " + body
	cut := func(s string, at ...int) []string {
		var parts []string
		prev := 0
		for _, a := range at {
			parts = append(parts, s[prev:a])
			prev = a
		}
		return append(parts, s[prev:])
	}
	spt := strings.Index(rec, "SPT=53") + 5
	dpt := strings.Index(rec, " DPT=")
	tests := []struct {
		name  string
		in    []string
		want  []string
		count []int
	}{
		{"whole lines pass", []string{rec, rec}, []string{rec, rec}, []int{1, 1}},
		{"cut mid-port", cut(rec, spt), []string{rec}, []int{2}},
		{"cut at 80 columns", cut(rec, 80, 160), []string{rec}, []int{3}},
		{"stripped space at a token boundary",
			[]string{rec[:dpt], rec[dpt+1:]}, []string{rec}, []int{2}},
		{"new record is not a continuation", []string{rec[:150], rec},
			[]string{rec[:150], rec}, []int{1, 1}},
		{"unrelated line after a record",
			[]string{rec, "Dec  4 04:11:42 ns1 systemd[1]: Started foo."},
			[]string{rec, "Dec  4 04:11:42 ns1 systemd[1]: Started foo."}, []int{1, 1}},
		{"header-less prose is not a continuation",
			[]string{rec, "device eth0 entered promiscuous mode"},
			[]string{rec, "device eth0 entered promiscuous mode"}, []int{1, 1}},
		{"kmsg dictionary line", []string{"4,1,2,-;" + body, " SUBSYSTEM=net"},
			[]string{"4,1,2,-;" + body, " SUBSYSTEM=net"}, []int{1, 1}},
		{"single word joins a record cut mid-token",
			[]string{rec[:len(rec)-3], "56 "}, []string{rec}, []int{2}},
		{"single word does not join a complete record",
			[]string{rec, "hello"}, []string{rec, "hello"}, []int{1, 1}},
		{"continuation of a non-record line is not joined",
			[]string{"hello world", "DPT=53 LEN=40"},
			[]string{"hello world", "DPT=53 LEN=40"}, []int{1, 1}},
		{"blank line ends a record", []string{rec[:spt], "", "3 DPT=1"},
			[]string{rec[:spt], "", "3 DPT=1"}, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j Joiner
			got, counts := joinAll(&j, tt.in)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			if len(counts) != len(tt.count) {
				t.Fatalf("counts %v, want %v", counts, tt.count)
			}
			for i := range counts {
				if counts[i] != tt.count[i] {
					t.Errorf("counts %v, want %v", counts, tt.count)
				}
			}
		})
	}
}

func TestJoinerLimits(t *testing.T) {
	const rec = "DROP " + body
	j := Joiner{MaxLines: 2}
	var in []string
	for i := 0; i < len(rec); i += 10 {
		in = append(in, rec[i:min(i+10, len(rec))])
	}
	got, counts := joinAll(&j, in)
	for i, n := range counts {
		if n > 2 {
			t.Errorf("line %d joins %d physical lines, cap is 2", i, n)
		}
	}
	if strings.Join(got, "") != rec {
		t.Errorf("bytes lost: %q", got)
	}
}

func TestJoinerPendingCut(t *testing.T) {
	const rec = "DROP " + body
	var j Joiner
	j.Push([]byte(rec[:60]))
	if !j.PendingCut() {
		t.Error("cut record not reported as cut")
	}
	j.Flush()
	j.Push([]byte(rec))
	if j.PendingCut() {
		t.Error("complete record reported as cut")
	}
}
