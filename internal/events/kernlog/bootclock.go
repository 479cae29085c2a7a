package kernlog

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"
)

// BootClock turns the kernel's boot-relative printk stamps into wall
// time. It is computed once, so every record converts with the same
// offset and conversions are consistent with each other; a later step
// of the wall clock (NTP, settimeofday) does not move them.
//
// The printk clock (local_clock) stops while the machine is suspended,
// like CLOCK_MONOTONIC and unlike CLOCK_BOOTTIME. NewBootClock therefore
// takes the boot instant as realtime minus CLOCK_MONOTONIC, which is
// what dmesg -T effectively does ("boot time" plus the boottime-monotonic
// delta) and which is exact for records written since the last resume.
// Suspended reports the difference to a CLOCK_BOOTTIME-based boot time;
// the two agree on a host that never suspended.
type BootClock struct {
	boot      time.Time
	suspended time.Duration
}

// Clock ids from <linux/time.h>; the syscall package does not name them.
const (
	clockMonotonic = 1
	clockBoottime  = 7
)

// NewBootClock reads the realtime, monotonic and boottime clocks once.
func NewBootClock() (BootClock, error) {
	before := time.Now()
	mono, err := clockGettime(clockMonotonic)
	if err != nil {
		return BootClock{}, fmt.Errorf("boot clock: CLOCK_MONOTONIC: %w", err)
	}
	boottime, err := clockGettime(clockBoottime)
	if err != nil {
		return BootClock{}, fmt.Errorf("boot clock: CLOCK_BOOTTIME: %w", err)
	}
	after := time.Now()
	// The midpoint of the two realtime reads is the best estimate of the
	// instant the monotonic clock was read.
	now := before.Add(after.Sub(before) / 2).Round(0)
	return BootClock{
		boot:      now.Add(-mono).UTC(),
		suspended: boottime - mono,
	}, nil
}

// BootClockAt returns a BootClock for a known boot instant, for tests and
// for logs of a previous boot whose boot time is known.
func BootClockAt(boot time.Time) BootClock {
	return BootClock{boot: boot.Round(0).UTC()}
}

// Boot returns the wall-clock instant the printk clock was zero.
func (c BootClock) Boot() time.Time { return c.boot }

// Suspended returns CLOCK_BOOTTIME minus CLOCK_MONOTONIC when the clock
// was read: the total time spent suspended since boot.
func (c BootClock) Suspended() time.Duration { return c.suspended }

// IsZero reports whether c is the zero BootClock, which converts nothing.
func (c BootClock) IsZero() bool { return c.boot.IsZero() }

// Wall converts a time since boot to wall time (UTC).
func (c BootClock) Wall(sinceBoot time.Duration) time.Time {
	return c.boot.Add(sinceBoot)
}

// Convert sets r.Time from r.SinceBoot when the record has only a
// boot-relative stamp. It leaves records with a wall-clock stamp alone
// and does nothing for the zero BootClock.
func (c BootClock) Convert(r *Record) {
	if c.IsZero() || r.Clock != ClockBoot || !r.Time.IsZero() {
		return
	}
	r.Time = c.Wall(r.SinceBoot)
}

func clockGettime(id uintptr) (time.Duration, error) {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, id,
		uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, errno
	}
	return time.Duration(ts.Nano()), nil
}
