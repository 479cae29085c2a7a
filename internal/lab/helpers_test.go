package lab

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/florianl/go-nflog/v2"
	"github.com/miekg/dns"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"

	"github.com/mdlayher/netlink"
)

// testTimeout bounds each privileged test.
const testTimeout = 20 * time.Second

// testContext returns a context that ends with the test or after
// testTimeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startLab starts a lab that the test's cleanup closes.
func startLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	l, err := Start(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// sh runs a command in the test's own namespace and returns its output.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ownNetns lists the namespaces this process's labs have, or had, made.
func ownNetns(t *testing.T) []string {
	t.Helper()
	o, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, line := range strings.Split(sh(t, "ip", "netns", "list"), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, netnsPrefix+o.String()+"-") {
			own = append(own, name)
		}
	}
	return own
}

// labLinks lists interfaces in the test's own namespace that look like
// lab interfaces; there must never be any.
func labLinks(t *testing.T) []string {
	t.Helper()
	var links []string
	for _, line := range strings.Split(sh(t, "ip", "-o", "link", "show"), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 1 && strings.HasPrefix(fields[1], "ctw") {
			links = append(links, fields[1])
		}
	}
	return links
}

// waitGoroutines waits for the goroutine count to fall to want.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > want {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines remain, want at most %d:\n%s", n, want, buf)
	}
}

// destroyWatcher collects conntrack DESTROY events in a lab's resolver
// namespace.
type destroyWatcher struct {
	conn   *conntrack.Conn
	events chan conntrack.Event
}

func watchDestroy(t *testing.T, l *Lab) *destroyWatcher {
	t.Helper()
	ns, err := l.Resolver().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(ns.Fd())})
	if err != nil {
		t.Fatalf("dial conntrack: %v", err)
	}
	w := &destroyWatcher{conn: c, events: make(chan conntrack.Event, 1024)}
	errs, err := c.Listen(w.events, 1, []netfilter.NetlinkGroup{netfilter.GroupCTDestroy})
	if err != nil {
		t.Fatalf("listen for conntrack events: %v", err)
	}
	go func() {
		for range errs { // Listen's error channel must be drained.
		}
	}()
	t.Cleanup(func() { c.Close() })
	return w
}

// next returns the next DESTROY for a flow whose original source is src,
// waiting up to d; ok is false if none came.
func (w *destroyWatcher) next(src netip.AddrPort, d time.Duration) (f conntrack.Flow, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-w.events:
			if ev.Flow == nil {
				continue
			}
			o := ev.Flow.TupleOrig
			if netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort) == src {
				return *ev.Flow, true
			}
		case <-timer.C:
			return conntrack.Flow{}, false
		}
	}
}

// nflogRecord is one NFLOG message: the DNS name and id in its payload,
// and when the test read it.
type nflogRecord struct {
	name   string
	id     uint16
	prefix string
	read   time.Time
}

// nflogWatcher collects NFLOG messages of one group in a lab's resolver
// namespace.
type nflogWatcher struct {
	mu      sync.Mutex
	records []nflogRecord // guarded by mu
	bad     int           // payloads that did not decode; guarded by mu
}

func watchNFLOG(t *testing.T, l *Lab, group uint16) *nflogWatcher {
	t.Helper()
	ns, err := l.Resolver().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nf, err := nflog.Open(&nflog.Config{
		NetNS:    int(ns.Fd()),
		Group:    group,
		Copymode: nflog.CopyPacket,
	})
	if err != nil {
		t.Fatalf("open nflog: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		nf.Close()
	})

	w := &nflogWatcher{}
	hook := func(a nflog.Attribute) int {
		rec := nflogRecord{read: time.Now()}
		if a.Prefix != nil {
			rec.prefix = *a.Prefix
		}
		var ok bool
		if a.Payload != nil {
			rec.name, rec.id, ok = dnsInPacket(*a.Payload)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if !ok {
			w.bad++
			return 0
		}
		w.records = append(w.records, rec)
		return 0
	}
	stop := func(error) int { return 1 }
	if err := nf.RegisterWithErrorFunc(ctx, hook, stop); err != nil {
		t.Fatalf("register nflog hook: %v", err)
	}
	return w
}

func (w *nflogWatcher) snapshot() ([]nflogRecord, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]nflogRecord(nil), w.records...), w.bad
}

// dnsInPacket decodes the DNS message in an IP packet carrying UDP.
func dnsInPacket(pkt []byte) (name string, id uint16, ok bool) {
	if len(pkt) < 1 {
		return "", 0, false
	}
	hdr := ipv6HeaderLen
	if pkt[0]>>4 == 4 {
		hdr = int(pkt[0]&0x0f) * 4
	}
	if len(pkt) < hdr+udpHeaderLen {
		return "", 0, false
	}
	var m dns.Msg
	if m.Unpack(pkt[hdr+udpHeaderLen:]) != nil || len(m.Question) != 1 {
		return "", 0, false
	}
	return m.Question[0].Name, m.Id, true
}

// kmsgReader reads kernel log records written after it was opened.
type kmsgReader struct{ fd int }

func openKmsg(t *testing.T) *kmsgReader {
	t.Helper()
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.Seek(fd, 0, 2); err != nil {
		t.Fatalf("seek /dev/kmsg: %v", err)
	}
	return &kmsgReader{fd: fd}
}

// find waits up to d for a record containing every one of parts.
func (k *kmsgReader) find(d time.Duration, parts ...string) (string, bool) {
	deadline := time.Now().Add(d)
	buf := make([]byte, 8192)
	for time.Now().Before(deadline) {
		n, err := syscall.Read(k.fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			time.Sleep(20 * time.Millisecond)
			continue
		case errors.Is(err, syscall.EPIPE): // records overwritten; go on
			continue
		case err != nil || n <= 0:
			return "", false
		}
		rec := buf[:n]
		all := true
		for _, p := range parts {
			all = all && bytes.Contains(rec, []byte(p))
		}
		if all {
			return string(rec), true
		}
	}
	return "", false
}
