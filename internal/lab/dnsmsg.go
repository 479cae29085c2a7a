package lab

import (
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// labDomain is the zone every lab query name sits in.
const labDomain = "lab.test."

// Answer contents: answer number i of a query carries an A record
// 198.19.(i>>8).(i&255) or an AAAA record fd00:6374:ffff::i, so the
// resolver can tell which planned answer it received.
var (
	answerBase4 = net.IPv4(198, 19, 0, 0).To4()
	answerBase6 = net.ParseIP("fd00:6374:ffff::")
)

// maxAnswers bounds the answers of one query, so every index fits.
const maxAnswers = 1 << 16

// padStrings and padLen size the TXT record that makes an answer
// oversize: 5 strings of 250 bytes take a message past 1250 bytes, and
// past oversizeLimit with any IP header, yet under a 1500-byte MTU.
const (
	padStrings = 5
	padLen     = 250
)

// questionType is the query type a family's queries ask: A over IPv4,
// AAAA over IPv6.
func questionType(family int) uint16 {
	if family == 6 {
		return dns.TypeAAAA
	}
	return dns.TypeA
}

// buildQuery packs a recursive query for name.
func buildQuery(id uint16, name string, family int) ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, questionType(family))
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack query %s: %w", name, err)
	}
	return b, nil
}

// buildAnswer packs answer number index to a query with this id, name
// and question type.
func buildAnswer(id uint16, name string, qtype uint16, index int,
	oversize bool) ([]byte, error) {

	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.Id = id
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true

	hdr := dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET, Ttl: 60}
	if qtype == dns.TypeAAAA {
		ip := make(net.IP, net.IPv6len)
		copy(ip, answerBase6)
		ip[14], ip[15] = byte(index>>8), byte(index)
		m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
	} else {
		hdr.Rrtype = dns.TypeA
		ip := make(net.IP, net.IPv4len)
		copy(ip, answerBase4)
		ip[2], ip[3] = byte(index>>8), byte(index)
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
	}
	if oversize {
		txt := make([]string, padStrings)
		for i := range txt {
			txt[i] = strings.Repeat("x", padLen)
		}
		m.Extra = append(m.Extra, &dns.TXT{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: txt,
		})
	}

	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack answer %d for %s: %w", index, name, err)
	}
	return b, nil
}

// answerIndex reports which planned answer m is, from its first record.
func answerIndex(m *dns.Msg) (int, bool) {
	if len(m.Answer) == 0 {
		return 0, false
	}
	switch rr := m.Answer[0].(type) {
	case *dns.A:
		ip := rr.A.To4()
		if ip == nil || !ip[:2].Equal(answerBase4[:2]) {
			return 0, false
		}
		return int(ip[2])<<8 | int(ip[3]), true
	case *dns.AAAA:
		ip := rr.AAAA.To16()
		if ip == nil || !ip[:14].Equal(answerBase6[:14]) {
			return 0, false
		}
		return int(ip[14])<<8 | int(ip[15]), true
	}
	return 0, false
}
