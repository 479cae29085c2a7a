package kernlog

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

// BenchmarkParseLine parses every physical line of the corpus (all
// header formats, records and non-records) with one Parser, as a
// follower does.
func BenchmarkParseLine(b *testing.B) {
	lines := corpusLines(b)
	size := 0
	for _, l := range lines {
		size += len(l)
	}
	p := testParser()
	var r Record
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		p.Parse(lines[n%len(lines)], &r)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParseLineTypical parses the common case: a syslog line with a
// dmesg stamp and a UDP record.
func BenchmarkParseLineTypical(b *testing.B) {
	line := []byte("Dec  4 04:11:41 ns1 kernel: [  307.757925] DNS-LATE: " + body)
	p := testParser()
	var r Record
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		p.Parse(line, &r)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParseLineNotFirewall parses a line that is no LOG record.
func BenchmarkParseLineNotFirewall(b *testing.B) {
	line := []byte("Dec  4 04:11:41 ns1 kernel: [  307.757925] e1000e 0000:00:19.0 " +
		"eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx")
	p := testParser()
	var r Record
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		p.Parse(line, &r)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// writeLoad writes n lines of a busy firewall's kernel log: UDP answers
// from port 53 (some to port 5353), mDNS, TCP, ICMP errors quoting DNS
// packets, IPv6, and unrelated kernel messages. It returns how many lines
// are UDP records from source port 53.
func writeLoad(tb testing.TB, path string, n int) (dns int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	base := time.Date(2026, 12, 4, 4, 0, 0, 0, time.UTC)
	var line []byte
	for i := range n {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		line = append(line[:0], ts.Format(time.Stamp)...)
		line = append(line, " ns1 kernel: ["...)
		line = strconv.AppendFloat(line, 300+float64(i)/1000, 'f', 6, 64)
		line = append(line, "] "...)
		r := Record{
			Prefix:  "DNS-DROP:",
			InIface: "eth0",
			MAC:     "52:54:00:ab:cd:ef:52:54:00:12:34:56:08:00",
			Src:     netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}),
			Dst:     netip.AddrFrom4([4]byte{198, 18, 0, 10}),
			Length:  76, TTL: 64, ID: uint32(i & 0xffff), Flags: FlagDF,
			Proto: "UDP", ProtoNum: 17, HasPorts: true,
			SrcPort: 53, DstPort: uint16(1024 + i%60000), UDPLength: 56,
		}
		switch i % 10 {
		case 0, 1, 2, 3, 4:
			dns++
		case 5:
			r.SrcPort = 5353
		case 6:
			r.Proto, r.ProtoNum, r.UDPLength = "TCP", 6, 0
			r.SrcPort, r.Flags = 443, FlagDF|FlagACK|FlagSYN
		case 7:
			r.Proto, r.ProtoNum, r.HasPorts, r.SrcPort, r.DstPort = "ICMP", 1, false, 0, 0
			r.UDPLength, r.HasICMP, r.ICMPType, r.ICMPCode = 0, true, 3, 3
			r.HasInner = true
			r.Inner = InnerPacket{Src: r.Dst, Dst: r.Src, Proto: "UDP",
				ProtoNum: 17, SrcPort: 53, DstPort: 40000}
		case 8:
			r.Src = netip.MustParseAddr("2001:db8::35")
			r.Dst = netip.MustParseAddr("fd00::a")
			r.FlowLabel = 742913
			dns++
		case 9:
			line = append(line, "e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex"...)
			w.Write(append(line, '\n'))
			continue
		}
		line = r.AppendLog(line)
		if r.Src.Is6() {
			// Print IPv6 addresses as the kernel's %pI6 does.
			line = bytes.Replace(line, []byte("2001:db8::35"),
				[]byte("2001:0db8:0000:0000:0000:0000:0000:0035"), 1)
			line = bytes.Replace(line, []byte("fd00::a "),
				[]byte("fd00:0000:0000:0000:0000:0000:0000:000a "), 1)
		}
		w.Write(append(line, '\n'))
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return dns
}

// BenchmarkVersusGrep reads the same generated 1M-line log with
// ReadStream (file reading, line splitting, joining, parsing, counting)
// and with grep -c 'SPT=53 ', and reports both rates. grep only counts
// substrings, so it also counts ICMP errors that quote a DNS packet; the
// dns-records and grep-matches metrics show the difference.
func BenchmarkVersusGrep(b *testing.B) {
	privtest.RequireCommand(b, "grep")
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "kern.log")
	want := writeLoad(b, path, n)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}

	var parseTime, grepTime time.Duration
	var dns, grepCount int
	for b.Loop() {
		start := time.Now()
		out, err := exec.Command("grep", "-c", "SPT=53 ", path).Output()
		grepTime += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		grepCount, _ = strconv.Atoi(strings.TrimSpace(string(out)))

		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		dns = 0
		start = time.Now()
		err = ReadStream(context.Background(), f, Options{Parser: testParser()},
			func(e *Entry) error {
				if e.Result == Firewall && e.Record.ProtoNum == 17 && e.Record.SrcPort == 53 {
					dns++
				}
				return nil
			})
		parseTime += time.Since(start)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	if dns != want {
		b.Fatalf("parser counted %d DNS records, want %d", dns, want)
	}
	iters := float64(b.N)
	b.ReportMetric(iters*n/parseTime.Seconds(), "parser-lines/s")
	b.ReportMetric(iters*n/grepTime.Seconds(), "grep-lines/s")
	b.ReportMetric(float64(dns), "dns-records")
	b.ReportMetric(float64(grepCount), "grep-matches")
	b.ReportMetric(float64(st.Size())/n, "bytes/line")
}
