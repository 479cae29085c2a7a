package kernlog

import (
	"strconv"
)

// AppendLog appends the record in the kernel's LOG syntax, without any
// header and without a trailing newline, and returns the extended slice.
//
// The output is canonical rather than a copy of the original line: the
// prefix is followed by a space, fields the Record does not keep (TCP
// window, ICMP echo id, the quoted packet's lengths) are written as zero
// or left out, and the quoted packet of an ICMP error is reduced to its
// addresses, protocol and ports. Parsing the output gives back the same
// packet fields (everything but the header fields), which makes it
// usable for normalising logs and for generating test input.
func (r *Record) AppendLog(b []byte) []byte {
	if r.Prefix != "" {
		b = append(b, r.Prefix...)
		b = append(b, ' ')
	}
	b = append(b, "IN="...)
	b = append(b, r.InIface...)
	b = append(b, " OUT="...)
	b = append(b, r.OutIface...)
	b = append(b, ' ')
	b = appendField(b, "PHYSIN=", r.PhysIn)
	b = appendField(b, "PHYSOUT=", r.PhysOut)
	b = appendField(b, "MAC=", r.MAC)
	if !r.Src.IsValid() {
		return append(b, "TRUNCATED"...)
	}
	b = append(b, "SRC="...)
	b = r.Src.AppendTo(b)
	b = append(b, " DST="...)
	b = r.Dst.AppendTo(b)
	b = append(b, " LEN="...)
	b = strconv.AppendInt(b, int64(r.Length), 10)
	if r.Src.Is4() {
		b = append(b, " TOS=0x"...)
		b = appendHex2(b, r.TOS)
		b = append(b, " PREC=0x"...)
		b = appendHex2(b, r.Prec)
		b = append(b, " TTL="...)
		b = strconv.AppendInt(b, int64(r.TTL), 10)
		b = append(b, " ID="...)
		b = strconv.AppendUint(b, uint64(r.ID), 10)
		b = append(b, ' ')
		b = appendFlags(b, r.Flags&ipFlags)
		if r.FragOffset != 0 {
			b = append(b, "FRAG:"...)
			b = strconv.AppendUint(b, uint64(r.FragOffset), 10)
			b = append(b, ' ')
		}
	} else {
		b = append(b, " TC="...)
		b = strconv.AppendUint(b, uint64(r.TOS), 10)
		b = append(b, " HOPLIMIT="...)
		b = strconv.AppendInt(b, int64(r.TTL), 10)
		b = append(b, " FLOWLBL="...)
		b = strconv.AppendUint(b, uint64(r.FlowLabel), 10)
		b = append(b, ' ')
		if r.FragOffset != 0 || r.ID != 0 || r.Flags&FlagMF != 0 {
			b = append(b, "FRAG:"...)
			b = strconv.AppendUint(b, uint64(r.FragOffset), 10)
			b = append(b, ' ')
			if r.Flags&FlagMF != 0 {
				b = append(b, "INCOMPLETE "...)
			}
			b = append(b, "ID:"...)
			b = appendHex8(b, r.ID)
			b = append(b, ' ')
		}
	}
	if r.Proto == "" {
		if r.Incomplete {
			b = append(b, "TRUNCATED "...)
		} else if r.FragOffset == 0 {
			b = append(b, "Unknown Ext Hdr 0 "...)
		}
		return appendMark(b, r.Mark)
	}
	b = append(b, "PROTO="...)
	b = append(b, r.Proto...)
	b = append(b, ' ')
	switch {
	case r.Incomplete:
		b = append(b, "INCOMPLETE [0 bytes] "...)
	case r.FragOffset != 0:
	case r.ProtoNum == 6:
		b = appendPorts(b, r)
		b = append(b, "WINDOW=0 RES=0x00 "...)
		b = appendFlags(b, r.Flags&^ipFlags)
		b = append(b, "URGP=0 "...)
	case r.ProtoNum == 17 || r.ProtoNum == 136:
		b = appendPorts(b, r)
		b = append(b, "LEN="...)
		b = strconv.AppendInt(b, int64(r.UDPLength), 10)
		b = append(b, ' ')
	case r.ProtoNum == 1 || r.ProtoNum == 58:
		b = append(b, "TYPE="...)
		b = strconv.AppendUint(b, uint64(r.ICMPType), 10)
		b = append(b, " CODE="...)
		b = strconv.AppendUint(b, uint64(r.ICMPCode), 10)
		b = append(b, ' ')
		if r.HasInner {
			b = appendInner(b, &r.Inner)
		}
	case r.ProtoNum == 50 || r.ProtoNum == 51:
		b = append(b, "SPI=0x0 "...)
	}
	return appendMark(b, r.Mark)
}

func appendMark(b []byte, mark uint32) []byte {
	if mark == 0 {
		return b
	}
	b = append(b, "MARK=0x"...)
	b = strconv.AppendUint(b, uint64(mark), 16)
	return append(b, ' ')
}

func appendField(b []byte, key, val string) []byte {
	if val == "" {
		return b
	}
	b = append(b, key...)
	b = append(b, val...)
	return append(b, ' ')
}

func appendPorts(b []byte, r *Record) []byte {
	b = append(b, "SPT="...)
	b = strconv.AppendUint(b, uint64(r.SrcPort), 10)
	b = append(b, " DPT="...)
	b = strconv.AppendUint(b, uint64(r.DstPort), 10)
	return append(b, ' ')
}

func appendInner(b []byte, in *InnerPacket) []byte {
	b = append(b, '[')
	sep := false
	add := func(key string) {
		if sep {
			b = append(b, ' ')
		}
		b = append(b, key...)
		sep = true
	}
	if in.Src.IsValid() {
		add("SRC=")
		b = in.Src.AppendTo(b)
	}
	if in.Dst.IsValid() {
		add("DST=")
		b = in.Dst.AppendTo(b)
	}
	if in.Proto != "" {
		add("PROTO=")
		b = append(b, in.Proto...)
	}
	if in.SrcPort != 0 || in.DstPort != 0 {
		add("SPT=")
		b = strconv.AppendUint(b, uint64(in.SrcPort), 10)
		add("DPT=")
		b = strconv.AppendUint(b, uint64(in.DstPort), 10)
	}
	return append(b, "] "...)
}

func appendFlags(b []byte, f Flags) []byte {
	for i, w := range flagWords {
		if f&(1<<i) != 0 {
			b = append(b, w...)
			b = append(b, ' ')
		}
	}
	return b
}

const hexDigits = "0123456789ABCDEF"

func appendHex2(b []byte, v uint8) []byte {
	return append(b, hexDigits[v>>4], hexDigits[v&15])
}

func appendHex8(b []byte, v uint32) []byte {
	for s := 28; s >= 0; s -= 4 {
		b = append(b, hexDigits[v>>s&15]|0x20) // lower case, like %08x
	}
	return b
}
