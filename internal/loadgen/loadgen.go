// Package loadgen generates conntrack load for benchmarks and soak tests:
// new UDP flows to port 53 (and optional TCP noise) at a fixed rate, from a
// network namespace of its own whose only link is a veth pair
// with both ends inside it, so no
// packet goes anywhere.
package loadgen

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/internal/netns"
)

// Namespace is a throw-away network namespace with a looped veth pair and a
// stateful rule, so that conntrack tracks what is sent into it.
type Namespace struct {
	Name string
	Path string
	h    *netns.Handle
	// seq numbers packets across runs, so every run creates new flows
	// instead of refreshing the entries of the previous one.
	seq atomic.Uint64
}

// Local and Remote are the load's addresses inside the namespace.
var (
	Local  = netip.MustParseAddr("198.18.200.1")
	Remote = netip.MustParseAddr("198.18.200.2")
)

// NewNamespace creates the namespace. udpTimeout is written to both UDP
// conntrack timeouts so that flows expire quickly and DESTROY events flow
// at the rate NEW events do.
func NewNamespace(ctx context.Context, name string, udpTimeout time.Duration) (*Namespace, error) {
	n := &Namespace{Name: name, Path: "/run/netns/" + name}
	secs := fmt.Sprint(int(udpTimeout / time.Second))
	steps := [][]string{
		{"ip", "netns", "add", name},
		{"ip", "-n", name, "link", "set", "lo", "up"},
		// A veth pair with both ends here: d1 has no address and drops
		// what d0 sends (wrong MAC), after conntrack has seen it. A
		// permanent neighbour entry avoids ARP.
		{"ip", "-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1"},
		{"ip", "-n", name, "addr", "add", Local.String() + "/24", "dev", "d0"},
		{"ip", "-n", name, "link", "set", "d0", "up"},
		{"ip", "-n", name, "link", "set", "d1", "up"},
		{"ip", "-n", name, "neigh", "add", Remote.String(), "lladdr", "02:00:00:00:00:02", "dev", "d0", "nud", "permanent"},
		{"ip", "netns", "exec", name, "nft", "add table inet lg; add chain inet lg out { type filter hook output priority 0; }; add rule inet lg out ct state new counter"},
		{"ip", "netns", "exec", name, "sysctl", "-qw",
			"net.netfilter.nf_conntrack_udp_timeout=" + secs,
			"net.netfilter.nf_conntrack_udp_timeout_stream=" + secs,
			"net.netfilter.nf_conntrack_tcp_timeout_syn_sent=" + secs},
	}
	for i, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			if i > 0 {
				n.Close()
			}
			return nil, fmt.Errorf("loadgen namespace: %s: %w: %s", strings.Join(s, " "), err, out)
		}
	}
	h, err := netns.Open(n.Path)
	if err != nil {
		n.Close()
		return nil, err
	}
	n.h = h
	return n, nil
}

// Handle returns the open namespace.
func (n *Namespace) Handle() *netns.Handle { return n.h }

// Close deletes the namespace.
func (n *Namespace) Close() error {
	n.h.Close()
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("delete netns %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// Load describes what to send.
type Load struct {
	// UDPFlows is the number of new UDP flows to port 53 per second.
	UDPFlows int
	// TCPFlows is the number of new TCP flows (SYN to port 443) per second:
	// noise the follower must discard.
	TCPFlows int
	Duration time.Duration
}

// Result counts what was sent.
type Result struct {
	UDP, TCP uint64
	Elapsed  time.Duration
	// First and Last are the sequence numbers of the first and last
	// packet sent (Last < First when none was). In a load of UDP flows
	// only, every number in between is one flow, whose addresses UDPFlow
	// returns.
	First, Last uint64
}

// UDPFlow returns the source and destination of the UDP packet sent with
// sequence number seq: the original tuple of its flow. The reply tuple
// is the same pair reversed.
func UDPFlow(seq uint64) (src, dst netip.AddrPort) {
	a, port := flowSource(seq)
	return netip.AddrPortFrom(a, port), netip.AddrPortFrom(Remote, 53)
}

// flowSource is the source address and port of packet seq: ports cycle
// through 60000 values, and each cycle moves to the next address.
func flowSource(seq uint64) (netip.Addr, uint16) {
	src := Local.As4()
	src[3] = byte(10 + (seq/60000)%200)
	return netip.AddrFrom4(src), uint16(1024 + seq%60000)
}

// Run sends the load from inside the namespace and returns when it is done
// or ctx ends. Every packet has a fresh source port (and address, every
// 60000 packets) so each one creates a conntrack entry.
func (n *Namespace) Run(ctx context.Context, l Load) (Result, error) {
	var fd int
	if err := n.h.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		return Result{}, fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)

	var (
		res      = Result{First: n.seq.Load() + 1}
		udpOwed  float64
		tcpOwed  float64
		start    = time.Now()
		deadline = start.Add(l.Duration)
		tick     = time.NewTicker(time.Millisecond)
		last     = start
		pkt      = make([]byte, 40)
		dst      = &unix.SockaddrInet4{Addr: Remote.As4()}
	)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			res.Elapsed = time.Since(start)
			res.Last = n.seq.Load()
			return res, nil
		case now := <-tick.C:
			if now.After(deadline) {
				res.Elapsed = now.Sub(start)
				res.Last = n.seq.Load()
				return res, nil
			}
			dt := now.Sub(last).Seconds()
			last = now
			udpOwed += dt * float64(l.UDPFlows)
			tcpOwed += dt * float64(l.TCPFlows)
			for ; udpOwed >= 1; udpOwed-- {
				s := n.seq.Add(1)
				b := buildPacket(pkt, s, unix.IPPROTO_UDP, 53)
				if err := unix.Sendto(fd, b, 0, dst); err != nil && err != unix.ENOBUFS {
					return res, fmt.Errorf("send: %w", err)
				}
				res.UDP++
			}
			for ; tcpOwed >= 1; tcpOwed-- {
				s := n.seq.Add(1)
				b := buildPacket(pkt, s, unix.IPPROTO_TCP, 443)
				if err := unix.Sendto(fd, b, 0, dst); err != nil && err != unix.ENOBUFS {
					return res, fmt.Errorf("send: %w", err)
				}
				res.TCP++
			}
		}
	}
}

// buildPacket writes an IPv4 header and a UDP header or TCP SYN into b.
// The kernel fills in the IP checksum, id and total length for IPPROTO_RAW
// sockets; conntrack does not verify transport checksums of local packets.
func buildPacket(b []byte, seq uint64, proto uint8, dport uint16) []byte {
	srcAddr, sport := flowSource(seq)
	src := srcAddr.As4()

	clear(b)
	b[0] = 0x45
	b[8] = 64
	b[9] = proto
	copy(b[12:16], src[:])
	dst := Remote.As4()
	copy(b[16:20], dst[:])
	l4 := b[20:]
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	if proto == unix.IPPROTO_UDP {
		binary.BigEndian.PutUint16(l4[4:6], 8)
		binary.BigEndian.PutUint16(b[2:4], 28)
		return b[:28]
	}
	binary.BigEndian.PutUint32(l4[4:8], uint32(seq))
	l4[12] = 5 << 4
	l4[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(l4[14:16], 65535)
	binary.BigEndian.PutUint16(b[2:4], 40)
	return b[:40]
}
