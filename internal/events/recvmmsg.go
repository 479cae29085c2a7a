package events

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// recvBatchSize datagrams are read per recvmmsg call.
	recvBatchSize = 64
	// recvBufferSize holds one ctnetlink event with room to spare: an event
	// is a few hundred bytes, and the kernel never builds one larger than
	// NLMSG_GOODSIZE (a page, capped at 8 KiB).
	recvBufferSize = 8 << 10
)

// recvBatch is the state of one recvmmsg call, reused for every read.
type recvBatch struct {
	bufs []byte
	iovs []unix.Iovec
	hdrs []unix.Mmsghdr
	size int
}

func newRecvBatch(n, size int) *recvBatch {
	b := &recvBatch{
		bufs: make([]byte, n*size),
		iovs: make([]unix.Iovec, n),
		hdrs: make([]unix.Mmsghdr, n),
		size: size,
	}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i*size]
		b.iovs[i].SetLen(size)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

// recv reads up to len(b.hdrs) datagrams without blocking and returns how
// many arrived. A pending socket error (ENOBUFS) is returned by the call
// that finds it first in line.
func (b *recvBatch) recv(fd int) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].Len = 0
		b.hdrs[i].Hdr.Flags = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd),
		uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)),
		unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// datagram returns the i-th datagram of the last recv and whether the
// kernel truncated it.
func (b *recvBatch) datagram(i int) ([]byte, bool) {
	h := &b.hdrs[i]
	return b.bufs[i*b.size : i*b.size+int(h.Len)], h.Hdr.Flags&unix.MSG_TRUNC != 0
}
