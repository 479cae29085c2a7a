package kernlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// DefaultKmsgPath is the kernel log device.
const DefaultKmsgPath = "/dev/kmsg"

// maxKmsgBuffer bounds the read buffer. A record is at most about 8 KiB
// (CONSOLE_EXT_LOG_MAX); the kernel answers EINVAL, without consuming the
// record, when the buffer is smaller than the record.
const (
	kmsgBuffer    = 16 << 10
	maxKmsgBuffer = 1 << 20
)

// KmsgFollower reads /dev/kmsg. Each read(2) returns one record:
// "prio,seq,usec,flags[,...];message\n" followed by dictionary lines
// (" SUBSYSTEM=net"), which start with a space and are ignored.
//
// When the reader falls behind, the ring buffer overwrites unread records
// and the next read fails with EPIPE; the follower counts the overrun,
// counts the lost records from the gap in sequence numbers, and goes on.
// Boot-relative stamps are converted to wall time with the BootClock from
// Options.Boot, or one read by NewBootClock.
//
// Reading needs CAP_SYSLOG, or kernel.dmesg_restrict=0.
type KmsgFollower struct {
	path     string
	f        *os.File
	r        io.Reader // f; a fake in tests
	pollable bool      // f supports deadlines, so a blocked read can end
	opts     Options
	stats    *Stats
	buf      []byte
	lastSeq  uint64
	haveSeq  bool
}

// NewKmsgFollower opens path ("" means DefaultKmsgPath) and seeks to the
// end of the ring buffer (SEEK_END), so only records written from now on
// are read; with Options.FromStart it starts at the oldest record.
func NewKmsgFollower(path string, opts Options) (*KmsgFollower, error) {
	if path == "" {
		path = DefaultKmsgPath
	}
	if opts.Boot == nil {
		bc, err := NewBootClock()
		if err != nil {
			return nil, fmt.Errorf("kmsg: %w", err)
		}
		opts.Boot = &bc
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kmsg: %w", err)
	}
	if !opts.FromStart {
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("kmsg %s: seek to end: %w", path, err)
		}
	}
	k := &KmsgFollower{path: path, f: f, r: f, opts: opts, stats: opts.Stats,
		buf: make([]byte, kmsgBuffer)}
	if k.stats == nil {
		k.stats = new(Stats)
	}
	// os.Open puts character devices that support poll(2) into the
	// runtime's poller, which makes read deadlines work.
	k.pollable = f.SetReadDeadline(time.Time{}) == nil
	return k, nil
}

// Stats returns the follower's counters.
func (k *KmsgFollower) Stats() *Stats { return k.stats }

// Close closes the device. Call it after Run has returned.
func (k *KmsgFollower) Close() error {
	if err := k.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("kmsg %s: %w", k.path, err)
	}
	return nil
}

// Run reads records until ctx is done, delivering entries to h. It
// returns nil when ctx ends (a blocked read is ended by a deadline in the
// past, or by closing the file when the device cannot take deadlines),
// or the first read or handler error. Given a regular file as path it
// reads whole lines of kmsg records and returns nil at the end; that is
// for tests, and files of saved records are better read by FileFollower,
// whose parser knows the kmsg prefix too.
func (k *KmsgFollower) Run(ctx context.Context, h Handler) error {
	if k.pollable {
		if err := k.f.SetReadDeadline(time.Time{}); err != nil {
			return fmt.Errorf("kmsg %s: %w", k.path, err)
		}
	}
	opts := k.opts
	opts.NoJoin = true // records are whole; nothing to join
	p := newProcessor(opts, k.stats, h)

	stop := context.AfterFunc(ctx, func() {
		if k.pollable {
			k.f.SetReadDeadline(time.Now())
		} else {
			k.f.Close()
		}
	})
	defer stop()

	for {
		n, err := k.r.Read(k.buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			switch {
			case errors.Is(err, syscall.EPIPE):
				k.stats.KmsgOverruns.Add(1)
				continue
			case errors.Is(err, syscall.EINVAL):
				if len(k.buf) >= maxKmsgBuffer {
					return fmt.Errorf("kmsg %s: record larger than %d bytes: %w",
						k.path, len(k.buf), err)
				}
				k.buf = make([]byte, 2*len(k.buf))
				continue
			case errors.Is(err, io.EOF):
				return nil
			}
			return fmt.Errorf("kmsg %s: read: %w", k.path, err)
		}
		if n == 0 {
			return nil
		}
		if err := k.record(p, k.buf[:n], time.Now()); err != nil {
			return err
		}
	}
}

// record handles what one read returned: normally one record and its
// dictionary lines; a regular file may hold many records.
func (k *KmsgFollower) record(p *processor, b []byte, received time.Time) error {
	for len(b) > 0 {
		line := b
		if nl := bytes.IndexByte(b, '\n'); nl >= 0 {
			line, b = b[:nl], b[nl+1:]
		} else {
			b = nil
		}
		if len(line) == 0 || line[0] == ' ' {
			continue // dictionary line of the record before
		}
		k.stats.Lines.Add(1)
		var h header
		if scanKmsg(line, &h) > 0 {
			if k.haveSeq && h.seq > k.lastSeq+1 {
				k.stats.KmsgLost.Add(h.seq - k.lastSeq - 1)
			}
			k.lastSeq, k.haveSeq = h.seq, true
		}
		if err := p.logical(line, 1, received); err != nil {
			return err
		}
	}
	return nil
}

// FollowKmsg follows /dev/kmsg until ctx is done; see KmsgFollower.
func FollowKmsg(ctx context.Context, opts Options, h Handler) error {
	k, err := NewKmsgFollower("", opts)
	if err != nil {
		return err
	}
	defer k.Close()
	return k.Run(ctx, h)
}
