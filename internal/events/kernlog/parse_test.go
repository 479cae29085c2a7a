package kernlog

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
)

const (
	mac4 = "MAC=52:54:00:ab:cd:ef:52:54:00:12:34:56:08:00"
	body = "IN=eth0 OUT= " + mac4 + " SRC=198.18.0.53 DST=198.18.0.10 " +
		"LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=UDP SPT=53 " +
		"DPT=33333 LEN=56 "
)

func TestParseFields(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name  string
		line  string
		check func(t *testing.T, r *Record)
	}{
		{
			name: "spt 5353 is not 53",
			line: "MDNS IN=eth0 OUT= SRC=198.18.0.77 DST=224.0.0.251 LEN=100 " +
				"TOS=0x00 PREC=0x00 TTL=255 ID=0 DF PROTO=UDP SPT=5353 DPT=53 LEN=80 ",
			check: func(t *testing.T, r *Record) {
				if r.SrcPort != 5353 || r.DstPort != 53 {
					t.Errorf("ports %d -> %d, want 5353 -> 53", r.SrcPort, r.DstPort)
				}
			},
		},
		{
			name: "icmp inner packet is not the outer one",
			line: "ICMP IN=eth0 OUT= SRC=192.0.2.1 DST=198.18.0.10 LEN=104 " +
				"TOS=0x00 PREC=0xC0 TTL=64 ID=17 PROTO=ICMP TYPE=3 CODE=3 " +
				"[SRC=198.18.0.10 DST=192.0.2.1 LEN=76 TOS=0x00 PREC=0x00 " +
				"TTL=9 ID=4242 PROTO=UDP SPT=53 DPT=33333 LEN=56 ] ",
			check: func(t *testing.T, r *Record) {
				if r.Src != a("192.0.2.1") || r.Dst != a("198.18.0.10") {
					t.Errorf("outer %s -> %s", r.Src, r.Dst)
				}
				if r.HasPorts || r.SrcPort != 0 || r.Proto != "ICMP" ||
					r.TTL != 64 || r.Length != 104 || r.UDPLength != 0 {
					t.Errorf("inner fields leaked: %+v", r)
				}
				if !r.HasInner || r.Inner.SrcPort != 53 ||
					r.Inner.Src != a("198.18.0.10") || r.Inner.Proto != "UDP" {
					t.Errorf("inner = %+v", r.Inner)
				}
				if _, ok := r.Drop(); ok {
					t.Error("an ICMP record converted to a UDP drop")
				}
			},
		},
		{
			name: "glued prefix",
			line: "[wan-lan-default-D]" + body,
			check: func(t *testing.T, r *Record) {
				if r.Prefix != "[wan-lan-default-D]" || r.InIface != "eth0" {
					t.Errorf("prefix %q, in %q", r.Prefix, r.InIface)
				}
			},
		},
		{
			name: "prefix with spaces and colons is trimmed",
			line: "Dec  4 04:11:41 ns1 kernel:   fw: drop: dns 53:  " + body,
			check: func(t *testing.T, r *Record) {
				if r.Prefix != "fw: drop: dns 53:" || r.Host != "ns1" {
					t.Errorf("prefix %q, host %q", r.Prefix, r.Host)
				}
			},
		},
		{
			name: "ipv6 fields",
			line: "IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0035 " +
				"DST=fd00:0000:0000:0000:0000:0000:0000:000a LEN=132 TC=184 " +
				"HOPLIMIT=63 FLOWLBL=742913 PROTO=UDP SPT=53 DPT=41234 LEN=92 ",
			check: func(t *testing.T, r *Record) {
				if r.Src != a("2001:db8::35") || r.TOS != 184 || r.TTL != 63 ||
					r.FlowLabel != 742913 || r.Length != 132 || r.UDPLength != 92 {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "output chain has no MAC and an empty IN",
			line: "OUT IN= OUT=eth0 SRC=198.18.0.10 DST=198.18.0.53 LEN=61 " +
				"TOS=0x10 PREC=0x20 TTL=64 ID=3331 PROTO=UDP SPT=33333 DPT=53 LEN=41 ",
			check: func(t *testing.T, r *Record) {
				if r.InIface != "" || r.OutIface != "eth0" || r.MAC != "" ||
					r.TOS != 0x10 || r.Prec != 0x20 {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "tcp flags and ipv4 flags",
			line: "IN=eth0 OUT= SRC=203.0.113.7 DST=198.18.0.10 LEN=60 TOS=0x00 " +
				"PREC=0x00 TTL=49 ID=0 CE DF PROTO=TCP SPT=443 DPT=51514 " +
				"WINDOW=65160 RES=0x00 ACK SYN URGP=0 ",
			check: func(t *testing.T, r *Record) {
				want := FlagCE | FlagDF | FlagACK | FlagSYN
				if r.Flags != want || r.Flags.String() != "CE DF ACK SYN" {
					t.Errorf("flags %v, want %v", r.Flags, want)
				}
			},
		},
		{
			name: "kmsg header",
			line: "4,1234,307757925,-;DROP " + body,
			check: func(t *testing.T, r *Record) {
				if r.Seq != 1234 || r.Clock != ClockBoot ||
					r.SinceBoot != 307757925*time.Microsecond || !r.Time.IsZero() {
					t.Errorf("got seq %d clock %v since %v time %v",
						r.Seq, r.Clock, r.SinceBoot, r.Time)
				}
			},
		},
		{
			name: "zone-less stamp read in the parser's location",
			line: "Dec  4 04:11:41 ns1 kernel: DROP " + body,
			check: func(t *testing.T, r *Record) {
				want := time.Date(2026, 12, 4, 3, 11, 41, 0, time.UTC)
				if !r.Time.Equal(want) || r.Time.Location() != time.UTC {
					t.Errorf("time %v, want %v", r.Time, want)
				}
			},
		},
		{
			name: "offset stamp ignores the location",
			line: "2026-12-04T04:11:41.5-05:00 ns1 kernel: DROP " + body,
			check: func(t *testing.T, r *Record) {
				want := time.Date(2026, 12, 4, 9, 11, 41, 5e8, time.UTC)
				if !r.Time.Equal(want) {
					t.Errorf("time %v, want %v", r.Time, want)
				}
			},
		},
		{
			name: "syslog with dmesg bracket keeps both clocks",
			line: "Dec  4 04:11:41 ns1 kernel: [  307.757925] DROP " + body,
			check: func(t *testing.T, r *Record) {
				if r.Clock != ClockWall || r.SinceBoot != 307757925*time.Microsecond {
					t.Errorf("clock %v since %v", r.Clock, r.SinceBoot)
				}
			},
		},
	}
	cet := time.FixedZone("CET", 3600)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Parser{Location: cet, Now: func() time.Time {
				return time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)
			}}
			var r Record
			res, err := p.Parse([]byte(tt.line), &r)
			if res != Firewall || err != nil {
				t.Fatalf("Parse = %v, %v; want firewall", res, err)
			}
			tt.check(t, &r)
		})
	}
}

func TestParseErrors(t *testing.T) {
	rep := func(old, new string) string { return strings.Replace(body, old, new, 1) }
	tests := []struct {
		name string
		line string
		res  Result
		err  error
	}{
		{"not a record", "Dec  4 04:11:41 ns1 kernel: eth0: link up", NotFirewall, nil},
		{"login is not IN=", "sshd[1]: LOGIN=root ON tty1", NotFirewall, nil},
		{"empty", "", NotFirewall, nil},
		{"arp", "ARP IN=eth0 OUT= ARP HTYPE=1 PTYPE=0x0800 OPCODE=1", NotFirewall, nil},
		{"bad address", rep("198.18.0.53", "198.18.0.999"), Malformed, ErrBadAddress},
		{"ipv6 zone", rep("198.18.0.53", "fe80::1%eth0"), Malformed, ErrBadAddress},
		{"mixed family", rep("198.18.0.53", "2001:db8::1"), Malformed, ErrBadAddress},
		{"port out of range", rep("SPT=53", "SPT=65536"), Malformed, ErrBadPort},
		{"port not a number", rep("DPT=33333", "DPT=3x"), Malformed, ErrBadPort},
		{"ttl out of range", rep("TTL=64", "TTL=256"), Malformed, ErrBadNumber},
		{"bad protocol", rep("PROTO=UDP", "PROTO=QUIC"), Malformed, ErrBadProto},
		{"two records", body + body, Malformed, ErrDuplicate},
		{"cut after ports", body[:strings.Index(body, " LEN=56")], Malformed, ErrTruncated},
		{"cut in address", body[:strings.Index(body, "0.10")], Malformed, ErrTruncated},
		{"cut in signature", "DROP IN=eth0 OU", Malformed, ErrTruncated},
		{"cut after IN", "DROP IN=eth0", Malformed, ErrTruncated},
		{"unclosed bracket", "IN=eth0 OUT= SRC=192.0.2.1 DST=198.18.0.10 LEN=104 " +
			"TOS=0x00 PREC=0xC0 TTL=64 ID=17 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.18.0.10",
			Malformed, ErrTruncated},
		{"tcp without urgp", "IN=eth0 OUT= SRC=203.0.113.7 DST=198.18.0.10 LEN=60 " +
			"TOS=0x00 PREC=0x00 TTL=49 ID=0 PROTO=TCP SPT=443 DPT=51514 WINDOW=1 ",
			Malformed, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			res, err := ParseLine([]byte(tt.line), &r)
			if res != tt.res {
				t.Errorf("result %v, want %v (err %v)", res, tt.res, err)
			}
			if tt.err == nil {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestFieldErrorText(t *testing.T) {
	var r Record
	_, err := ParseLine([]byte(strings.Replace(body, "SPT=53", "SPT=99999", 1)), &r)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "SPT" || fe.Value != "99999" {
		t.Fatalf("err = %#v", err)
	}
	if got, want := err.Error(), `field SPT="99999": bad port`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestYearGuess(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time {
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	tests := []struct {
		name string
		now  time.Time
		line string
		want int
	}{
		{"same year", day(2026, 12, 10), "Dec  4 04:11:41 h kernel: ", 2026},
		{"new year reads december", day(2027, 1, 2), "Dec 31 23:59:58 h kernel: ", 2026},
		{"slightly ahead clock", day(2026, 12, 4), "Dec  5 04:11:41 h kernel: ", 2026},
		{"leap day", day(2028, 3, 1), "Feb 29 12:00:00 h kernel: ", 2028},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Parser{Location: time.UTC, Now: func() time.Time { return tt.now }}
			var r Record
			if res, err := p.Parse([]byte(tt.line+body), &r); res != Firewall {
				t.Fatalf("Parse = %v, %v", res, err)
			}
			if r.Time.Year() != tt.want {
				t.Errorf("year %d, want %d", r.Time.Year(), tt.want)
			}
		})
	}
}

func TestDrop(t *testing.T) {
	p := testParser()
	var r Record
	if res, err := p.Parse([]byte("Dec  4 04:11:41 ns1 kernel: DNS "+body), &r); res != Firewall {
		t.Fatalf("Parse = %v, %v", res, err)
	}
	r.Received = time.Date(2026, 12, 4, 4, 11, 42, 0, time.UTC)
	d, ok := r.Drop()
	if !ok {
		t.Fatal("Drop() not ok")
	}
	want := events.Drop{
		Source:   events.SourceKernelLog,
		Time:     time.Date(2026, 12, 4, 4, 11, 41, 0, time.UTC),
		Received: r.Received,
		Prefix:   "DNS",
		InIface:  "eth0",
		Proto:    17,
		Src:      netip.MustParseAddrPort("198.18.0.53:53"),
		Dst:      netip.MustParseAddrPort("198.18.0.10:33333"),
		Length:   76,
		TTL:      64,
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Drop() =\n%+v\nwant\n%+v", d, want)
	}

	tcp := "IN=eth0 OUT= SRC=203.0.113.7 DST=198.18.0.10 LEN=60 TOS=0x00 " +
		"PREC=0x00 TTL=49 ID=0 PROTO=TCP SPT=53 DPT=51514 WINDOW=1 RES=0x00 URGP=0 "
	if res, _ := p.Parse([]byte(tcp), &r); res != Firewall {
		t.Fatal("tcp line did not parse")
	}
	if _, ok := r.Drop(); ok {
		t.Error("TCP record converted to a drop")
	}
}

// TestRecordJSONNames keeps Record's tags and its JSON form in step.
func TestRecordJSONNames(t *testing.T) {
	enc := make(map[string]bool)
	rt := reflect.TypeOf(recordJSON{})
	for i := range rt.NumField() {
		enc[strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]] = true
	}
	rt = reflect.TypeOf(Record{})
	for i := range rt.NumField() {
		name := strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]
		if name != "-" && !enc[name] {
			t.Errorf("Record.%s has JSON name %q that MarshalJSON does not write",
				rt.Field(i).Name, name)
		}
	}
}

func TestRecordJSONPresence(t *testing.T) {
	r := Record{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"),
		Proto: "UDP", ProtoNum: 17, HasPorts: true}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"src_port":0`, `"dst_port":0`, `"proto_num":17`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	if strings.Contains(string(b), "icmp_type") || strings.Contains(string(b), "received") {
		t.Errorf("%s has fields the record lacks", b)
	}
}

func TestFlagsJSON(t *testing.T) {
	f := FlagDF | FlagSYN
	b, err := json.Marshal(f)
	if err != nil || string(b) != `["DF","SYN"]` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var g Flags
	if err := json.Unmarshal(b, &g); err != nil || g != f {
		t.Fatalf("Unmarshal = %v, %v", g, err)
	}
	if err := json.Unmarshal([]byte(`["XYZ"]`), &g); err == nil {
		t.Error("unknown flag accepted")
	}
}

// TestAppendLogRoundTrip formats every Firewall record of the corpus and
// parses it back: the packet fields must survive.
func TestAppendLogRoundTrip(t *testing.T) {
	for _, c := range readCorpus(t) {
		for _, e := range runCase(c) {
			if e.Result != Firewall {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				checkRoundTrip(t, e.Record)
			})
		}
	}
}

// checkRoundTrip asserts that AppendLog output parses back to the same
// packet fields and formats to the same bytes.
func checkRoundTrip(t *testing.T, r *Record) {
	t.Helper()
	line := r.AppendLog(nil)
	var p Parser
	var back Record
	res, err := p.parseBody(line, &back, false)
	if res != Firewall {
		t.Fatalf("reparse of %q = %v, %v", line, res, err)
	}
	want := *r
	want.Time, want.Clock, want.SinceBoot, want.Seq, want.Host = time.Time{}, 0, 0, 0, ""
	want.Received = time.Time{}
	if back != want {
		t.Fatalf("reparse of %q\ngot  %+v\nwant %+v", line, back, want)
	}
	if again := back.AppendLog(nil); string(again) != string(line) {
		t.Fatalf("format not idempotent:\n%q\n%q", line, again)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	line := []byte("Dec  4 04:11:41 ns1 kernel: [  307.757925] DNS-LATE: " + body)
	p := testParser()
	var r Record
	p.Parse(line, &r) // fill the string cache
	allocs := testing.AllocsPerRun(100, func() {
		if res, _ := p.Parse(line, &r); res != Firewall {
			t.Fatal("not firewall")
		}
	})
	if allocs != 0 {
		t.Errorf("Parse allocates %.1f times per line, want 0", allocs)
	}
}
