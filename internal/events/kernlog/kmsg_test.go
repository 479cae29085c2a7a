package kernlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/privtest"
)

// TestKmsg writes a LOG-shaped record to /dev/kmsg (each write(2) becomes
// one record, with facility user) and reads it back through the follower,
// which must have positioned at the end first and must convert the
// record's boot-relative stamp to about now.
func TestKmsg(t *testing.T) {
	privtest.RequireRoot(t)

	var tagBytes [6]byte
	rand.Read(tagBytes[:])
	tag := "ctwatch-kernlog-test-" + hex.EncodeToString(tagBytes[:])

	k, err := NewKmsgFollower("", Options{})
	if err != nil {
		privtest.Unavailable(t, "open /dev/kmsg: %v", err)
	}
	defer k.Close()
	if !k.pollable {
		t.Error("/dev/kmsg is not in the runtime poller: " +
			"a blocked read cannot be ended by a deadline")
	}

	w, err := os.OpenFile(DefaultKmsgPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	msg := fmt.Sprintf("<12>%s: IN=lo OUT= SRC=198.18.0.1 DST=198.18.0.2 LEN=60 "+
		"TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=53 DPT=40000 LEN=40 \n", tag)
	written := time.Now()
	if _, err := w.WriteString(msg); err != nil {
		t.Fatalf("write /dev/kmsg: %v", err)
	}

	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, c.handle) }()

	var got *Entry
	timeout := time.After(10 * time.Second)
	for got == nil {
		select {
		case e := <-c.ch:
			if strings.Contains(e.Record.Prefix, tag) {
				got = &e
			}
		case <-timeout:
			t.Fatal("record written to /dev/kmsg not read back")
		}
	}

	// The follower must stop when ctx ends although its read is blocked.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	r := got.Record
	if got.Result != Firewall || r.Clock != ClockBoot || r.Seq == 0 {
		t.Fatalf("entry %v %v, record %+v", got.Result, got.Err, r)
	}
	d := r.Time.Sub(written)
	if d < -2*time.Second || d > 2*time.Second {
		t.Errorf("converted time %v is %v from the write at %v", r.Time, d, written)
	}
	t.Logf("kmsg stamp converted to %v, %v from the write", r.Time, d)
	drop, ok := r.Drop()
	if !ok || drop.Src != netip.MustParseAddrPort("198.18.0.1:53") || drop.InIface != "lo" {
		t.Errorf("Drop() = %+v, %v", drop, ok)
	}
	if s := k.Stats().Snapshot(); s.Lines == 0 || s.Firewall == 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestBootClock compares NewBootClock with /proc/uptime, which counts
// from the same boot.
func TestBootClock(t *testing.T) {
	bc, err := NewBootClock()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		privtest.Unavailable(t, "no /proc/uptime: %v", err)
	}
	var up float64
	if _, err := fmt.Sscan(string(data), &up); err != nil {
		t.Fatal(err)
	}
	// /proc/uptime counts suspended time too: it is CLOCK_BOOTTIME.
	fromUptime := time.Now().Add(-time.Duration(up * float64(time.Second)))
	diff := bc.Boot().Add(-bc.Suspended()).Sub(fromUptime)
	if diff < -time.Second || diff > time.Second {
		t.Errorf("boot %v (suspended %v) vs /proc/uptime %v",
			bc.Boot(), bc.Suspended(), fromUptime)
	}

	r := Record{Clock: ClockBoot, SinceBoot: 90 * time.Second}
	bc.Convert(&r)
	if !r.Time.Equal(bc.Boot().Add(90 * time.Second)) {
		t.Errorf("Convert: %v", r.Time)
	}
	wall := Record{Clock: ClockWall, Time: time.Unix(1, 0), SinceBoot: time.Second}
	bc.Convert(&wall)
	if !wall.Time.Equal(time.Unix(1, 0)) {
		t.Error("Convert changed a wall-clock record")
	}
}
