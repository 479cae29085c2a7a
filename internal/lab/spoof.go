package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/internal/events"
)

// Spoofed ports come from below Linux's ephemeral range (32768-60999),
// so a later query socket never lands on one.
const (
	spoofPortMin = 1024
	spoofPortMax = 32767
)

// SpoofSpec describes an unsolicited packet: UDP from port 53 to the
// resolver, sent from the outside namespace.
type SpoofSpec struct {
	// Family is 4 or 6.
	Family int
	// Src is the source address; zero means the upstream's address, so
	// the packet looks like an answer.
	Src netip.Addr
	// Port is the resolver port it is sent to; zero picks a random port
	// where nothing listens. A port that any lab query's reply tuple
	// used is refused: the packet would not be unsolicited.
	Port uint16
	// Name is the question of the DNS response it carries; empty means
	// "spoof<N>.lab.test.".
	Name string
	// Oversize pads the packet past the oversize rule's limit.
	Oversize bool
}

// Spoofed is the record of one spoofed packet.
type Spoofed struct {
	Family int
	// Tuple is the packet's source and destination.
	Tuple events.Tuple
	Name  string
	DNSID uint16
	// Length is the IP packet's length in bytes.
	Length int
	// Sent is taken right before the send.
	Sent time.Time
	// Expect is always Unsolicited.
	Expect Class
}

// Spoof sends one UDP packet from source port 53 to the resolver's
// address (ResolverAddr) through a raw socket in the outside namespace,
// so the source address can be forged. It returns once the packet is
// sent. The resolver drops it; nothing answers.
func (l *Lab) Spoof(ctx context.Context, s SpoofSpec) (Spoofed, error) {
	if !validFamily(s.Family) {
		return Spoofed{}, fmt.Errorf("spoof: family %d is not 4 or 6", s.Family)
	}
	src := s.Src
	if !src.IsValid() {
		src = l.UpstreamAddr(s.Family)
	}
	if (src.Is4() || src.Is4In6()) != (s.Family == 4) {
		return Spoofed{}, fmt.Errorf("spoof: source %s is not IPv%d", src, s.Family)
	}
	src = src.Unmap()
	if err := ctx.Err(); err != nil {
		return Spoofed{}, fmt.Errorf("spoof: %w", err)
	}
	if err := l.checkOpen(); err != nil {
		return Spoofed{}, fmt.Errorf("spoof: %w", err)
	}

	dst := l.ResolverAddr(s.Family)
	port, err := l.spoofPort(s.Family, src, s.Port)
	if err != nil {
		return Spoofed{}, err
	}

	l.mu.Lock()
	n := len(l.spoofs) + 1
	l.mu.Unlock()
	name := s.Name
	if name == "" {
		name = "spoof" + strconv.Itoa(n) + "." + labDomain
	}
	dnsID := uint16(rand.N(1 << 16))
	payload, err := buildAnswer(dnsID, name, questionType(s.Family), 0, s.Oversize)
	if err != nil {
		return Spoofed{}, fmt.Errorf("spoof: %w", err)
	}
	rec := Spoofed{
		Family: s.Family,
		Tuple: events.Tuple{
			Src: netip.AddrPortFrom(src, 53),
			Dst: netip.AddrPortFrom(dst, port),
		},
		Name:   name,
		DNSID:  dnsID,
		Expect: Unsolicited,
	}
	pkt := udpPacket(rec.Tuple.Src, rec.Tuple.Dst, payload, uint16(rand.N(1<<16)))
	rec.Length = len(pkt)

	err = l.outside.Do(func() error {
		var err error
		rec.Sent, err = sendRaw(s.Family, dst, pkt)
		return err
	})
	if err != nil {
		return Spoofed{}, fmt.Errorf("spoof: %w", err)
	}

	l.mu.Lock()
	l.spoofs = append(l.spoofs, rec)
	l.mu.Unlock()
	return rec, nil
}

// sendRaw sends a complete IP packet through an IPPROTO_RAW socket, which
// implies that the packet includes its IP header. It returns the time
// right before the send.
func sendRaw(family int, dst netip.Addr, pkt []byte) (time.Time, error) {
	var (
		domain = unix.AF_INET
		sa     unix.Sockaddr
	)
	if family == 6 {
		domain = unix.AF_INET6
		sa = &unix.SockaddrInet6{Addr: dst.As16()}
	} else {
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return time.Time{}, fmt.Errorf("open raw socket: %w", err)
	}
	defer unix.Close(fd)

	sent := time.Now()
	if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
		return time.Time{}, fmt.Errorf("send raw packet: %w", err)
	}
	return sent, nil
}

// spoofPort checks a requested port, or picks a random free one. A port
// is free when no lab query's reply tuple from src used it and a socket
// can bind it on the resolver's address (nothing listens there).
func (l *Lab) spoofPort(family int, src netip.Addr, want uint16) (uint16, error) {
	l.mu.Lock()
	used := make(map[uint16]int)
	for _, q := range l.queries {
		if q.family != family {
			continue
		}
		if q.seen && q.reply.Src.Addr() == src {
			used[q.reply.Dst.Port()] = q.id
		}
		// Before the upstream has seen a query its reply port is not
		// known; without SNAT it is the socket's port.
		used[q.orig.Src.Port()] = q.id
	}
	l.mu.Unlock()

	if want != 0 {
		if id, ok := used[want]; ok {
			return 0, fmt.Errorf("spoof: port %d belongs to query %d", want, id)
		}
		return want, nil
	}
	for range 100 {
		port := uint16(spoofPortMin + rand.IntN(spoofPortMax-spoofPortMin+1))
		if _, ok := used[port]; ok {
			continue
		}
		free, err := l.portFree(family, port)
		if err != nil {
			return 0, err
		}
		if free {
			return port, nil
		}
	}
	return 0, errors.New("spoof: no free port found")
}

// portFree reports whether a UDP socket can bind port on the resolver's
// address, i.e. nothing listens there.
func (l *Lab) portFree(family int, port uint16) (bool, error) {
	addr := &net.UDPAddr{IP: l.ResolverAddr(family).AsSlice(), Port: int(port)}
	free := false
	err := l.resolver.Do(func() error {
		c, err := net.ListenUDP("udp"+strconv.Itoa(family), addr)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("probe port %d: %w", port, err)
		}
		free = true
		return c.Close()
	})
	return free, err
}
