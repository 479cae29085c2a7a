package lab

import (
	"testing"
	"time"
)

func TestModel(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const timeout = time.Second
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	tests := []struct {
		name       string
		packets    []flowPacket
		want       []verdict
		wantExpiry time.Time
	}{
		{
			name:       "unanswered",
			wantExpiry: at(1000),
		},
		{
			name:       "answered on time",
			packets:    []flowPacket{{at: at(100)}},
			want:       []verdict{{class: Accepted, expiry: at(1000)}},
			wantExpiry: at(1100),
		},
		{
			name:       "late and unanswered",
			packets:    []flowPacket{{at: at(1600)}},
			want:       []verdict{{class: Late, expiry: at(1000)}},
			wantExpiry: at(1000),
		},
		{
			name:    "duplicate after expiry",
			packets: []flowPacket{{at: at(100)}, {at: at(1700)}},
			want: []verdict{
				{class: Accepted, expiry: at(1000)},
				{class: Late, expiry: at(1100), answered: true, seenReply: true},
			},
			wantExpiry: at(1100),
		},
		{
			name:    "late answers never revive the entry",
			packets: []flowPacket{{at: at(1500)}, {at: at(1600)}},
			want: []verdict{
				{class: Late, expiry: at(1000)},
				{class: Late, expiry: at(1000)},
			},
			wantExpiry: at(1000),
		},
		{
			name:    "tracked answer extends the flow but does not answer it",
			packets: []flowPacket{{at: at(500), oversize: true}, {at: at(1300)}, {at: at(2600)}},
			want: []verdict{
				{class: Tracked, expiry: at(1000)},
				{class: Accepted, expiry: at(1500), seenReply: true},
				{class: Late, expiry: at(2300), answered: true, seenReply: true},
			},
			wantExpiry: at(2300),
		},
		{
			name:    "near the expiry is ambiguous, and so is what depends on it",
			packets: []flowPacket{{at: at(950)}, {at: at(1800)}},
			want: []verdict{
				{class: Accepted, expiry: at(1000), ambiguous: true},
				// Accepted: alive until 1950. Late: dead since 1000.
				{class: Accepted, expiry: at(1950), answered: true, seenReply: true,
					ambiguous: true},
			},
			wantExpiry: at(2800),
		},
		{
			name:    "alternatives that agree are not ambiguous",
			packets: []flowPacket{{at: at(1050)}, {at: at(5000)}},
			want: []verdict{
				{class: Late, expiry: at(1000), ambiguous: true},
				{class: Late, expiry: at(1000)},
			},
			wantExpiry: at(1000),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, expiry, ambiguous := model(t0, tt.packets, timeout)
			if len(got) != len(tt.want) {
				t.Fatalf("%d verdicts, want %d", len(got), len(tt.want))
			}
			wantAmbiguous := false
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("packet %d: %+v, want %+v", i, got[i], tt.want[i])
				}
				wantAmbiguous = wantAmbiguous || tt.want[i].ambiguous
			}
			if !expiry.Equal(tt.wantExpiry) {
				t.Errorf("expiry %v, want %v", expiry.Sub(t0), tt.wantExpiry.Sub(t0))
			}
			if ambiguous != wantAmbiguous {
				t.Errorf("ambiguous = %v, want %v", ambiguous, wantAmbiguous)
			}
		})
	}
}

func TestModelBranchLimit(t *testing.T) {
	t0 := time.Now()
	var packets []flowPacket
	// Each packet lands right at the nominal expiry, doubling the
	// alternatives; the model must stay bounded and flag everything.
	for i := range 20 {
		packets = append(packets, flowPacket{at: t0.Add(time.Duration(i+1)*time.Second - time.Millisecond)})
	}
	got, _, ambiguous := model(t0, packets, time.Second)
	if !ambiguous {
		t.Error("not ambiguous")
	}
	for i, v := range got {
		if !v.ambiguous {
			t.Errorf("packet %d not ambiguous", i)
		}
	}
}
