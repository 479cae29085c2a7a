package lab

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ctwatch/ctwatch/internal/events"
)

// startUpstream opens the upstream's DNS sockets, one per family on its
// address and port 53, and starts their readers.
func (l *Lab) startUpstream(ctx context.Context) error {
	for _, family := range []int{4, 6} {
		addr := &net.UDPAddr{IP: l.UpstreamAddr(family).AsSlice(), Port: 53}
		var conn *net.UDPConn
		err := l.upstream.Do(func() error {
			var err error
			conn, err = net.ListenUDP("udp"+strconv.Itoa(family), addr)
			return err
		})
		if err != nil {
			return fmt.Errorf("start upstream: %w", err)
		}
		l.upConns = append(l.upConns, conn)
		l.wg.Add(1)
		go l.serve(conn)
	}
	return nil
}

// serve reads queries until its socket is closed and schedules the
// planned answers of each query it recognises. Queries without a plan
// (retransmissions, strangers) get no answer.
func (l *Lab) serve(conn *net.UDPConn) {
	defer l.wg.Done()

	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed by Close
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) != nil || m.Response || len(m.Question) != 1 {
			continue
		}
		client := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		key := planKey{m.Id, strings.ToLower(m.Question[0].Name)}

		l.mu.Lock()
		q, ok := l.pending[key]
		if ok {
			delete(l.pending, key)
			q.seen = true
			q.reply = events.Tuple{Src: local, Dst: client}
			if !l.closed {
				l.wg.Add(1)
				go l.answer(conn, q, client, m.Question[0].Qtype)
			}
		}
		l.mu.Unlock()
	}
}

// answer sends q's planned answers to client, each at the query's send
// time plus its delay, and records when each send happened.
func (l *Lab) answer(conn *net.UDPConn, q *query, client netip.AddrPort, qtype uint16) {
	defer l.wg.Done()

	order := make([]int, len(q.answers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(q.answers[a].Delay, q.answers[b].Delay)
	})

	l.mu.Lock()
	sent := q.sent
	l.mu.Unlock()
	for _, i := range order {
		msg, err := buildAnswer(q.dnsID, q.name, qtype, i, q.answers[i].Oversize)
		if err != nil {
			l.giveUp(q, false)
			continue
		}
		if !l.sleepUntil(sent.Add(q.answers[i].Delay)) {
			l.giveUp(q, true)
			return
		}

		start := time.Now()
		_, err = conn.WriteToUDPAddrPort(msg, client)
		end := time.Now()
		l.mu.Lock()
		if err == nil {
			q.sends = append(q.sends, answerSend{index: i, start: start, end: end})
		}
		q.pending--
		l.settle(1)
		l.mu.Unlock()
	}
}

// sleepUntil waits for t and reports false if the lab closed first.
func (l *Lab) sleepUntil(t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// giveUp records that one, or all remaining, of q's planned answers will
// not be sent.
func (l *Lab) giveUp(q *query, all bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 1
	if all {
		n = q.pending
	}
	q.pending -= n
	l.settle(n)
}
