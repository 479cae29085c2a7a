package nflog

import (
	"context"
	"encoding/binary"
	"errors"
	"iter"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/internal/events"
)

// datagram is one read from a fakeSocket: messages or an error.
type datagram struct {
	msgs []netlink.Message
	err  error
}

// fakeSocket is a netlink.Socket that plays a script. Each Send appends
// reply(request) to the read queue; a read with the queue empty calls
// drained (if set) and then fails as if the read deadline had passed.
type fakeSocket struct {
	reply   func(req netlink.Message) []datagram
	drained func()

	mu    sync.Mutex // guards sent and queue
	sent  []netlink.Message
	queue []datagram
}

var _ netlink.Socket = (*fakeSocket)(nil)

func (s *fakeSocket) Close() error { return nil }

func (s *fakeSocket) Send(m netlink.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	if s.reply != nil {
		s.queue = append(s.queue, s.reply(m)...)
	}
	return nil
}

func (s *fakeSocket) SendMessages(ms []netlink.Message) error {
	for _, m := range ms {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeSocket) Receive() ([]netlink.Message, error) {
	var out []netlink.Message
	for m, err := range s.ReceiveIter() {
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *fakeSocket) ReceiveIter() iter.Seq2[netlink.Message, error] {
	return func(yield func(netlink.Message, error) bool) {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			if s.drained != nil {
				s.drained()
			}
			yield(netlink.Message{}, os.ErrDeadlineExceeded)
			return
		}
		d := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()

		if d.err != nil {
			yield(netlink.Message{}, d.err)
			return
		}
		for _, m := range d.msgs {
			if !yield(m, nil) {
				return
			}
		}
	}
}

func (s *fakeSocket) SetDeadline(time.Time) error      { return nil }
func (s *fakeSocket) SetReadDeadline(time.Time) error  { return nil }
func (s *fakeSocket) SetWriteDeadline(time.Time) error { return nil }

// ack is the kernel's answer to req: errno 0, or -errno on failure.
func ack(req netlink.Message, errno unix.Errno) netlink.Message {
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
	hdr, _ := req.MarshalBinary()
	return netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Sequence: req.Header.Sequence},
		Data:   append(data, hdr[:16]...),
	}
}

// packet is a logged DNS answer with sequence number n.
func packet(t *testing.T, n uint32) netlink.Message {
	return nflogMessage{family: unix.NFPROTO_IPV4, hwProto: unix.ETH_P_IP,
		hook: 1, time: time.Unix(1_700_000_000, 0), inDev: 2,
		payload: readFixture(t, "packets", "ipv4-dns-answer"),
		seq:     seq(n)}.message()
}

func enobufs() datagram {
	return datagram{err: os.NewSyscallError("recvmsg", unix.ENOBUFS)}
}

// fakeReader is a Reader on a fakeSocket, as New would leave it before
// bind.
func fakeReader(t *testing.T, sock *fakeSocket) *Reader {
	r := testReader(t)
	r.cfg.Group = labGroup
	r.conn = netlink.NewConn(sock, 1)
	return r
}

func TestBind(t *testing.T) {
	tests := []struct {
		name     string
		reply    func(t *testing.T, req netlink.Message) []datagram
		pending  int
		overruns uint64
		wantErr  error
		wantText string
	}{
		{
			name: "acknowledged",
			reply: func(t *testing.T, req netlink.Message) []datagram {
				return []datagram{{msgs: []netlink.Message{ack(req, 0)}}}
			},
		},
		{
			name: "packets race the acknowledgement",
			reply: func(t *testing.T, req netlink.Message) []datagram {
				return []datagram{
					{msgs: []netlink.Message{packet(t, 0)}},
					{msgs: []netlink.Message{packet(t, 1), ack(req, 0)}},
				}
			},
			pending: 2,
		},
		{
			name: "overrun before the acknowledgement",
			reply: func(t *testing.T, req netlink.Message) []datagram {
				return []datagram{enobufs(), {msgs: []netlink.Message{ack(req, 0)}}}
			},
			overruns: 1,
		},
		{
			name: "owned by another socket",
			reply: func(t *testing.T, req netlink.Message) []datagram {
				return []datagram{{msgs: []netlink.Message{ack(req, unix.EPERM)}}}
			},
			wantErr:  ErrGroupBusy,
			wantText: "bind nflog group 7: group already bound by another socket",
		},
		{
			name: "bound twice by this socket",
			reply: func(t *testing.T, req netlink.Message) []datagram {
				return []datagram{{msgs: []netlink.Message{ack(req, unix.EBUSY)}}}
			},
			wantErr: ErrGroupBusy,
		},
		{
			name: "other failure",
			reply: func(t *testing.T, req netlink.Message) []datagram {
				return []datagram{{msgs: []netlink.Message{ack(req, unix.EINVAL)}}}
			},
			wantErr:  unix.EINVAL,
			wantText: "bind nflog group 7: netlink receive: invalid argument",
		},
		{
			name: "no answer",
			reply: func(t *testing.T, req netlink.Message) []datagram {
				return nil
			},
			wantErr: os.ErrDeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := &fakeSocket{}
			sock.reply = func(req netlink.Message) []datagram { return tt.reply(t, req) }
			r := fakeReader(t, sock)

			err := r.bind()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("bind error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), tt.wantText) {
				t.Errorf("bind error %q, want it to start with %q", err, tt.wantText)
			}
			if len(r.pending) != tt.pending || r.Stats().Overruns != tt.overruns {
				t.Errorf("pending %d, overruns %d; want %d, %d",
					len(r.pending), r.Stats().Overruns, tt.pending, tt.overruns)
			}
		})
	}
}

// TestBindMessage checks the one config message bind sends against the
// kernel's nfnetlink_log ABI.
func TestBindMessage(t *testing.T) {
	sock := &fakeSocket{reply: func(req netlink.Message) []datagram {
		return []datagram{{msgs: []netlink.Message{ack(req, 0)}}}
	}}
	r := fakeReader(t, sock)
	r.cfg.SnapLen = 300
	r.cfg.FlushTimeout = 25 * time.Millisecond
	if err := r.bind(); err != nil {
		t.Fatal(err)
	}
	if len(sock.sent) != 1 {
		t.Fatalf("sent %d messages, want 1", len(sock.sent))
	}
	req := sock.sent[0]

	wantFlags := netlink.Request | netlink.Acknowledge
	if req.Header.Type != 0x0401 || req.Header.Flags != wantFlags {
		t.Errorf("header type %#x flags %v, want 0x0401 (ULOG config) %v",
			req.Header.Type, req.Header.Flags, wantFlags)
	}
	// nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id = group (big-endian).
	if diff := cmp.Diff([]byte{0, 0, 0, labGroup}, req.Data[:4]); diff != "" {
		t.Errorf("nfgenmsg mismatch (-want +got):\n%s", diff)
	}
	attrs, err := netlink.UnmarshalAttributes(req.Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[uint16][]byte)
	for _, a := range attrs {
		got[a.Type] = a.Data
	}
	want := map[uint16][]byte{
		cfgCmd:     {cmdBind},
		cfgMode:    {0, 0, 1, 44, copyPacket, 0}, // copy_range 300
		cfgTimeout: {0, 0, 0, 3},                 // 25 ms rounds up to 3/100 s
		cfgQThresh: {0, 0, 0, 1},
		cfgFlags:   {0, flagSeq},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config attributes mismatch (-want +got):\n%s", diff)
	}
}

// TestRunScript drives Run over a scripted socket: packets kept by bind
// come first, ENOBUFS is counted and survived, the sequence gap is counted
// and cancellation returns nil.
func TestRunScript(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := &fakeSocket{drained: cancel}
	sock.reply = func(req netlink.Message) []datagram {
		return []datagram{
			{msgs: []netlink.Message{packet(t, 0), ack(req, 0)}},
			{msgs: []netlink.Message{packet(t, 1)}},
			enobufs(),
			{msgs: []netlink.Message{packet(t, 5), {Header: netlink.Header{
				Type: netlink.Done, Flags: netlink.Multi}}}},
		}
	}
	r := fakeReader(t, sock)
	if err := r.bind(); err != nil {
		t.Fatal(err)
	}

	var drops int
	if err := r.Run(ctx, func(events.Drop) { drops++ }); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := r.Stats()
	if drops != 3 || st.Messages != 3 || st.Overruns != 1 || st.Lost != 3 {
		t.Errorf("%d drops, stats %+v; want 3 drops and messages, "+
			"1 overrun, 3 lost", drops, st)
	}
}

func TestRunFatalError(t *testing.T) {
	sock := &fakeSocket{}
	r := fakeReader(t, sock)
	sock.queue = []datagram{{err: os.NewSyscallError("recvmsg", unix.EBADF)}}

	err := r.Run(context.Background(), func(events.Drop) {})
	if !errors.Is(err, unix.EBADF) ||
		!strings.HasPrefix(err.Error(), "receive nflog group 7: ") {
		t.Errorf("Run error = %v, want EBADF wrapped with the group", err)
	}
}
