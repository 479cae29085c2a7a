package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// Probe timing: how long to wait for one probe, and for a path at all.
const (
	probeInterval = 10 * time.Millisecond
	probeTimeout  = 5 * time.Second
)

// probeLinks proves that every path the lab sends packets on carries
// them. A veth end brought up before its peer starts transmitting only
// once the kernel's link watcher has run, asynchronously; until then it
// discards packets, so a first query or spoof could vanish, and under
// load that window is long enough to matter.
//
// It runs before the ruleset exists, so conntrack is not active yet and
// the probes leave no entries behind.
func (l *Lab) probeLinks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()

	for _, family := range []int{4, 6} {
		fl := l.layout.family(family)
		paths := []struct {
			from, to *Netns
			src, dst netip.Addr
		}{
			{l.resolver, l.upstream, fl.resolverUp, fl.upstream},
			{l.upstream, l.resolver, fl.upstream, fl.resolverUp},
			{l.outside, l.resolver, fl.outside, fl.resolverUp},
		}
		for _, p := range paths {
			if err := probe(ctx, family, p.from, p.to, p.src, p.dst); err != nil {
				return fmt.Errorf("probe %s -> %s: %w", p.src, p.dst, err)
			}
		}
	}
	return nil
}

// probe sends UDP datagrams from src in one namespace to dst in another
// until one arrives.
func probe(ctx context.Context, family int, from, to *Netns, src, dst netip.Addr) error {
	network := "udp" + strconv.Itoa(family)
	var rx, tx *net.UDPConn
	err := to.Do(func() error {
		var err error
		rx, err = net.ListenUDP(network, &net.UDPAddr{IP: dst.AsSlice()})
		return err
	})
	if err != nil {
		return err
	}
	defer rx.Close()
	err = from.Do(func() error {
		var err error
		tx, err = net.ListenUDP(network, &net.UDPAddr{IP: src.AsSlice()})
		return err
	})
	if err != nil {
		return err
	}
	defer tx.Close()

	msg := []byte("ctwatch lab probe")
	target := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 64)
	for {
		if _, err := tx.WriteToUDPAddrPort(msg, target); err != nil {
			return err
		}
		rx.SetReadDeadline(time.Now().Add(probeInterval))
		n, _, err := rx.ReadFromUDPAddrPort(buf)
		if err == nil && bytes.Equal(buf[:n], msg) {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
