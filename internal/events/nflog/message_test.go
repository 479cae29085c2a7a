package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/internal/events"
)

// TestParseRecordKernel decodes messages the kernel wrote (captured by the
// integration test with -update), so the attribute layout is checked
// against the real thing without root.
func TestParseRecordKernel(t *testing.T) {
	tests := []struct {
		file       string
		family     Family
		payloadLen int
	}{
		{"kernel-ipv4-answer", FamilyIPv4, 92},
		{"kernel-ipv6-nxdomain", FamilyIPv6, 81},
		{"kernel-not-dns", FamilyIPv4, 33},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rec, err := parseRecord(readFixture(t, "messages", tt.file))
			if err != nil {
				t.Fatalf("parseRecord: %v", err)
			}
			if rec.family != tt.family || rec.group != labGroup ||
				rec.prefix != labPrefix || len(rec.payload) != tt.payloadLen {
				t.Errorf("record = family %v group %d prefix %q payload %d bytes, "+
					"want %v %d %q %d", rec.family, rec.group, rec.prefix,
					len(rec.payload), tt.family, labGroup, labPrefix, tt.payloadLen)
			}
			// NF_INET_LOCAL_IN: the byte go-nflog v2.1.0 skips.
			if rec.hook != 1 {
				t.Errorf("hook = %d, want 1 (input)", rec.hook)
			}
			if !rec.hasTime || rec.time.Year() < 2025 {
				t.Errorf("timestamp = %v (present %v), want a recent one",
					rec.time, rec.hasTime)
			}
			if rec.inDev == 0 || rec.outDev != 0 || !rec.hasSeq {
				t.Errorf("in %d out %d seq present %v, want an input device, "+
					"no output device and a sequence number",
					rec.inDev, rec.outDev, rec.hasSeq)
			}
			if _, err := DecodePacket(rec.payload, rec.family); err != nil {
				t.Errorf("DecodePacket: %v", err)
			}
		})
	}
}

// nflogMessage builds the body of an NFLOG packet message.
type nflogMessage struct {
	family  uint8
	hwProto uint16
	hook    uint8
	time    time.Time // zero: no NFULA_TIMESTAMP
	inDev   uint32
	outDev  uint32
	prefix  string
	payload []byte // nil: no NFULA_PAYLOAD
	seq     *uint32
}

func (m nflogMessage) body() []byte {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint16(hdr, m.hwProto)
	hdr[2] = m.hook
	ae.Bytes(attrPacketHdr, hdr)
	if !m.time.IsZero() {
		ts := make([]byte, 16)
		binary.BigEndian.PutUint64(ts, uint64(m.time.Unix()))
		binary.BigEndian.PutUint64(ts[8:], uint64(m.time.Nanosecond()/1000))
		ae.Bytes(attrTimestamp, ts)
	}
	if m.inDev != 0 {
		ae.Uint32(attrInDev, m.inDev)
	}
	if m.outDev != 0 {
		ae.Uint32(attrOutDev, m.outDev)
	}
	if m.payload != nil {
		ae.Bytes(attrPayload, m.payload)
	}
	if m.prefix != "" {
		ae.String(attrPrefix, m.prefix)
	}
	if m.seq != nil {
		ae.Uint32(attrSeq, *m.seq)
	}
	attrs, err := ae.Encode()
	if err != nil {
		panic(err)
	}
	return append([]byte{m.family, 0, 0, labGroup}, attrs...)
}

func (m nflogMessage) message() netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | msgPacket)},
		Data:   m.body(),
	}
}

func seq(n uint32) *uint32 { return &n }

func TestParseRecord(t *testing.T) {
	stamp := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name    string
		data    []byte
		want    record
		wantErr bool
	}{
		{
			name: "ipv4 input",
			data: nflogMessage{family: unix.NFPROTO_IPV4, hwProto: unix.ETH_P_IP,
				hook: 1, time: stamp, inDev: 3, prefix: "p: ",
				payload: []byte{0x45}, seq: seq(9)}.body(),
			want: record{family: FamilyIPv4, group: labGroup, hook: 1,
				hasTime: true, time: stamp, inDev: 3, prefix: "p: ",
				payload: []byte{0x45}, hasSeq: true, seq: 9},
		},
		{
			name: "bridge carrying ipv6",
			data: nflogMessage{family: unix.NFPROTO_BRIDGE, hwProto: unix.ETH_P_IPV6,
				payload: []byte{0x60}}.body(),
			want: record{family: FamilyIPv6, group: labGroup, payload: []byte{0x60}},
		},
		{
			name: "netdev carrying arp",
			data: nflogMessage{family: unix.NFPROTO_NETDEV, hwProto: unix.ETH_P_ARP,
				outDev: 4}.body(),
			want: record{family: FamilyUnspec, group: labGroup, outDev: 4},
		},
		{name: "no nfgenmsg", data: []byte{2, 0}, wantErr: true},
		{name: "attribute overruns", data: []byte{2, 0, 0, 7, 0xff, 0, 3, 0},
			wantErr: true},
		{name: "short timestamp",
			data: append([]byte{2, 0, 0, 7}, 8, 0, attrTimestamp, 0, 1, 2, 3, 4),
			want: record{group: labGroup}, wantErr: true},
		{name: "short packet header",
			data:    append([]byte{2, 0, 0, 7}, 6, 0, attrPacketHdr, 0, 8, 0, 0, 0),
			want:    record{group: labGroup},
			wantErr: true},
		{name: "short ifindex",
			data: append([]byte{2, 0, 0, 7}, 6, 0, attrInDev, 0, 1, 2, 0, 0),
			want: record{group: labGroup}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRecord(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errMessage) {
					t.Errorf("error %v does not wrap errMessage", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(record{})); diff != "" {
				t.Errorf("record mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// testReader is a Reader without a socket, for handle.
func testReader(t *testing.T) *Reader {
	t.Helper()
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	names := map[uint32]string{2: "wan0", 5: "lan0"}
	return &Reader{cfg: cfg, ifaceName: func(i uint32) (string, error) {
		if n, ok := names[i]; ok {
			return n, nil
		}
		return "", fmt.Errorf("no interface %d", i)
	}}
}

func TestHandle(t *testing.T) {
	stamp := time.Date(2026, 3, 1, 12, 0, 0, 5000, time.UTC)
	received := stamp.Add(300 * time.Microsecond)
	answer := readFixture(t, "packets", "ipv4-dns-answer")
	src4, dst4, _, _ := fixtureAddrs()
	src, dst := netip.AddrPortFrom(src4, 53), netip.AddrPortFrom(dst4, 40001)
	in := nflogMessage{family: unix.NFPROTO_IPV4, hwProto: unix.ETH_P_IP,
		hook: 1, time: stamp, inDev: 2, prefix: "late: ", payload: answer}
	drop := events.Drop{
		Source: events.SourceNFLOG, Time: stamp, Received: received,
		Prefix: "late: ", InIface: "wan0", Proto: 17, Src: src, Dst: dst,
		Length: 86, TTL: 57,
		DNS: &events.DNSInfo{ID: 0xbeef, Response: true, Flags: "qr rd ra",
			Name: "late.example.", Type: "A"},
	}
	edit := func(m nflogMessage, f func(*nflogMessage)) netlink.Message {
		f(&m)
		return m.message()
	}
	editDrop := func(f func(*events.Drop)) *events.Drop {
		d := drop
		dnsInfo := *drop.DNS
		d.DNS = &dnsInfo
		f(&d)
		return &d
	}

	tests := []struct {
		name string
		msgs []netlink.Message
		// want is the last drop emitted; nil means none at all.
		want *events.Drop
		// stats lists the counters that must be non-zero.
		stats Stats
	}{
		{name: "dns answer", msgs: []netlink.Message{in.message()}, want: &drop,
			stats: Stats{Messages: 1, Drops: 1}},
		{name: "sequence gap", msgs: []netlink.Message{
			edit(in, func(m *nflogMessage) { m.seq = seq(0) }),
			edit(in, func(m *nflogMessage) { m.seq = seq(3) }),
		}, want: &drop, stats: Stats{Messages: 2, Drops: 2, Lost: 2}},
		{name: "consecutive sequence numbers", msgs: []netlink.Message{
			edit(in, func(m *nflogMessage) { m.seq = seq(0) }),
			edit(in, func(m *nflogMessage) { m.seq = seq(1) }),
		}, want: &drop, stats: Stats{Messages: 2, Drops: 2}},
		{name: "output hook has no timestamp",
			msgs: []netlink.Message{edit(in, func(m *nflogMessage) {
				m.hook, m.time, m.inDev, m.outDev = 3, time.Time{}, 0, 5
			})},
			want: editDrop(func(d *events.Drop) {
				d.Time, d.InIface, d.OutIface = received, "", "lan0"
			}),
			stats: Stats{Messages: 1, Drops: 1, NoTimestamp: 1}},
		{name: "unknown interface",
			msgs:  []netlink.Message{edit(in, func(m *nflogMessage) { m.inDev = 99 })},
			want:  editDrop(func(d *events.Drop) { d.InIface = "" }),
			stats: Stats{Messages: 1, Drops: 1, IfaceErrors: 1}},
		{name: "dns cut by snap length",
			msgs: []netlink.Message{edit(in, func(m *nflogMessage) {
				m.payload = readFixture(t, "packets", "ipv4-dns-cut")
			})},
			want: editDrop(func(d *events.Drop) { d.DNS.Name, d.DNS.Type = "", "" }),
			stats: Stats{Messages: 1, Drops: 1,
				DecodeErrors: map[Reason]uint64{ReasonDNSTruncated: 1}}},
		{name: "not from the watched port",
			msgs: []netlink.Message{edit(in, func(m *nflogMessage) {
				m.payload = readFixture(t, "packets", "ipv4-dns-query")
			})},
			want: editDrop(func(d *events.Drop) {
				d.Src, d.Dst, d.Length, d.DNS = netip.AddrPortFrom(dst4, 40001),
					netip.AddrPortFrom(src4, 53), 40, nil
			}),
			stats: Stats{Messages: 1, Drops: 1}},
		{name: "tcp is emitted without ports",
			msgs: []netlink.Message{edit(in, func(m *nflogMessage) {
				m.payload = readFixture(t, "packets", "ipv4-tcp")
			})},
			want: editDrop(func(d *events.Drop) {
				d.Proto, d.Length, d.DNS = 6, 40, nil
				d.Src, d.Dst = netip.AddrPortFrom(src4, 0), netip.AddrPortFrom(dst4, 0)
			}),
			stats: Stats{Messages: 1, Drops: 1}},
		{name: "no payload",
			msgs:  []netlink.Message{edit(in, func(m *nflogMessage) { m.payload = nil })},
			stats: Stats{Messages: 1, DecodeErrors: map[Reason]uint64{ReasonNoPayload: 1}}},
		{name: "garbage payload",
			msgs: []netlink.Message{edit(in, func(m *nflogMessage) {
				m.payload = readFixture(t, "packets", "garbage")
			})},
			stats: Stats{Messages: 1, DecodeErrors: map[Reason]uint64{ReasonIPVersion: 1}}},
		{name: "malformed message",
			msgs: []netlink.Message{{
				Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_ULOG << 8)},
				Data:   []byte{2, 0},
			}},
			stats: Stats{Messages: 1, DecodeErrors: map[Reason]uint64{ReasonMessage: 1}}},
		{name: "other message types are skipped",
			msgs: []netlink.Message{{Header: netlink.Header{Type: netlink.Done}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testReader(t)
			var got []events.Drop
			for _, m := range tt.msgs {
				r.handle(m, received, func(d events.Drop) { got = append(got, d) })
			}

			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("emitted %+v, want nothing", got)
				}
			} else if len(got) == 0 {
				t.Errorf("emitted nothing, want %+v", *tt.want)
			} else if diff := cmp.Diff(*tt.want, got[len(got)-1], addrPorts()); diff != "" {
				t.Errorf("drop mismatch (-want +got):\n%s", diff)
			}
			want := tt.stats
			errs := want.DecodeErrors
			want.DecodeErrors = make(map[Reason]uint64)
			for r := range numReasons {
				want.DecodeErrors[r] = errs[r]
			}
			if diff := cmp.Diff(want, r.Stats()); diff != "" {
				t.Errorf("stats mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSequenceWrap(t *testing.T) {
	r := testReader(t)
	in := nflogMessage{family: unix.NFPROTO_IPV4,
		payload: readFixture(t, "packets", "ipv4-dns-answer")}
	r.nextSeq = 0xfffffffe
	for _, s := range []uint32{0xfffffffe, 0xffffffff, 0, 2} {
		in.seq = seq(s)
		r.handle(in.message(), time.Now(), func(events.Drop) {})
	}
	if lost := r.Stats().Lost; lost != 1 {
		t.Errorf("Lost = %d across the wrap, want 1", lost)
	}
}

func TestReasonString(t *testing.T) {
	seen := make(map[string]bool)
	for r := range numReasons {
		s := r.String()
		if s == "" || seen[s] {
			t.Errorf("Reason(%d) has name %q, empty or duplicate", r, s)
		}
		seen[s] = true
	}
	if got := numReasons.String(); got != fmt.Sprintf("Reason(%d)", numReasons) {
		t.Errorf("out of range reason = %q", got)
	}
	// Every decoder error maps to its own reason.
	for _, re := range reasonErrors {
		if got := reasonOf(fmt.Errorf("wrapped: %w", re.err)); got != re.reason {
			t.Errorf("reasonOf(%v) = %v, want %v", re.err, got, re.reason)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    Config
		wantErr string
	}{
		{name: "zero", want: Config{Port: 53, SnapLen: 512, ReadBuffer: 8 << 20,
			FlushTimeout: 10 * time.Millisecond}},
		{name: "kept", cfg: Config{Group: 3, Port: 5353, SnapLen: 100,
			ReadBuffer: 1 << 20, FlushTimeout: time.Second},
			want: Config{Group: 3, Port: 5353, SnapLen: 100, ReadBuffer: 1 << 20,
				FlushTimeout: time.Second}},
		{name: "snap length too long", cfg: Config{SnapLen: 70000},
			wantErr: "snap length 70000: above 65535"},
		{name: "negative buffer", cfg: Config{ReadBuffer: -1},
			wantErr: "read buffer -1: negative"},
		{name: "negative timeout", cfg: Config{FlushTimeout: -time.Second},
			wantErr: "flush timeout -1s: negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.withDefaults()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				// New refuses it before opening anything.
				if _, err := New(tt.cfg); err == nil ||
					err.Error() != "nflog config: "+tt.wantErr {
					t.Errorf("New error = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
