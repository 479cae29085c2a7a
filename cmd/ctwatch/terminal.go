package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/term"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// noColor reports whether the user asked for no colour: NO_COLOR set to
// anything but the empty string (https://no-color.org).
func noColor() bool {
	v, ok := os.LookupEnv("NO_COLOR")
	return ok && v != ""
}

// keyInput returns where the live view reads keys from: stdin when it is
// a terminal that nothing else reads, else the controlling terminal. It
// returns nil when there is none; the view then ends with a signal only.
// The returned function releases what keyInput opened.
func keyInput(stdin io.Reader, stdinTaken bool) (io.Reader, func()) {
	if f, ok := stdin.(*os.File); ok && !stdinTaken && term.IsTerminal(int(f.Fd())) {
		return f, func() {}
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, func() {}
	}
	return tty, func() { tty.Close() }
}

// maxHeldLogs bounds the log records kept while the live view is shown;
// a flood of warnings must not grow memory without limit.
const maxHeldLogs = 1000

// logHold is a slog.Handler that passes records on to the handler it
// wraps, except while the live view covers the terminal, where a log line
// on stderr would scribble over the screen. Meanwhile records of level
// warn and above are held (up to maxHeldLogs), lower ones are discarded,
// and release writes the held ones out once the view has ended.
type logHold struct {
	inner slog.Handler
	st    *holdState // shared with the handlers derived from this one
}

type holdState struct {
	// mu guards holding and held: the pipeline's goroutines log while
	// the view starts and ends.
	mu      sync.Mutex
	holding bool
	held    []heldRecord
	// seen counts warnings and errors since holding started, kept or
	// not; the view shows it so that the user knows to look after.
	seen atomic.Uint64
}

type heldRecord struct {
	h slog.Handler // the derived handler, with its attributes and groups
	r slog.Record
}

func newLogHold(inner slog.Handler) *logHold {
	return &logHold{inner: inner, st: &holdState{}}
}

// Enabled defers to the wrapped handler's level.
func (l *logHold) Enabled(ctx context.Context, level slog.Level) bool {
	return l.inner.Enabled(ctx, level)
}

// Handle writes r, or holds it while the view is shown.
func (l *logHold) Handle(ctx context.Context, r slog.Record) error {
	st := l.st
	st.mu.Lock()
	if !st.holding {
		st.mu.Unlock()
		return l.inner.Handle(ctx, r)
	}
	defer st.mu.Unlock()
	if r.Level < slog.LevelWarn {
		return nil
	}
	st.seen.Add(1)
	if len(st.held) < maxHeldLogs {
		st.held = append(st.held, heldRecord{l.inner, r.Clone()})
	}
	return nil
}

// WithAttrs derives a handler that shares the hold.
func (l *logHold) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHold{inner: l.inner.WithAttrs(attrs), st: l.st}
}

// WithGroup derives a handler that shares the hold.
func (l *logHold) WithGroup(name string) slog.Handler {
	return &logHold{inner: l.inner.WithGroup(name), st: l.st}
}

// hold starts holding records back.
func (l *logHold) hold() {
	l.st.mu.Lock()
	l.st.seen.Store(0)
	l.st.holding = true
	l.st.mu.Unlock()
}

// heldCount returns how many warnings and errors arrived since hold.
func (l *logHold) heldCount() uint64 { return l.st.seen.Load() }

// release stops holding and writes out the records held, in order, with
// a note of how many did not fit.
func (l *logHold) release() {
	st := l.st
	st.mu.Lock()
	st.holding = false
	held := st.held
	st.held = nil
	st.mu.Unlock()

	ctx := context.Background()
	for _, h := range held {
		_ = h.h.Handle(ctx, h.r) // nowhere to report a failing stderr
	}
	if n := st.seen.Load(); n > uint64(len(held)) {
		slog.New(l.inner).Warn("log messages lost while the live view was shown",
			"lost", n-uint64(len(held)))
	}
}
