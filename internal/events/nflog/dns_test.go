package nflog

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ctwatch/ctwatch/internal/events"
)

func TestDecodeDNS(t *testing.T) {
	answerHeader := events.DNSInfo{ID: 0xbeef, Response: true, Flags: "qr rd ra"}
	withName := func(name, typ string) *events.DNSInfo {
		d := answerHeader
		d.Name, d.Type = name, typ
		return &d
	}

	tests := []struct {
		file    string
		want    *events.DNSInfo
		wantErr error
	}{
		{file: "answer", want: withName("late.example.", "A")},
		{file: "query", want: &events.DNSInfo{ID: 0x0102, Flags: "rd",
			Name: "www.example.", Type: "AAAA"}},
		{file: "no-question", want: &events.DNSInfo{ID: 0x0203, Response: true,
			Rcode: 1, Flags: "qr"}},
		{file: "all-flags", want: &events.DNSInfo{ID: 0x0304, Response: true,
			Opcode: 4, Rcode: 5, Flags: "qr aa tc rd ra z ad cd",
			Name: "flags.example.", Type: "TXT"}},
		{file: "odd-name", want: &events.DNSInfo{ID: 0x0405, Flags: "rd",
			Name: `we\.ird\ label.example.`, Type: "TYPE65280"}},
		{file: "update", want: &events.DNSInfo{ID: 0x0506, Opcode: 5,
			Name: "example.", Type: "SOA"}},
		{file: "header-only", want: withName("", ""), wantErr: ErrDNSTruncated},
		{file: "name-cut", want: withName("", ""), wantErr: ErrDNSTruncated},
		{file: "type-cut", want: withName("late.example.", ""), wantErr: ErrDNSTruncated},
		{file: "pointer-loop", want: &events.DNSInfo{ID: 0x0607, Response: true,
			Flags: "qr rd ra"}, wantErr: ErrDNSMalformed},
		{file: "reserved-label", want: &events.DNSInfo{ID: 0x0607, Response: true,
			Flags: "qr rd ra"}, wantErr: ErrDNSMalformed},
		{file: "eleven-bytes", wantErr: ErrShortDNS},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := DecodeDNS(readFixture(t, "dns", tt.file))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DNSInfo mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
