// Package kernlog reads netfilter LOG records (iptables -j LOG, nft log)
// from kernel log text: /dev/kmsg, syslog and journal files, dmesg output
// or any stream, and turns the UDP ones into drop events.
//
// The parser recognises the record inside whatever header the host wrote
// around it (see Parser.Parse), splits the record into key=value tokens,
// never takes the packet quoted inside an ICMP error for the outer one,
// and reports lines that are not LOG records, or are damaged, as results
// to be counted rather than as failures. A Joiner puts hard-wrapped
// records back together. The followers (ReadStream, FileFollower,
// KmsgFollower) do the I/O and keep counters for metrics.
package kernlog

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"
)

// Parser parses kernel log lines. The zero value is ready to use.
//
// A Parser keeps state across lines: a small cache of repeated strings
// (interfaces, prefixes, MAC headers, host names) so that steady-state
// parsing does not allocate, and the fields seen so far of a journal
// export entry. Use one Parser per input stream, from one goroutine.
type Parser struct {
	// Location interprets timestamps written without a UTC offset
	// (RFC 3164, journalctl short, dmesg -T). Nil means time.Local.
	Location *time.Location
	// Now gives the reference time for guessing the year that RFC 3164
	// and journalctl short timestamps leave out: the year is Now's,
	// unless that puts the line more than two days in the future, in
	// which case it is the year before. Nil means time.Now.
	Now func() time.Time

	strs   map[string]string // interned strings, cleared when full
	last   [nSlots]string    // each field's previous value
	export exportState       // journal export entry in progress
}

// Slots of Parser.last: most fields repeat the previous line's value,
// which a comparison finds faster than a map lookup.
const (
	slotHost = iota
	slotPrefix
	slotIn
	slotOut
	slotMAC
	slotOther
	nSlots
)

// maxInterned bounds the string cache; it is cleared when full, which
// keeps memory bounded when a field (a MAC header) takes many values.
const maxInterned = 4096

// ParseLine parses one line with a fresh zero Parser: local time zone,
// no string cache and no journal export state. Use a Parser for streams.
func ParseLine(line []byte, rec *Record) (Result, error) {
	var p Parser
	return p.parse(line, rec, false)
}

// Parse parses one logical line (without its newline) into rec, which it
// resets first. It returns Firewall for a complete IP LOG record,
// NotFirewall for any other line, and Malformed with an error wrapping
// one of the Err* sentinels for a line that carries the LOG signature
// (IN=... OUT=...) but bad or missing fields. It never panics, whatever
// the bytes.
//
// Headers recognised before the record, alone or combined where hosts
// combine them:
//
//	/dev/kmsg      6,1234,307757925,-;MSG  (and ",caller=T1" fields)
//	RFC 5424       <4>1 2021-03-12T14:10:18.123Z host kernel - - - MSG
//	RFC 3164       [<4>]Dec  4 04:11:41 host kernel: MSG
//	ISO syslog     [<4>]2021-03-12T14:10:18Z host kernel: MSG
//	journalctl     short, short-precise, short-iso(-precise), short-full,
//	               short-unix, short-monotonic, json, export (MESSAGE=)
//	dmesg          [  307.757925] MSG, -T [Fri Dec  4 04:11:41 2026],
//	               -x (kern  :warn  : ), -r (<4>[...]), --time-format=iso
//
// and no header at all. The journal export format spreads an entry over
// lines: Parse remembers __REALTIME_TIMESTAMP, _HOSTNAME and
// _SOURCE_MONOTONIC_TIMESTAMP seen before the entry's MESSAGE= line.
func (p *Parser) Parse(line []byte, rec *Record) (Result, error) {
	return p.parse(line, rec, true)
}

func (p *Parser) parse(line []byte, rec *Record, intern bool) (Result, error) {
	*rec = Record{}
	line = trimLine(line)

	if len(line) > 0 && (line[0] == '_' || line[0] == 'M') {
		if res, err, ok := p.parseExport(line, rec, intern); ok {
			return res, err
		}
	} else if len(line) == 0 {
		p.export.reset()
		return NotFirewall, nil
	}
	// Every IP LOG record contains "IN=": a line without it is not one,
	// and most lines of a busy log are decided here. The exception is a
	// journal JSON entry whose MESSAGE is not UTF-8 and so is written as
	// an array of byte values.
	if !bytes.Contains(line, inKey) {
		if line[0] != '{' || !bytes.Contains(line, jsonByteMessage) {
			return NotFirewall, nil
		}
	}
	if line[0] == '{' {
		return p.parseJSON(line, rec, intern)
	}

	h := scanHeader(line)
	p.applyHeader(&h, rec, intern)
	return p.parseBody(line[h.n:], rec, intern)
}

// trimLine drops a trailing newline or CR, and leading NUL bytes, which
// appear when a writer without O_APPEND keeps writing at its old offset
// after copytruncate.
func trimLine(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// str returns b as a string, through the intern cache when enabled.
func (p *Parser) str(b []byte, slot int, intern bool) string {
	if len(b) == 0 {
		return ""
	}
	if !intern || len(b) > 128 {
		return string(b)
	}
	if p.last[slot] == string(b) {
		return p.last[slot]
	}
	if s, ok := p.strs[string(b)]; ok {
		p.last[slot] = s
		return s
	}
	if p.strs == nil || len(p.strs) >= maxInterned {
		p.strs = make(map[string]string, 64)
	}
	s := string(b)
	p.strs[s] = s
	p.last[slot] = s
	return s
}

var (
	inKey           = []byte("IN=")
	outKey          = []byte(" OUT=")
	jsonByteMessage = []byte(`"MESSAGE":[`)
)

// findSignature locates the "IN=<iface> OUT=" that starts every LOG
// record; the prefix is whatever precedes it, glued or not. It returns
// the index of "IN=", and cut=true when the line ends inside the
// signature of a record whose IN= starts a token.
func findSignature(b []byte) (at int, cut bool) {
	off := 0
	for off < len(b) {
		k := bytes.Index(b[off:], inKey)
		if k < 0 {
			return -1, false
		}
		k += off
		v := k + len(inKey)
		e := v
		for e < len(b) && b[e] != ' ' {
			e++
		}
		rest := b[e:]
		if bytes.HasPrefix(rest, outKey) {
			return k, false
		}
		if bytes.HasPrefix(outKey, rest) && (k == 0 || !isWordByte(b[k-1])) {
			return k, true
		}
		off = v
	}
	return -1, false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c >= '0' && c <= '9' || c == '_'
}

// Bits of the fields a record has shown, for the duplicate and
// completeness checks.
const (
	seenIn uint32 = 1 << iota
	seenOut
	seenSrc
	seenDst
	seenLen
	seenTTL
	seenProto
	seenSPT
	seenDPT
	seenUDPLen
	seenURGP
	seenType
	seenCode
	seenSPI
	seenEndMarker // a kernel marker after which nothing more is printed
)

// once lists the fields that may occur only once outside brackets.
const once = seenIn | seenOut | seenSrc | seenDst | seenProto | seenSPT |
	seenDPT

// parseBody parses the text after the header: an optional prefix and the
// record's tokens.
func (p *Parser) parseBody(b []byte, rec *Record, intern bool) (Result, error) {
	at, cut := findSignature(b)
	if at < 0 {
		return NotFirewall, nil
	}
	rec.Prefix = p.str(bytes.TrimSpace(b[:at]), slotPrefix, intern)
	if cut {
		return Malformed, fmt.Errorf("signature: %w", ErrTruncated)
	}

	var (
		seen      uint32
		depth     int  // bracket depth
		inner     bool // the outermost open bracket quotes a packet
		innerSeen uint32
		l4        bool // past PROTO=
		prevIncom bool // previous token was INCOMPLETE
		arp       bool
	)
	// A value cut by the end of the line is only a suspicion when the
	// line does not end with the space the kernel puts after every field.
	endsClean := b[len(b)-1] == ' '

	i := at
	for i < len(b) {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		if i >= len(b) {
			break
		}
		// Tokens are short: a plain loop beats IndexByte's set-up.
		j := i + 1
		for j < len(b) && b[j] != ' ' {
			j++
		}
		tok := b[i:j]
		last := j == len(b) && !endsClean
		i = j

		if depth > 0 || tok[0] == '[' {
			opened := tok[0] == '['
			if opened {
				if depth == 0 {
					inner = !prevIncom
					if inner {
						rec.HasInner = true
					}
				}
				depth++
				tok = tok[1:]
			}
			closed := len(tok) > 0 && tok[len(tok)-1] == ']'
			if closed {
				tok = tok[:len(tok)-1]
			}
			if inner && depth == 1 && len(tok) > 0 {
				if err := p.innerToken(tok, rec, &innerSeen, last && !closed); err != nil {
					return Malformed, err
				}
			}
			if closed {
				depth--
				if depth == 0 {
					inner = false
				}
			}
			prevIncom = false
			continue
		}
		prevIncom = false

		eq := 0
		for eq < len(tok) && tok[eq] != '=' {
			eq++
		}
		if eq == 0 || eq == len(tok) {
			switch {
			case string(tok) == "INCOMPLETE":
				if l4 {
					rec.Incomplete = true
					prevIncom = true
				} else {
					// The IPv6 fragment header's more-fragments bit.
					rec.Flags |= FlagMF
				}
			case string(tok) == "TRUNCATED":
				rec.Incomplete = true
				seen |= seenEndMarker
			case string(tok) == "Unknown":
				// "Unknown Ext Hdr 43": the kernel stops after it.
				seen |= seenEndMarker
			case string(tok) == "ARP":
				arp = true
			case bytes.HasPrefix(tok, fragColon):
				v, ok := parseUint(tok[len(fragColon):], 0xffff)
				if !ok {
					return Malformed, p.bad(tok[:4], tok[5:], ErrBadNumber, last)
				}
				rec.FragOffset = uint16(v)
			case bytes.HasPrefix(tok, idColon):
				v, ok := parseHex(tok[len(idColon):], 0xffffffff)
				if !ok {
					return Malformed, p.bad(tok[:2], tok[3:], ErrBadNumber, last)
				}
				rec.ID = uint32(v)
			default:
				if f := flagByWord(tok); f != 0 {
					if l4 == (f&ipFlags != 0) {
						// IP flags before PROTO=, TCP flags after; a
						// flag word out of place is just a word.
						break
					}
					rec.Flags |= f
				}
			}
			continue
		}

		key, val := tok[:eq], tok[eq+1:]
		if err := p.field(key, val, rec, &seen, &l4, last, intern); err != nil {
			return Malformed, err
		}
	}

	if arp && seen&seenSrc == 0 {
		return NotFirewall, nil
	}
	return checkComplete(rec, seen, depth)
}

var (
	fragColon = []byte("FRAG:")
	idColon   = []byte("ID:")
)

// bad builds the error for an invalid value; a value that the end of
// the line may have cut short is reported as truncation.
func (p *Parser) bad(key, val []byte, err error, last bool) error {
	if last {
		return fmt.Errorf("%s: %w", key, ErrTruncated)
	}
	return fieldError(key, val, err)
}

// field handles one key=value token outside brackets.
func (p *Parser) field(key, val []byte, rec *Record, seen *uint32,
	l4 *bool, last, intern bool) error {
	// mark records a field, failing on a second copy of a once-only one.
	mark := func(bit uint32) error {
		if *seen&bit&once != 0 {
			return fieldError(key, val, ErrDuplicate)
		}
		*seen |= bit
		return nil
	}
	num := func(max uint64) (uint64, error) {
		v, ok := parseUint(val, max)
		if !ok {
			if last && len(val) == 0 {
				return 0, fmt.Errorf("%s: %w", key, ErrTruncated)
			}
			return 0, fieldError(key, val, ErrBadNumber)
		}
		return v, nil
	}
	hex := func(max uint64) (uint64, error) {
		v, ok := parseHex(trim0x(val), max)
		if !ok {
			if last && len(trim0x(val)) == 0 {
				return 0, fmt.Errorf("%s: %w", key, ErrTruncated)
			}
			return 0, fieldError(key, val, ErrBadNumber)
		}
		return v, nil
	}

	var err error
	var v uint64
	if !*l4 {
		switch string(key) {
		case "IN":
			if err = mark(seenIn); err == nil {
				rec.InIface = p.str(val, slotIn, intern)
			}
		case "OUT":
			if err = mark(seenOut); err == nil {
				rec.OutIface = p.str(val, slotOut, intern)
			}
		case "PHYSIN":
			rec.PhysIn = p.str(val, slotOther, intern)
		case "PHYSOUT":
			rec.PhysOut = p.str(val, slotOther, intern)
		case "MAC":
			rec.MAC = p.str(val, slotMAC, intern)
		case "SRC":
			if err = mark(seenSrc); err == nil {
				rec.Src, err = p.addr(key, val, last)
			}
		case "DST":
			if err = mark(seenDst); err == nil {
				rec.Dst, err = p.addr(key, val, last)
			}
		case "LEN":
			if v, err = num(0xffff + 40); err == nil {
				rec.Length = int(v)
				*seen |= seenLen
			}
		case "TOS", "TC":
			if string(key) == "TC" {
				v, err = num(0xff)
			} else {
				v, err = hex(0xff)
			}
			rec.TOS = uint8(v)
		case "PREC":
			v, err = hex(0xff)
			rec.Prec = uint8(v)
		case "TTL", "HOPLIMIT":
			if v, err = num(0xff); err == nil {
				rec.TTL = int(v)
				*seen |= seenTTL
			}
		case "ID":
			// The kernel prints a 16-bit IPv4 id; IPv6 ids (ID:) are 32.
			v, err = num(0xffffffff)
			rec.ID = uint32(v)
		case "FLOWLBL":
			v, err = num(0xfffff)
			rec.FlowLabel = uint32(v)
		case "PROTO":
			if err = mark(seenProto); err == nil {
				rec.Proto, rec.ProtoNum, err = protoByName(key, val, last)
				*l4 = true
			}
		case "SPI":
			// IPv6 AH or ESP extension header inside OPT ( ... ).
			_, err = hex(0xffffffff)
		case "MARK":
			v, err = hex(0xffffffff)
			rec.Mark = uint32(v)
		}
		return err
	}

	switch string(key) {
	case "SPT", "DPT":
		var port uint64
		bit := seenSPT
		if key[0] == 'D' {
			bit = seenDPT
		}
		if err = mark(bit); err != nil {
			return err
		}
		port, ok := parseUint(val, 0xffff)
		if !ok {
			if last && len(val) == 0 {
				return fmt.Errorf("%s: %w", key, ErrTruncated)
			}
			return fieldError(key, val, ErrBadPort)
		}
		if bit == seenSPT {
			rec.SrcPort = uint16(port)
		} else {
			rec.DstPort = uint16(port)
		}
	case "LEN":
		if v, err = num(0xffff); err == nil {
			rec.UDPLength = int(v)
			*seen |= seenUDPLen
		}
	case "URGP":
		if _, err = num(0xffff); err == nil {
			*seen |= seenURGP
		}
	case "TYPE":
		if v, err = num(0xff); err == nil {
			rec.ICMPType = uint8(v)
			*seen |= seenType
		}
	case "CODE":
		if v, err = num(0xff); err == nil {
			rec.ICMPCode = uint8(v)
			*seen |= seenCode
		}
	case "SPI":
		if _, err = hex(0xffffffff); err == nil {
			*seen |= seenSPI
		}
	case "MARK":
		v, err = hex(0xffffffff)
		rec.Mark = uint32(v)
	case "PROTO", "SRC", "DST", "IN", "OUT":
		// Outside brackets these belong before PROTO=: a second record
		// glued onto this one.
		return fieldError(key, val, ErrDuplicate)
	}
	return err
}

// innerToken handles a key=value token of the packet quoted inside an
// ICMP error. Only addresses, protocol and ports are kept.
func (p *Parser) innerToken(tok []byte, rec *Record, seen *uint32, last bool) error {
	eq := bytes.IndexByte(tok, '=')
	if eq <= 0 {
		return nil
	}
	key, val := tok[:eq], tok[eq+1:]
	var err error
	switch string(key) {
	case "SRC":
		if *seen&seenSrc == 0 {
			rec.Inner.Src, err = p.addr(key, val, last)
			*seen |= seenSrc
		}
	case "DST":
		if *seen&seenDst == 0 {
			rec.Inner.Dst, err = p.addr(key, val, last)
			*seen |= seenDst
		}
	case "PROTO":
		if *seen&seenProto == 0 {
			rec.Inner.Proto, rec.Inner.ProtoNum, err = protoByName(key, val, last)
			*seen |= seenProto
		}
	case "SPT", "DPT":
		v, ok := parseUint(val, 0xffff)
		if !ok {
			return p.bad(key, val, ErrBadPort, last)
		}
		if key[0] == 'S' {
			rec.Inner.SrcPort = uint16(v)
		} else {
			rec.Inner.DstPort = uint16(v)
		}
	}
	return err
}

// addr parses an address as the kernel prints it (%pI4, or %pI6: eight
// groups of four hex digits, which netip accepts).
func (p *Parser) addr(key, val []byte, last bool) (netip.Addr, error) {
	if a, ok := parseAddrFast(val); ok {
		return a, nil
	}
	a, err := netip.ParseAddr(string(val))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, p.bad(key, val, ErrBadAddress, last)
	}
	return a, nil
}

// parseAddrFast parses the two forms the kernel prints, dotted quad and
// eight groups of four hex digits, without the string conversion that
// netip.ParseAddr needs (and that allocates). Anything else, including
// invalid input, is left to netip.ParseAddr.
func parseAddrFast(b []byte) (netip.Addr, bool) {
	if len(b) == 39 {
		var a [16]byte
		for g := 0; g < 8; g++ {
			o := g * 5
			if g < 7 && b[o+4] != ':' {
				return netip.Addr{}, false
			}
			v, ok := parseHex(b[o:o+4], 0xffff)
			if !ok {
				return netip.Addr{}, false
			}
			a[2*g], a[2*g+1] = byte(v>>8), byte(v)
		}
		return netip.AddrFrom16(a), true
	}
	if len(b) < 7 || len(b) > 15 {
		return netip.Addr{}, false
	}
	var a [4]byte
	part, start := 0, 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) && b[i] != '.' {
			continue
		}
		d := b[start:i]
		if part > 3 || len(d) == 0 || len(d) > 3 || (len(d) > 1 && d[0] == '0') {
			return netip.Addr{}, false
		}
		v, ok := parseUint(d, 255)
		if !ok {
			return netip.Addr{}, false
		}
		a[part] = byte(v)
		part, start = part+1, i+1
	}
	if part != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// protoByName maps PROTO= values to names and numbers. Names are the
// ones the kernel prints; numbers come with the name of a few well-known
// protocols the kernel prints as numbers, or none.
func protoByName(key, val []byte, last bool) (string, uint8, error) {
	switch string(val) {
	case "TCP":
		return "TCP", 6, nil
	case "UDP":
		return "UDP", 17, nil
	case "UDPLITE":
		return "UDPLITE", 136, nil
	case "ICMP":
		return "ICMP", 1, nil
	case "ICMPv6":
		return "ICMPv6", 58, nil
	case "AH":
		return "AH", 51, nil
	case "ESP":
		return "ESP", 50, nil
	}
	n, ok := parseUint(val, 0xff)
	if !ok {
		if last {
			return "", 0, fmt.Errorf("%s: %w", key, ErrTruncated)
		}
		return "", 0, fieldError(key, val, ErrBadProto)
	}
	return protoNames[n], uint8(n), nil
}

// protoNames names each protocol number the way the record names it: the
// kernel's words for the protocols it decodes, the decimal number (as the
// kernel prints it) for all others.
var protoNames = func() (names [256]string) {
	for i := range names {
		names[i] = fmt.Sprint(i)
	}
	names[1], names[6], names[17] = "ICMP", "TCP", "UDP"
	names[50], names[51], names[58], names[136] = "ESP", "AH", "ICMPv6", "UDPLITE"
	return names
}()

// checkComplete decides between Firewall and a truncated record once all
// tokens are read.
func checkComplete(rec *Record, seen uint32, depth int) (Result, error) {
	missing := func(field string) (Result, error) {
		return Malformed, fmt.Errorf("missing %s: %w", field, ErrTruncated)
	}
	if depth > 0 {
		return missing("closing bracket")
	}
	switch {
	case seen&seenOut == 0:
		return missing("OUT")
	case seen&seenSrc == 0:
		return missing("SRC")
	case seen&seenDst == 0:
		return missing("DST")
	}
	if rec.Src.Is4() != rec.Dst.Is4() {
		return Malformed, fmt.Errorf("SRC %s, DST %s: %w", rec.Src, rec.Dst,
			ErrBadAddress)
	}
	switch {
	case seen&seenLen == 0:
		return missing("LEN")
	case seen&seenTTL == 0:
		return missing("TTL")
	}
	rec.HasPorts = seen&(seenSPT|seenDPT) == seenSPT|seenDPT
	rec.HasICMP = seen&(seenType|seenCode) == seenType|seenCode
	noL4 := rec.FragOffset != 0 || rec.Incomplete
	switch {
	case seen&seenProto == 0:
		// Fragmented AH, "Unknown Ext Hdr", TRUNCATED and IPv6 ESP inside
		// OPT ( ... ) end a record without PROTO=.
		if seen&(seenEndMarker|seenSPI) == 0 && rec.FragOffset == 0 {
			return missing("PROTO")
		}
		noL4 = true
	case noL4:
	case rec.ProtoNum == 6:
		switch {
		case !rec.HasPorts:
			return missing("SPT/DPT")
		case seen&seenURGP == 0:
			return missing("URGP")
		}
	case rec.ProtoNum == 17 || rec.ProtoNum == 136:
		switch {
		case !rec.HasPorts:
			return missing("SPT/DPT")
		case seen&seenUDPLen == 0:
			return missing("LEN")
		}
	case rec.ProtoNum == 1 || rec.ProtoNum == 58:
		if !rec.HasICMP {
			return missing("TYPE/CODE")
		}
	case rec.ProtoNum == 50 || rec.ProtoNum == 51:
		if seen&seenSPI == 0 {
			return missing("SPI")
		}
	}
	tidy(rec, noL4)
	return Firewall, nil
}

// tidy clears what a complete record carries only by accident (a field
// of the other IP family, a transport field of another protocol), so
// that every field of a Firewall record means what its comment says.
// The kernel never prints such fields; damaged or hostile lines can.
func tidy(rec *Record, noL4 bool) {
	if rec.Src.Is4() {
		rec.FlowLabel = 0
	} else {
		rec.Prec = 0
		rec.Flags &^= FlagCE | FlagDF
	}
	tcp := rec.ProtoNum == 6 && !noL4
	udp := (rec.ProtoNum == 17 || rec.ProtoNum == 136) && !noL4
	icmp := (rec.ProtoNum == 1 || rec.ProtoNum == 58) && !noL4
	if !tcp {
		rec.Flags &= ipFlags
	}
	if !tcp && !udp {
		rec.HasPorts, rec.SrcPort, rec.DstPort = false, 0, 0
	}
	if !udp {
		rec.UDPLength = 0
	}
	if !icmp {
		rec.HasICMP, rec.ICMPType, rec.ICMPCode = false, 0, 0
		rec.HasInner, rec.Inner = false, InnerPacket{}
	}
}

// parseUint parses a decimal number no greater than max. Leading zeros
// are accepted; signs, spaces and empty input are not.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > max {
			return 0, false
		}
	}
	return v, true
}

// parseHex parses hexadecimal digits (either case) into a number no
// greater than max.
func parseHex(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
		if v > max {
			return 0, false
		}
	}
	return v, true
}

func trim0x(b []byte) []byte {
	if len(b) >= 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') {
		return b[2:]
	}
	return b
}
