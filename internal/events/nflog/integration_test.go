package nflog

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/miekg/dns"

	"github.com/ctwatch/ctwatch/internal/events"
)

// TestReaderIntegration runs the Reader against the kernel in a lab of two
// namespaces. The subtests share the lab and take turns on its group.
func TestReaderIntegration(t *testing.T) {
	lab := newLab(t)

	t.Run("drops", func(t *testing.T) { testDrops(t, lab) })
	t.Run("busy group", func(t *testing.T) { testBusyGroup(t, lab) })
	t.Run("snap length", func(t *testing.T) { testSnapLen(t, lab) })
	t.Run("overflow", func(t *testing.T) { testOverflow(t, lab) })
	t.Run("close ends run", func(t *testing.T) { testCloseEndsRun(t, lab) })
	t.Run("stray deadline", func(t *testing.T) { testStrayDeadline(t, lab) })
}

func testDrops(t *testing.T, lab *testLab) {
	var captured []netlink.Message
	r := lab.newReader(t, Config{})
	r.tap = func(m netlink.Message) { captured = append(captured, m) }
	run := start(t, r)

	tests := []struct {
		name     string
		src, dst netip.AddrPort
		payload  []byte
		wantDNS  *events.DNSInfo
	}{
		{
			name:    "ipv4 answer",
			src:     netip.AddrPortFrom(lab.up4, 53),
			dst:     netip.AddrPortFrom(lab.in4, 40001),
			payload: dnsAnswer(0x1001, "late-v4.example.", dns.TypeA, dns.RcodeSuccess),
			wantDNS: &events.DNSInfo{ID: 0x1001, Response: true,
				Flags: "qr rd ra", Name: "late-v4.example.", Type: "A"},
		},
		{
			name:    "ipv6 nxdomain",
			src:     netip.AddrPortFrom(lab.up6, 53),
			dst:     netip.AddrPortFrom(lab.in6, 40002),
			payload: dnsAnswer(0x1002, "late-v6.example.", dns.TypeAAAA, dns.RcodeNameError),
			wantDNS: &events.DNSInfo{ID: 0x1002, Response: true, Rcode: 3,
				Flags: "qr rd ra", Name: "late-v6.example.", Type: "AAAA"},
		},
		{
			name:    "not dns",
			src:     netip.AddrPortFrom(lab.up4, 53),
			dst:     netip.AddrPortFrom(lab.in4, 40003),
			payload: []byte("hello"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := lab.sender(t, tt.src)
			sent := time.Now()
			if _, err := conn.WriteToUDPAddrPort(tt.payload, tt.dst); err != nil {
				t.Fatalf("send: %v", err)
			}
			d := run.next(t)

			header := 20
			if tt.src.Addr().Is6() {
				header = 40
			}
			want := events.Drop{
				Source:  events.SourceNFLOG,
				Prefix:  labPrefix,
				InIface: labInIface,
				Proto:   17,
				Src:     tt.src,
				Dst:     tt.dst,
				Length:  header + 8 + len(tt.payload),
				TTL:     64,
				DNS:     tt.wantDNS,
			}
			got := d
			got.Time, got.Received = time.Time{}, time.Time{}
			if diff := cmp.Diff(want, got, addrPorts()); diff != "" {
				t.Errorf("drop mismatch (-want +got):\n%s", diff)
			}
			checkTimes(t, sent, d)
		})
	}

	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := r.Stats()
	if st.Messages != 3 || st.Drops != 3 || st.Lost != 0 || st.Overruns != 0 ||
		st.NoTimestamp != 0 || st.IfaceErrors != 0 {
		t.Errorf("stats = %+v, want 3 messages and drops, no loss", st)
	}
	for reason, n := range st.DecodeErrors {
		want := uint64(0)
		if reason == ReasonShortDNS {
			want = 1 // "hello"
		}
		if n != want {
			t.Errorf("DecodeErrors[%v] = %d, want %d", reason, n, want)
		}
	}
	if *update {
		writeCaptures(t, captured)
	}
}

// checkTimes asserts that the kernel stamped the packet between the send
// and the read, within a few milliseconds of the send.
func checkTimes(t *testing.T, sent time.Time, d events.Drop) {
	t.Helper()
	// Strip the monotonic reading: the kernel's time is wall clock.
	sent = sent.Round(0)
	kernel := d.Time.Sub(sent)
	read := d.Received.Sub(sent)
	t.Logf("send to kernel stamp %v, send to read %v", kernel, read)
	// The wall clock has microsecond resolution in NFLOG; allow for it.
	if kernel < -time.Millisecond || d.Time.After(d.Received.Round(0)) {
		t.Errorf("kernel time %v outside [send %v, read %v]",
			d.Time, sent, d.Received)
	}
	if kernel > 20*time.Millisecond {
		t.Errorf("kernel time %v after send, want a few ms", kernel)
	}
}

func testBusyGroup(t *testing.T, lab *testLab) {
	first := lab.newReader(t, Config{})

	_, err := New(Config{Group: labGroup, NetNS: int(lab.inFD.Fd())})
	if !errors.Is(err, ErrGroupBusy) {
		t.Fatalf("second New: error %v, want ErrGroupBusy", err)
	}
	if !strings.Contains(err.Error(), "group 7") {
		t.Errorf("error %q does not name the group", err)
	}
	t.Logf("second listener: %v", err)

	// Closing the socket releases the group.
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again, err := New(Config{Group: labGroup, NetNS: int(lab.inFD.Fd())})
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	again.Close()
}

func testSnapLen(t *testing.T, lab *testLab) {
	// IPv4 and UDP headers, the DNS header and 4 bytes of the question.
	const snap = 20 + 8 + 12 + 4
	r := lab.newReader(t, Config{SnapLen: snap})
	run := start(t, r)

	payload := dnsAnswer(0x2001, "cut.example.", dns.TypeA, dns.RcodeSuccess)
	conn := lab.sender(t, netip.AddrPortFrom(lab.up4, 53))
	dst := netip.AddrPortFrom(lab.in4, 40010)
	if _, err := conn.WriteToUDPAddrPort(payload, dst); err != nil {
		t.Fatalf("send: %v", err)
	}
	d := run.next(t)

	want := &events.DNSInfo{ID: 0x2001, Response: true, Flags: "qr rd ra"}
	if diff := cmp.Diff(want, d.DNS); diff != "" {
		t.Errorf("DNS mismatch (-want +got):\n%s", diff)
	}
	if d.Length != 28+len(payload) {
		t.Errorf("Length = %d, want the wire length %d", d.Length, 28+len(payload))
	}
	if n := r.Stats().DecodeErrors[ReasonDNSTruncated]; n != 1 {
		t.Errorf("DecodeErrors[dns_truncated] = %d, want 1", n)
	}
}

func testOverflow(t *testing.T, lab *testLab) {
	// The kernel raises a tiny buffer to its minimum, which holds one
	// NFLOG message: the rest of the burst overflows.
	const burst = 20
	r := lab.newReader(t, Config{ReadBuffer: 1})
	conn := lab.sender(t, netip.AddrPortFrom(lab.up4, 53))
	dst := netip.AddrPortFrom(lab.in4, 40020)
	for i := range burst {
		msg := dnsAnswer(uint16(0x3000+i), "burst.example.", dns.TypeA, dns.RcodeSuccess)
		if _, err := conn.WriteToUDPAddrPort(msg, dst); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}

	run := start(t, r)
	first := run.next(t)
	// Run must survive ENOBUFS and deliver what comes after.
	msg := dnsAnswer(0x3fff, "after.example.", dns.TypeA, dns.RcodeSuccess)
	if _, err := conn.WriteToUDPAddrPort(msg, dst); err != nil {
		t.Fatalf("send: %v", err)
	}
	var last events.Drop
	for last = first; last.DNS == nil || last.DNS.ID != 0x3fff; {
		last = run.next(t)
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	st := r.Stats()
	t.Logf("stats after a burst of %d: %+v", burst, st)
	if st.Overruns == 0 {
		t.Error("Overruns = 0, want ENOBUFS counted")
	}
	if st.Messages+st.Lost != burst+1 {
		t.Errorf("Messages %d + Lost %d != %d sent", st.Messages, st.Lost, burst+1)
	}
}

func testCloseEndsRun(t *testing.T, lab *testLab) {
	r := lab.newReader(t, Config{})
	ctx := t.Context()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, func(events.Drop) {}) }()

	// A second Run while the first is active is refused.
	time.Sleep(20 * time.Millisecond)
	if err := r.Run(ctx, func(events.Drop) {}); !errors.Is(err, ErrRunning) {
		t.Errorf("concurrent Run: %v, want ErrRunning", err)
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of Close")
	}
}

// testStrayDeadline fires a read deadline at a running Run, as the ctx
// callback of an earlier Run could: Run must keep reading.
func testStrayDeadline(t *testing.T, lab *testLab) {
	r := lab.newReader(t, Config{})
	run := start(t, r)
	time.Sleep(10 * time.Millisecond)
	if err := r.conn.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)

	conn := lab.sender(t, netip.AddrPortFrom(lab.up4, 53))
	msg := dnsAnswer(0x4001, "after.example.", dns.TypeA, dns.RcodeSuccess)
	dst := netip.AddrPortFrom(lab.in4, 40030)
	if _, err := conn.WriteToUDPAddrPort(msg, dst); err != nil {
		t.Fatalf("send: %v", err)
	}
	if d := run.next(t); d.DNS == nil || d.DNS.ID != 0x4001 {
		t.Errorf("drop %+v, want DNS id 0x4001", d)
	}
}

// writeCaptures stores the kernel's messages as fixtures for the unit tests
// of parseRecord (go test -run TestReaderIntegration -update, as root).
func writeCaptures(t *testing.T, msgs []netlink.Message) {
	t.Helper()
	names := []string{"kernel-ipv4-answer", "kernel-ipv6-nxdomain", "kernel-not-dns"}
	if len(msgs) != len(names) {
		t.Fatalf("captured %d messages, want %d", len(msgs), len(names))
	}
	for i, m := range msgs {
		path := filepath.Join("testdata", "messages", names[i]+".hex")
		comment := "NFLOG packet message body (nfgenmsg and attributes) " +
			"captured from the kernel by TestReaderIntegration/drops -update"
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, formatHex(comment, m.Data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
