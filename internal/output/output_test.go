package output

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2026, 12, 4, 4, 12, 1, 123456789, time.UTC)

func verdicts() []correlate.Verdict {
	drop := func(src, dst string, source events.DropSource) events.Drop {
		return events.Drop{
			Source: source, Time: t0, Received: t0.Add(time.Millisecond), Proto: 17,
			Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst),
			InIface: "eth0", Prefix: "dns-drop:",
		}
	}
	late := drop("198.18.0.2:53", "198.18.1.1:40000", events.SourceNFLOG)
	late.DNS = &events.DNSInfo{ID: 4242, Response: true, Flags: "qr rd ra", Name: "example.lab.", Type: "A"}
	return []correlate.Verdict{
		{Drop: late, Class: correlate.Late, Answered: false, Lateness: 1234 * time.Millisecond,
			Age: 4234 * time.Millisecond, FlowID: 77, Decided: t0.Add(2 * time.Millisecond)},
		{Drop: drop("[fd00::2]:53", "[fd00::1]:40001", events.SourceKernelLog), Class: correlate.Late,
			Answered: true, Lateness: 61 * time.Second, Age: 92 * time.Second, Estimated: true, FlowID: 78,
			Decided: t0.Add(3 * time.Millisecond)},
		{Drop: drop("198.18.9.9:53", "198.18.1.1:1234", events.SourceNFLOG), Class: correlate.Unsolicited,
			Decided: t0.Add(250 * time.Millisecond)},
		{Drop: drop("198.18.0.2:53", "198.18.1.1:40002", events.SourceNFLOG), Class: correlate.Tracked,
			Age: 20 * time.Millisecond, FlowID: 79, Decided: t0.Add(250 * time.Millisecond)},
		{Drop: drop("198.18.0.2:53", "198.18.1.1:40003", events.SourceKernelLog), Class: correlate.Unknown,
			Reason: correlate.ReasonWarmUp, Decided: t0.Add(250 * time.Millisecond)},
	}
}

func TestWriterGolden(t *testing.T) {
	for _, f := range []Format{JSON, Plain} {
		t.Run(string(f), func(t *testing.T) {
			t.Setenv("TZ", "UTC")
			var buf bytes.Buffer
			w, err := NewWriter(&buf, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range verdicts() {
				w.Write(v)
			}
			if err := w.Err(); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "verdicts."+string(f)+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("output differs from %s (regenerate with -update):\n%s", golden, buf.Bytes())
			}
		})
	}
}

func TestNewWriterRejectsFormat(t *testing.T) {
	if _, err := NewWriter(&bytes.Buffer{}, "xml"); err == nil {
		t.Fatal("NewWriter accepted format xml")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriterKeepsFirstError(t *testing.T) {
	w, _ := NewWriter(failWriter{}, JSON)
	w.Write(verdicts()[0])
	w.Write(verdicts()[1])
	if err := w.Err(); err == nil {
		t.Fatal("write error was lost")
	}
}
