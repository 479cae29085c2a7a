package kernlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// recordLine returns a syslog LOG line whose destination port identifies
// it.
func recordLine(port int) string {
	return fmt.Sprintf("Dec  4 04:11:41 ns1 kernel: DNS-LATE: IN=eth0 OUT= %s "+
		"SRC=198.18.0.53 DST=198.18.0.10 LEN=76 TOS=0x00 PREC=0x00 TTL=64 "+
		"ID=4242 DF PROTO=UDP SPT=53 DPT=%d LEN=56 ", mac4, port)
}

// collector is a Handler that sends each entry's record to a channel, so
// that the test goroutine, not the follower's, makes the assertions.
type collector struct {
	ch chan Entry
}

func newCollector() *collector { return &collector{ch: make(chan Entry, 1000)} }

func (c *collector) handle(e *Entry) error {
	cp := *e
	cp.Line = bytes.Clone(e.Line)
	c.ch <- cp
	return nil
}

// waitPorts waits for n entries and returns their destination ports.
func (c *collector) waitPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	timeout := time.After(10 * time.Second)
	for len(ports) < n {
		select {
		case e := <-c.ch:
			if e.Result != Firewall {
				t.Fatalf("entry %v %v: %q", e.Result, e.Err, e.Line)
			}
			ports = append(ports, int(e.Record.DstPort))
		case <-timeout:
			t.Fatalf("got %d entries %v, want %d", len(ports), ports, n)
		}
	}
	return ports
}

// noMore asserts that no further entry arrives within a short while.
func (c *collector) noMore(t *testing.T) {
	t.Helper()
	select {
	case e := <-c.ch:
		t.Errorf("unexpected entry %v: %q", e.Result, e.Line)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestReadStream(t *testing.T) {
	rec := recordLine(1001)
	in := strings.Join([]string{
		"Dec  4 04:11:40 ns1 kernel: eth0: link up",
		rec,
		recordLine(1002)[:90], recordLine(1002)[90:],
		strings.Replace(rec, "SPT=53", "SPT=99999", 1),
		"",
		recordLine(1003), // no newline at the end of input
	}, "\n")
	c := newCollector()
	var st Stats
	err := ReadStream(context.Background(), strings.NewReader(in),
		Options{Stats: &st, Parser: testParser()}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	close(c.ch)
	var got []string
	for e := range c.ch {
		got = append(got, fmt.Sprintf("%v:%d:%d", e.Result, e.Record.DstPort, e.Lines))
	}
	want := []string{"firewall:1001:1", "firewall:1002:2", "malformed:0:1",
		"firewall:1003:1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("entries %v, want %v", got, want)
	}
	s := st.Snapshot()
	if s.Lines != 7 || s.Joined != 1 || s.Firewall != 3 || s.Malformed != 1 ||
		s.NotFirewall != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestReadStreamPause checks that a record whose continuation comes
// after a pause is still joined, and that a cut record with no
// continuation is handed on after the poll interval.
func TestReadStreamPause(t *testing.T) {
	pr, pw := io.Pipe()
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ReadStream(ctx, pr, Options{PollInterval: 300 * time.Millisecond}, c.handle)
	}()

	rec := recordLine(2001)
	io.WriteString(pw, rec[:100]+"\n")
	io.WriteString(pw, rec[100:]+"\n")
	if got := c.waitPorts(t, 1); got[0] != 2001 {
		t.Errorf("port %d", got[0])
	}

	start := time.Now()
	io.WriteString(pw, recordLine(2002)[:100]+"\n")
	select {
	case e := <-c.ch:
		if e.Result != Malformed || !errors.Is(e.Err, ErrTruncated) {
			t.Errorf("cut record: %v %v", e.Result, e.Err)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("cut record handed on after %v, before the poll interval", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cut record never handed on")
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("ReadStream: %v", err)
	}
	pw.Close()
}

// TestReadStreamOneByte reads input one byte per Read, so that every
// line, and an over-long one, crosses read boundaries.
func TestReadStreamOneByte(t *testing.T) {
	in := recordLine(1) + "\n" + strings.Repeat("y", 500) + "\n" +
		recordLine(2)[:77] + "\n" + recordLine(2)[77:] + "\n" + recordLine(3)
	var st Stats
	c := newCollector()
	err := ReadStream(context.Background(), iotest.OneByteReader(strings.NewReader(in)),
		Options{Stats: &st, MaxLineBytes: 300}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	got := c.waitPorts(t, 3)
	if got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("ports %v", got)
	}
	if s := st.Snapshot(); s.LongLines != 1 || s.Lines != 5 || s.NotFirewall != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestReadStreamHandlerError(t *testing.T) {
	stop := errors.New("stop")
	in := recordLine(1) + "\n" + recordLine(2) + "\n"
	n := 0
	err := ReadStream(context.Background(), strings.NewReader(in), Options{NoJoin: true},
		func(*Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d entries", err, n)
	}
}

func TestReadStreamLongLine(t *testing.T) {
	in := strings.Repeat("x", 300) + "\n" + recordLine(7) + "\n"
	var st Stats
	c := newCollector()
	err := ReadStream(context.Background(), strings.NewReader(in),
		Options{Stats: &st, MaxLineBytes: 100}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	// The record itself is longer than 100 bytes and is cut too.
	if s := st.Snapshot(); s.LongLines != 2 {
		t.Errorf("LongLines %d, want 2", s.LongLines)
	}
}

// waitFor polls cond, which reads counters the follower updates
// atomically, until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := io.WriteString(f, l); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileFollower appends to, rotates and truncates a followed file and
// checks that every line written after the start is delivered once.
func TestFileFollower(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kern.log")
	// Existing content, ending inside a line: none of it is delivered.
	appendFile(t, path, recordLine(1)+"\n", recordLine(2)+"\n", recordLine(3)[:50])

	var st Stats
	const grace = 100 * time.Millisecond
	ff, err := NewFileFollower(path, Options{Stats: &st,
		PollInterval: 10 * time.Millisecond, RotateGrace: grace})
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ff.Run(ctx, c.handle) }()

	var got []int
	// Finish the partial line (skipped), then append.
	appendFile(t, path, recordLine(3)[50:]+"\n")
	appendFile(t, path, recordLine(101)+"\n", recordLine(102)+"\n")
	appendFile(t, path, recordLine(103)[:70])
	appendFile(t, path, recordLine(103)[70:]+"\n")
	got = append(got, c.waitPorts(t, 3)...)

	// Rotation: rename, a late line from a writer still holding the old
	// file, then the new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".1", recordLine(201)+"\n")
	appendFile(t, path, recordLine(202)+"\n", recordLine(203)+"\n")
	got = append(got, c.waitPorts(t, 3)...)
	waitFor(t, "rotation", func() bool { return st.Rotations.Load() == 1 })
	// Once the rotation is seen the old file is still drained...
	appendFile(t, path+".1", recordLine(204)+"\n")
	got = append(got, c.waitPorts(t, 1)...)
	// ...until it has been quiet for RotateGrace; then it is closed.
	time.Sleep(5 * grace)
	appendFile(t, path+".1", recordLine(205)+"\n")
	c.noMore(t)

	// copytruncate: copy, truncate, then write less than was there.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".2", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, recordLine(301)+"\n")
	got = append(got, c.waitPorts(t, 1)...)
	appendFile(t, path, recordLine(302)+"\n")
	got = append(got, c.waitPorts(t, 1)...)
	c.noMore(t)

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}

	seen := make(map[int]int)
	for _, p := range got {
		seen[p]++
	}
	for _, p := range []int{101, 102, 103, 201, 202, 203, 204, 301, 302} {
		if seen[p] != 1 {
			t.Errorf("port %d delivered %d times (all: %v)", p, seen[p], got)
		}
	}
	if len(got) != 9 {
		t.Errorf("delivered %v", got)
	}
	s := st.Snapshot()
	if s.Rotations != 1 || s.Truncations != 1 {
		t.Errorf("rotations %d, truncations %d; want 1, 1", s.Rotations, s.Truncations)
	}
}

func TestFileFollowerFromStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	appendFile(t, path, recordLine(1)+"\n", "noise\n", recordLine(2)+"\n")
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- FollowFile(ctx, path, Options{FromStart: true,
			PollInterval: 10 * time.Millisecond}, c.handle)
	}()
	got := c.waitPorts(t, 2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got[0] != 1 || got[1] != 2 {
		t.Errorf("ports %v", got)
	}
}

func TestFollowFileMissing(t *testing.T) {
	err := FollowFile(context.Background(), filepath.Join(t.TempDir(), "nope"),
		Options{}, func(*Entry) error { return nil })
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}

// fakeKmsg replays read results: records or errors.
type fakeKmsg struct {
	reads []fakeRead
}

type fakeRead struct {
	data    string
	err     error
	minSize int // EINVAL while the buffer is smaller
}

func (f *fakeKmsg) Read(b []byte) (int, error) {
	if len(f.reads) == 0 {
		return 0, io.EOF
	}
	r := f.reads[0]
	if len(b) < r.minSize {
		return 0, &os.PathError{Op: "read", Path: "/dev/kmsg", Err: syscall.EINVAL}
	}
	f.reads = f.reads[1:]
	if r.err != nil {
		return 0, &os.PathError{Op: "read", Path: "/dev/kmsg", Err: r.err}
	}
	return copy(b, r.data), nil
}

func TestKmsgFollowerFake(t *testing.T) {
	bc := BootClockAt(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC))
	k, err := NewKmsgFollower(filepath.Join("testdata", "corpus.txt"),
		Options{Boot: &bc, FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	rec := "4,%d,%d,-;DNS-LATE: " + body + "\n SUBSYSTEM=net\n DEVICE=n2\n"
	k.r = &fakeKmsg{reads: []fakeRead{
		{data: fmt.Sprintf(rec, 10, 1_000_000)},
		{data: fmt.Sprintf(rec, 11, 2_000_000)},
		{err: syscall.EPIPE},
		{data: fmt.Sprintf(rec, 15, 3_000_000), minSize: 40 << 10},
		{data: "6,16,3000001,-;eth0: link up\n"},
	}}
	c := newCollector()
	if err := k.Run(context.Background(), c.handle); err != nil {
		t.Fatal(err)
	}
	close(c.ch)
	var times []string
	for e := range c.ch {
		times = append(times, e.Record.Time.Format("15:04:05"))
	}
	if got := strings.Join(times, " "); got != "00:00:01 00:00:02 00:00:03" {
		t.Errorf("times %s", got)
	}
	s := k.Stats().Snapshot()
	if s.KmsgOverruns != 1 || s.KmsgLost != 3 || s.Lines != 4 || s.Firewall != 3 ||
		s.NotFirewall != 1 {
		t.Errorf("stats %+v", s)
	}
	if len(k.buf) < 40<<10 {
		t.Errorf("buffer did not grow on EINVAL: %d", len(k.buf))
	}
}
