package kernlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// FileFollower follows a log file the way tail -F does, by polling: it
// reads to the end, then every PollInterval checks whether the file grew,
// whether the path now names a different file (rotation by rename and
// create) and whether the file shrank (copytruncate).
//
// After a rotation the old file is still read, before the new one each
// round, until it has been quiet for RotateGrace, so lines a writer adds
// before it reopens the path are not lost. After a truncation the file is
// read again from its start.
//
// Warning: polling has blind spots. A file truncated and then refilled
// past the read offset within one poll interval looks as if it had only
// grown, and its new first bytes are skipped; a file rotated twice
// within one interval loses the middle file.
type FileFollower struct {
	path  string
	opts  Options
	stats *Stats

	cur     *followed // the file at path
	old     *followed // the file rotated away, still drained; or nil
	oldSeen time.Time // when old last gave data
	buf     []byte
}

// followed is one open file and where reading got to.
type followed struct {
	f    *os.File
	info os.FileInfo // identity, for os.SameFile
	off  int64
	s    splitter
}

// NewFileFollower opens path and positions at its end (or, with
// Options.FromStart, at its start). When it starts at the end in the
// middle of a line being written, that line's remainder is skipped.
func NewFileFollower(path string, opts Options) (*FileFollower, error) {
	ff := &FileFollower{path: path, opts: opts, stats: opts.Stats,
		buf: make([]byte, 64<<10)}
	if ff.stats == nil {
		ff.stats = new(Stats)
	}
	cur, err := openFollowed(path)
	if err != nil {
		return nil, err
	}
	if !opts.FromStart {
		size := cur.info.Size()
		if _, err := cur.f.Seek(size, io.SeekStart); err != nil {
			cur.f.Close()
			return nil, fmt.Errorf("follow %s: seek: %w", path, err)
		}
		cur.off = size
		if size > 0 {
			var last [1]byte
			if _, err := cur.f.ReadAt(last[:], size-1); err == nil &&
				last[0] != '\n' {
				cur.s.skipping = true
			}
		}
	}
	ff.cur = cur
	return ff, nil
}

func openFollowed(path string) (*followed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("follow %s: %w", path, err)
	}
	return &followed{f: f, info: info}, nil
}

// Close closes the files. Call it after Run has returned.
func (ff *FileFollower) Close() error {
	var errs []error
	if ff.old != nil {
		errs = append(errs, ff.old.f.Close())
		ff.old = nil
	}
	if ff.cur != nil {
		errs = append(errs, ff.cur.f.Close())
		ff.cur = nil
	}
	return errors.Join(errs...)
}

// Run follows the file until ctx is done, delivering entries to h. It
// returns nil when ctx ends (after handing on a record held for its
// continuation), or the first read or handler error.
func (ff *FileFollower) Run(ctx context.Context, h Handler) error {
	if ff.cur == nil {
		return fmt.Errorf("follow %s: %w", ff.path, os.ErrClosed)
	}
	p := newProcessor(ff.opts, ff.stats, h)
	tick := time.NewTicker(ff.opts.pollInterval())
	defer tick.Stop()
	cutRounds := 0
	for {
		got := false
		if ff.old != nil {
			n, err := ff.drain(p, ff.old)
			if err != nil {
				return err
			}
			now := time.Now()
			if n > 0 {
				ff.oldSeen, got = now, true
			} else if now.Sub(ff.oldSeen) >= ff.opts.rotateGrace() {
				if err := ff.retireOld(p); err != nil {
					return err
				}
			}
		}
		n, err := ff.drain(p, ff.cur)
		if err != nil {
			return err
		}
		got = got || n > 0

		// A cut record is held one quiet round for its continuation.
		if got {
			cutRounds = 0
		} else if p.waiting() {
			cutRounds++
		}
		if err := p.idle(cutRounds > 1, time.Now()); err != nil {
			return err
		}

		select {
		case <-ctx.Done():
			return p.idle(true, time.Now())
		case <-tick.C:
		}
		if err := ff.check(p); err != nil {
			return err
		}
	}
}

// drain reads fl to its current end.
func (ff *FileFollower) drain(p *processor, fl *followed) (int64, error) {
	var total int64
	for {
		n, err := fl.f.Read(ff.buf)
		if n > 0 {
			total += int64(n)
			fl.off += int64(n)
			if ferr := fl.s.feed(p, ff.buf[:n], time.Now()); ferr != nil {
				return total, ferr
			}
		}
		switch {
		case errors.Is(err, io.EOF) || (err == nil && n == 0):
			return total, nil
		case err != nil:
			return total, fmt.Errorf("follow %s: read: %w", ff.path, err)
		}
	}
}

// retireOld hands on the old file's unfinished line and closes it.
func (ff *FileFollower) retireOld(p *processor) error {
	old := ff.old
	ff.old = nil
	err := old.s.finish(p, time.Now())
	old.f.Close()
	return err
}

// check looks for rotation and truncation.
func (ff *FileFollower) check(p *processor) error {
	info, err := os.Stat(ff.path)
	if err != nil {
		// Between rename and create the path may be missing for a
		// moment; keep reading the open file.
		return nil
	}
	if !os.SameFile(info, ff.cur.info) {
		next, err := openFollowed(ff.path)
		if err != nil {
			return nil // gone again; try at the next poll
		}
		if ff.old != nil {
			if _, err := ff.drain(p, ff.old); err != nil {
				next.f.Close()
				return err
			}
			if err := ff.retireOld(p); err != nil {
				next.f.Close()
				return err
			}
		}
		ff.stats.Rotations.Add(1)
		ff.old, ff.oldSeen = ff.cur, time.Now()
		ff.cur = next
		return nil
	}

	st, err := ff.cur.f.Stat()
	if err != nil {
		return fmt.Errorf("follow %s: %w", ff.path, err)
	}
	if st.Size() < ff.cur.off {
		ff.stats.Truncations.Add(1)
		if err := ff.cur.s.finish(p, time.Now()); err != nil {
			return err
		}
		if _, err := ff.cur.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("follow %s: seek: %w", ff.path, err)
		}
		ff.cur.off = 0
	}
	return nil
}

// FollowFile follows path until ctx is done; see FileFollower.
func FollowFile(ctx context.Context, path string, opts Options, h Handler) error {
	ff, err := NewFileFollower(path, opts)
	if err != nil {
		return err
	}
	defer ff.Close()
	return ff.Run(ctx, h)
}
