package kernlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Options fields left zero.
const (
	// DefaultPollInterval is how often FileFollower checks its file for
	// growth, rotation and truncation once it has read everything, and
	// how long a follower waits for the rest of a record that looks cut
	// by a hard wrap before handing it on as it is.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultRotateGrace is how long FileFollower keeps reading a rotated
	// (renamed) file after the last data it found there, for a writer
	// that has not reopened its log yet.
	DefaultRotateGrace = 2 * time.Second
	// DefaultMaxLineBytes caps one physical line; longer lines are cut
	// and counted in Stats.LongLines.
	DefaultMaxLineBytes = 64 << 10
)

// Options configure a follower. The zero value is usable.
type Options struct {
	// Parser parses the lines. Nil means a zero Parser (time.Local for
	// zone-less stamps). A Parser is stateful: give each follower its own.
	Parser *Parser
	// Stats receives the follower's counters. Nil means the follower
	// keeps its own, available from its Stats method.
	Stats *Stats
	// Boot converts boot-relative stamps (dmesg brackets, kmsg) to wall
	// time. KmsgFollower reads one with NewBootClock when this is nil;
	// the other followers leave such records with a zero Time, since a
	// file may come from an earlier boot.
	Boot *BootClock
	// FromStart makes FileFollower read the file from its beginning and
	// KmsgFollower from the oldest record in the ring buffer, instead of
	// starting at the end.
	FromStart bool
	// PollInterval: see DefaultPollInterval.
	PollInterval time.Duration
	// RotateGrace: see DefaultRotateGrace.
	RotateGrace time.Duration
	// NoJoin turns off the Joiner: every physical line is parsed alone.
	NoJoin bool
	// All delivers NotFirewall lines to the handler too; by default they
	// are only counted.
	All bool
	// MaxLineBytes: see DefaultMaxLineBytes.
	MaxLineBytes int
}

func (o *Options) pollInterval() time.Duration {
	if o.PollInterval > 0 {
		return o.PollInterval
	}
	return DefaultPollInterval
}

func (o *Options) rotateGrace() time.Duration {
	if o.RotateGrace > 0 {
		return o.RotateGrace
	}
	return DefaultRotateGrace
}

func (o *Options) maxLineBytes() int {
	if o.MaxLineBytes > 0 {
		return o.MaxLineBytes
	}
	return DefaultMaxLineBytes
}

// Stats counts what a follower read. Fields are updated atomically and
// may be read at any time from any goroutine, e.g. by a metrics
// collector. A Stats must not be copied after first use.
type Stats struct {
	// Lines counts physical lines read (for /dev/kmsg: records).
	Lines atomic.Uint64
	// Joined counts physical lines appended to the line before them by
	// the Joiner; logical lines = Lines - Joined.
	Joined atomic.Uint64
	// Firewall, NotFirewall and Malformed count logical lines by Result.
	Firewall    atomic.Uint64
	NotFirewall atomic.Uint64
	Malformed   atomic.Uint64
	// LongLines counts physical lines cut at the MaxLineBytes limit.
	LongLines atomic.Uint64
	// KmsgOverruns counts EPIPE errors from /dev/kmsg: the reader fell
	// behind and the ring buffer overwrote records it had not read.
	// KmsgLost counts those records, from gaps in the sequence numbers.
	KmsgOverruns atomic.Uint64
	KmsgLost     atomic.Uint64
	// Rotations counts files replaced at the followed path (rename and
	// create); Truncations counts files truncated in place
	// (copytruncate).
	Rotations   atomic.Uint64
	Truncations atomic.Uint64
}

// StatsSnapshot is a plain copy of Stats at one moment.
type StatsSnapshot struct {
	Lines, Joined                    uint64
	Firewall, NotFirewall, Malformed uint64
	LongLines                        uint64
	KmsgOverruns, KmsgLost           uint64
	Rotations, Truncations           uint64
}

// Snapshot reads every counter. The counters are read one by one, so a
// snapshot taken while a follower runs is not one instant.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Lines:        s.Lines.Load(),
		Joined:       s.Joined.Load(),
		Firewall:     s.Firewall.Load(),
		NotFirewall:  s.NotFirewall.Load(),
		Malformed:    s.Malformed.Load(),
		LongLines:    s.LongLines.Load(),
		KmsgOverruns: s.KmsgOverruns.Load(),
		KmsgLost:     s.KmsgLost.Load(),
		Rotations:    s.Rotations.Load(),
		Truncations:  s.Truncations.Load(),
	}
}

// Entry is one parsed logical line, as handed to a Handler.
type Entry struct {
	Result Result
	// Err says why the line is Malformed; nil otherwise.
	Err    error
	Record Record
	// Line is the logical line without its newline; it is only valid
	// during the Handler call. Copy it to keep it.
	Line []byte
	// Lines is the number of physical lines joined into Line.
	Lines int
}

// Handler receives each Firewall and Malformed line (and with
// Options.All every line). The Entry is reused for the next line, but
// its Record is a value that may be copied and kept. A non-nil error
// stops the follower, which returns it unchanged.
type Handler func(e *Entry) error

// processor turns physical lines into parsed, counted, delivered entries;
// it is the part all followers share.
type processor struct {
	opts   Options
	parser *Parser
	stats  *Stats
	boot   BootClock
	join   *Joiner
	h      Handler
	entry  Entry
}

func newProcessor(opts Options, stats *Stats, h Handler) *processor {
	p := &processor{opts: opts, parser: opts.Parser, stats: stats, h: h}
	if p.parser == nil {
		p.parser = &Parser{}
	}
	if opts.Boot != nil {
		p.boot = *opts.Boot
	}
	if !opts.NoJoin {
		p.join = &Joiner{}
	}
	return p
}

// physical handles one physical line.
func (p *processor) physical(line []byte, received time.Time) error {
	p.stats.Lines.Add(1)
	if p.join == nil {
		return p.logical(line, 1, received)
	}
	out, n, ok := p.join.Push(line)
	if !ok {
		if p.join.Pending() && p.join.curLines > 1 {
			p.stats.Joined.Add(1)
		}
		return nil
	}
	return p.logical(out, n, received)
}

// idle is called when no more input is at hand. A held line that looks
// complete is handed on at once; one that looks cut only when force is
// set (the caller waited a poll interval for its continuation).
func (p *processor) idle(force bool, received time.Time) error {
	if p.join == nil || !p.join.Pending() {
		return nil
	}
	if !force && p.join.PendingCut() {
		return nil
	}
	out, n, _ := p.join.Flush()
	return p.logical(out, n, received)
}

// waiting reports whether a cut line is held for its continuation.
func (p *processor) waiting() bool {
	return p.join != nil && p.join.Pending()
}

// logical parses, counts and delivers one logical line.
func (p *processor) logical(line []byte, lines int, received time.Time) error {
	e := &p.entry
	res, err := p.parser.Parse(line, &e.Record)
	e.Record.Received = received
	p.boot.Convert(&e.Record)
	switch res {
	case Firewall:
		p.stats.Firewall.Add(1)
	case Malformed:
		p.stats.Malformed.Add(1)
	default:
		p.stats.NotFirewall.Add(1)
		if !p.opts.All {
			return nil
		}
	}
	e.Result, e.Err, e.Line, e.Lines = res, err, line, lines
	return p.h(e)
}

// splitter cuts a byte stream into physical lines, keeping the
// unfinished last line between reads. Each file gets its own.
type splitter struct {
	partial  []byte
	skipping bool // discarding the rest of an over-long line
}

// feed splits data and hands each complete line to p.
func (s *splitter) feed(p *processor, data []byte, received time.Time) error {
	max := p.opts.maxLineBytes()
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			return s.keep(p, data, max, received)
		}
		chunk := data[:nl]
		data = data[nl+1:]
		if s.skipping {
			s.skipping = false
			continue
		}
		line := chunk
		if len(s.partial) > 0 {
			s.partial = append(s.partial, chunk...)
			line = s.partial
		}
		if len(line) > max {
			line = line[:max]
			p.stats.LongLines.Add(1)
		}
		err := p.physical(line, received)
		s.partial = s.partial[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// keep stores an unfinished line, cutting it at max bytes.
func (s *splitter) keep(p *processor, data []byte, max int, received time.Time) error {
	if s.skipping {
		return nil
	}
	s.partial = append(s.partial, data...)
	if len(s.partial) <= max {
		return nil
	}
	// Hand on the first max bytes now and drop the rest of the line
	// when it comes, so one endless line cannot eat memory.
	s.skipping = true
	p.stats.LongLines.Add(1)
	line := s.partial[:max]
	s.partial = s.partial[:0]
	return p.physical(line, received)
}

// finish hands on an unfinished last line as a line of its own: its
// writer is gone (end of input, rotation, truncation).
func (s *splitter) finish(p *processor, received time.Time) error {
	skipping := s.skipping
	s.skipping = false
	if len(s.partial) == 0 || skipping {
		s.partial = s.partial[:0]
		return nil
	}
	line := s.partial
	s.partial = s.partial[:0]
	return p.physical(line, received)
}

// deadliner is implemented by readers whose blocked Read can be
// interrupted: pipes and files opened non-blocking, network connections.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// ReadStream parses r until EOF, delivering entries to h, and returns
// nil at EOF or when ctx is done, or the first read or handler error. A
// last line without a newline is delivered at EOF, not when ctx ends.
//
// Reads happen on a separate goroutine so that a hard-wrapped record can
// be handed on after a pause even while the next Read blocks. When ctx
// ends, ReadStream returns promptly; if r has a SetReadDeadline method
// the blocked Read is interrupted.
//
// Warning: otherwise (os.Stdin on a terminal or a blocking pipe) the
// reading goroutine stays blocked in Read until the reader yields data,
// EOF or an error, and only then exits.
func ReadStream(ctx context.Context, r io.Reader, opts Options, h Handler) error {
	stats := opts.Stats
	if stats == nil {
		stats = new(Stats)
	}
	p := newProcessor(opts, stats, h)
	var s splitter

	type chunk struct {
		buf []byte
		n   int
		err error
		at  time.Time
	}
	const nbufs = 2
	free := make(chan []byte, nbufs)
	for range nbufs {
		free <- make([]byte, 64<<10)
	}
	full := make(chan chunk, nbufs)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			n, err := r.Read(buf)
			select {
			case full <- chunk{buf: buf, n: n, err: err, at: time.Now()}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(done)
		if d, ok := r.(deadliner); ok && d.SetReadDeadline(time.Now()) == nil {
			wg.Wait()
		}
	}()

	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			// Hand on a record held for its continuation; an unfinished
			// last line may still be being written, and is dropped.
			return p.idle(true, time.Now())
		case <-wait.C:
			if err := p.idle(true, time.Now()); err != nil {
				return err
			}
		case c := <-full:
			err := s.feed(p, c.buf[:c.n], c.at)
			free <- c.buf
			if err != nil {
				return err
			}
			if c.err != nil {
				if ferr := s.finish(p, c.at); ferr != nil {
					return ferr
				}
				if ferr := p.idle(true, c.at); ferr != nil {
					return ferr
				}
				if errors.Is(c.err, io.EOF) {
					return nil
				}
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("read: %w", c.err)
			}
			if len(full) > 0 {
				continue
			}
			if err := p.idle(false, c.at); err != nil {
				return err
			}
			if p.waiting() {
				wait.Reset(opts.pollInterval())
			} else {
				wait.Stop()
			}
		}
	}
}
