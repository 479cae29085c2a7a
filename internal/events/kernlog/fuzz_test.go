package kernlog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzParseLine feeds arbitrary lines to the parser and checks the
// invariants callers rely on; Firewall records must also survive a
// format and reparse round trip.
func FuzzParseLine(f *testing.F) {
	for _, l := range corpusLines(f) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		res, err := testParser().Parse(line, &r)
		checkInvariants(t, res, err, &r)

		// Without the string cache the result must be the same.
		var r2 Record
		res2, err2 := testParser().parse(line, &r2, false)
		if res2 != res || r2 != r || (err == nil) != (err2 == nil) {
			t.Fatalf("cache changes the result: %v %+v / %v %+v", res, r, res2, r2)
		}
		if res == Firewall {
			checkRoundTrip(t, &r)
		}
	})
}

func checkInvariants(t *testing.T, res Result, err error, r *Record) {
	t.Helper()
	switch res {
	case NotFirewall, Firewall:
		if err != nil {
			t.Fatalf("%v with error %v", res, err)
		}
	case Malformed:
		if err == nil {
			t.Fatal("malformed without an error")
		}
	default:
		t.Fatalf("result %d", res)
	}
	if !r.Time.IsZero() && r.Time.Location() != time.UTC {
		t.Fatalf("time %v not in UTC", r.Time)
	}
	if res != Firewall {
		return
	}
	if !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4() != r.Dst.Is4() ||
		r.Src.Zone() != "" || r.Dst.Zone() != "" {
		t.Fatalf("addresses %v -> %v", r.Src, r.Dst)
	}
	if r.HasPorts && r.ProtoNum != 6 && r.ProtoNum != 17 && r.ProtoNum != 136 {
		t.Fatalf("ports on protocol %d", r.ProtoNum)
	}
	if !r.HasPorts && (r.SrcPort != 0 || r.DstPort != 0) {
		t.Fatalf("ports %d/%d without HasPorts", r.SrcPort, r.DstPort)
	}
	if r.HasICMP && r.ProtoNum != 1 && r.ProtoNum != 58 {
		t.Fatalf("ICMP type on protocol %d", r.ProtoNum)
	}
	if r.HasInner && !r.HasICMP {
		t.Fatal("quoted packet outside an ICMP error")
	}
	if strings.TrimSpace(r.Prefix) != r.Prefix {
		t.Fatalf("prefix %q not trimmed", r.Prefix)
	}
	if d, ok := r.Drop(); ok && (d.Proto != 17 || !d.Src.IsValid() || !d.Dst.IsValid()) {
		t.Fatalf("Drop() = %+v", d)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("JSON: %v", err)
	}
}

// FuzzJoiner feeds arbitrary text, split into lines, through a Joiner:
// no line may be lost, only single spaces may be added, and the limits
// must hold.
func FuzzJoiner(f *testing.F) {
	for _, c := range readCorpus(f) {
		f.Add([]byte(strings.Join(c.lines, "\n")), uint8(0))
	}
	f.Add([]byte("DROP IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=1 TOS=0x00 PREC=0x00 TTL=\n"+
		"1 ID=0 PROTO=UDP SPT=53\nDPT=1 LEN=9"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, maxLines uint8) {
		j := Joiner{MaxLines: int(maxLines % 20), MaxBytes: 2048}
		limit := j.MaxLines
		if limit == 0 {
			limit = 16
		}
		lines := bytes.Split(data, []byte("\n"))
		var in, out []byte
		total := 0
		take := func(b []byte, n int, ok bool) {
			if !ok {
				return
			}
			if n < 1 || n > limit {
				t.Fatalf("joined %d lines, limit %d", n, limit)
			}
			if n > 1 && len(b) > j.MaxBytes {
				t.Fatalf("joined line of %d bytes, limit %d", len(b), j.MaxBytes)
			}
			total += n
			out = append(out, b...)
			var r Record
			res, err := ParseLine(b, &r)
			checkInvariants(t, res, err, &r)
		}
		for _, l := range lines {
			in = append(in, trimLine(l)...)
			take(j.Push(l))
		}
		take(j.Flush())
		if total != len(lines) {
			t.Fatalf("%d physical lines in, %d out", len(lines), total)
		}
		noSpace := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(" "), nil) }
		if !bytes.Equal(noSpace(in), noSpace(out)) {
			t.Fatalf("bytes changed:\n%q\n%q", in, out)
		}
		if len(out) < len(in) {
			t.Fatalf("bytes lost")
		}
	})
}
