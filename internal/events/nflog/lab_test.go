package nflog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/netns"
	"github.com/ctwatch/ctwatch/internal/privtest"
)

// Lab constants. Addresses come only from 198.18.0.0/15 and fd00::/8 and
// live only inside the lab's namespaces.
const (
	labGroup   = 7
	labPrefix  = "ctw-late: "
	labInIface = "ctw-in0"
	labUpIface = "ctw-up0"
	labInMAC   = "02:00:5e:12:00:02"
	labUpMAC   = "02:00:5e:12:00:01"
)

// testLab is two network namespaces joined by a veth pair. "up" plays the
// DNS server and sends from port 53; "in" is the watched host, whose input
// chain logs UDP from port 53 to NFLOG group labGroup and drops it.
type testLab struct {
	inNS, upNS string
	// inFD is the watched namespace, for Config.NetNS.
	inFD *os.File

	up4, in4 netip.Addr
	up6, in6 netip.Addr
}

// newLab builds the lab and registers its removal with t.Cleanup. Building
// it takes about 100 ms.
func newLab(t testing.TB) *testLab {
	t.Helper()
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft")

	var id [4]byte
	_, _ = rand.Read(id[:])
	suffix := fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(id[:]))
	l := &testLab{
		inNS: "ctwnf-in-" + suffix,
		upNS: "ctwnf-up-" + suffix,
		up4:  netip.MustParseAddr("198.18.0.1"),
		in4:  netip.MustParseAddr("198.18.0.2"),
		up6:  netip.MustParseAddr("fd00:18::1"),
		in6:  netip.MustParseAddr("fd00:18::2"),
	}
	for _, ns := range []string{l.inNS, l.upNS} {
		runCmd(t, nil, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}

	up, in := []string{"-n", l.upNS}, []string{"-n", l.inNS}
	ip := func(ns []string, args ...string) {
		t.Helper()
		runCmd(t, nil, "ip", append(ns, args...)...)
	}
	ip(up, "link", "add", labUpIface, "address", labUpMAC, "type", "veth",
		"peer", "name", labInIface, "address", labInMAC, "netns", l.inNS)
	for _, side := range []struct {
		ns                  []string
		dev, mac, peerMAC   string
		addr4, addr6, peer4 string
		peer6               string
	}{
		{up, labUpIface, labUpMAC, labInMAC, "198.18.0.1/24", "fd00:18::1/64",
			l.in4.String(), l.in6.String()},
		{in, labInIface, labInMAC, labUpMAC, "198.18.0.2/24", "fd00:18::2/64",
			l.up4.String(), l.up6.String()},
	} {
		ip(side.ns, "link", "set", "lo", "up")
		ip(side.ns, "link", "set", side.dev, "up")
		ip(side.ns, "addr", "add", side.addr4, "dev", side.dev)
		// nodad: a tentative address cannot be bound for a second or two.
		ip(side.ns, "addr", "add", side.addr6, "dev", side.dev, "nodad")
		// Static neighbours: no ARP or ND delay before the first packet.
		for _, peer := range []string{side.peer4, side.peer6} {
			ip(side.ns, "neigh", "replace", peer, "lladdr", side.peerMAC,
				"dev", side.dev, "nud", "permanent")
		}
	}

	ruleset := fmt.Sprintf(`table inet ctwatch_nflog_test {
	chain input {
		type filter hook input priority filter; policy accept;
		udp sport 53 log prefix %q group %d queue-threshold 1 drop
	}
}
`, labPrefix, labGroup)
	runCmd(t, strings.NewReader(ruleset), "ip", "netns", "exec", l.inNS,
		"nft", "-f", "-")

	f, err := os.Open("/run/netns/" + l.inNS)
	if err != nil {
		t.Fatalf("open watched namespace: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	l.inFD = f
	return l
}

func runCmd(t testing.TB, stdin *strings.Reader, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// sender opens a UDP socket bound to src inside the "up" namespace.
func (l *testLab) sender(t testing.TB, src netip.AddrPort) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := inNetns("/run/netns/"+l.upNS, func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
		return err
	})
	if err != nil {
		t.Fatalf("listen on %v in %s: %v", src, l.upNS, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// inNetns runs fn on a thread switched into the namespace at path.
// Sockets fn creates stay in that namespace.
func inNetns(path string, fn func() error) error {
	h, err := netns.Open(path)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(fn)
}

// newReader opens a Reader on the lab's group in the watched namespace and
// closes it in t.Cleanup.
func (l *testLab) newReader(t testing.TB, cfg Config) *Reader {
	t.Helper()
	cfg.Group = labGroup
	cfg.NetNS = int(l.inFD.Fd())
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// running is a Reader whose Run goroutine feeds a channel.
type running struct {
	drops chan events.Drop
	stop  func() error
}

// start runs r until the returned stop is called (or the test ends) and
// delivers its drops on a buffered channel.
func start(t testing.TB, r *Reader) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{drops: make(chan events.Drop, 4096)}
	errc := make(chan error, 1)
	go func() {
		errc <- r.Run(ctx, func(d events.Drop) {
			select {
			case run.drops <- d:
			case <-ctx.Done():
			}
		})
	}()

	var stopped bool
	var stopErr error
	run.stop = func() error {
		if stopped {
			return stopErr
		}
		stopped = true
		cancel()
		select {
		case stopErr = <-errc:
		case <-time.After(2 * time.Second):
			stopErr = fmt.Errorf("Run did not return within 2s of cancel")
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := run.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return run
}

// next waits for the next drop.
func (run *running) next(t testing.TB) events.Drop {
	t.Helper()
	select {
	case d := <-run.drops:
		return d
	case <-time.After(2 * time.Second):
		t.Fatal("no drop within 2s")
	}
	return events.Drop{}
}
