package kernlog

import (
	"bytes"
	"errors"
	"strings"
)

// Joiner puts back together LOG records that a terminal, fold(1) or a
// log shipper hard-wrapped over several physical lines (at 80 columns, or
// at a 1024-byte syslog limit).
//
// A physical line is taken as the continuation of the one before when it
// has no header of its own, no IN=/OUT= signature, and, after a first
// word that may be the rest of a cut token, only the key=value tokens and
// flag words of LOG records; and the line before it is part of a record.
// A continuation that is a single bare word (the tail of a cut value) is
// only joined when the line before ends mid-token and is truncated. A
// line that starts a new record is never joined, so a record truncated
// for good (a syslog length limit) comes out alone and parses as
// Malformed with ErrTruncated.
//
// Lines are joined as they are, without a separator, since a hard wrap
// removes nothing. When both sides are whole tokens and neither ends in
// white space (a shipper that strips trailing spaces), one space is put
// between them.
//
// A Joiner holds one line until the next arrives, because only the next
// line tells whether it continues. Callers reading a live source call
// Flush when input pauses; PendingCut says whether the held line looks
// cut, i.e. worth waiting a little longer for.
//
// Warning: a wrap that falls inside the header or the prefix, before
// IN=, is not repaired; both halves come out as separate lines.
type Joiner struct {
	// MaxBytes caps the length of a joined line; 0 means 8192.
	MaxBytes int
	// MaxLines caps the physical lines of one joined line; 0 means 16.
	MaxLines int

	cur      []byte // held logical line
	curLines int    // physical lines in cur; 0 when nothing is held
	out      []byte // the line last returned, kept for reuse
	outLines int
	check    Parser // for truncation checks; carries no configuration
	scratch  Record
}

// Push adds the next physical line (without its newline). When the line
// held so far turns out to be complete, Push returns it with the number
// of physical lines it was made of. The returned slice is valid until
// the next call to Push or Flush.
func (j *Joiner) Push(line []byte) (out []byte, lines int, ok bool) {
	line = trimLine(line)
	if j.curLines > 0 {
		if join, space := j.continues(line); join {
			if space {
				j.cur = append(j.cur, ' ')
			}
			j.cur = append(j.cur, line...)
			j.curLines++
			return nil, 0, false
		}
	}
	out, lines, ok = j.Flush()
	j.cur = append(j.cur[:0], line...)
	j.curLines = 1
	return out, lines, ok
}

// Flush returns the held line, if any, and holds nothing afterwards.
func (j *Joiner) Flush() (out []byte, lines int, ok bool) {
	if j.curLines == 0 {
		return nil, 0, false
	}
	j.out, j.cur = j.cur, j.out[:0]
	j.outLines, j.curLines = j.curLines, 0
	return j.out, j.outLines, true
}

// Pending reports whether a line is held.
func (j *Joiner) Pending() bool { return j.curLines > 0 }

// PendingCut reports whether the held line is a LOG record that ends
// before its required fields, as the first part of a wrapped record does.
func (j *Joiner) PendingCut() bool {
	return j.curLines > 0 && j.truncated(j.cur)
}

func (j *Joiner) truncated(b []byte) bool {
	res, err := j.check.parse(b, &j.scratch, false)
	j.check.export.reset()
	return res == Malformed && errors.Is(err, ErrTruncated)
}

// continues decides whether line continues the held line, and whether a
// space must go between them.
func (j *Joiner) continues(line []byte) (join, space bool) {
	maxBytes, maxLines := j.MaxBytes, j.MaxLines
	if maxBytes <= 0 {
		maxBytes = 8192
	}
	if maxLines <= 0 {
		maxLines = 16
	}
	if len(line) == 0 || j.curLines >= maxLines ||
		len(j.cur)+len(line)+1 > maxBytes {
		return false, false
	}
	// Cheapest test first: nearly every line of a log with headers
	// fails here.
	if h := scanHeader(line); h.n > 0 {
		return false, false
	}
	if at, _ := findSignature(line); at >= 0 {
		return false, false
	}
	if at, _ := findSignature(j.cur); at < 0 {
		return false, false
	}

	// The first word may be the rest of a token the wrap cut, and the
	// last the start of one; every other word must be one a LOG record
	// contains.
	strong := false
	lead := line[0] != ' '
	trail := line[len(line)-1] != ' '
	var firstTok []byte
	for i, n := 0, 0; i < len(line); n++ {
		i = skipSpaces(line, i)
		if i >= len(line) {
			break
		}
		tok := token(line, i)
		i += len(tok)
		known := knownToken(tok)
		switch {
		case n == 0 && lead:
			firstTok = tok
			strong = known
		case known:
			strong = true
		case i == len(line) && trail && startsKnown(tok):
		default:
			return false, false
		}
	}

	prevCut := j.cur[len(j.cur)-1] != ' '
	if !strong {
		// A single bare word: the tail of a cut value, or an unrelated
		// one-word line. Only a record left truncated mid-token takes it.
		return prevCut && j.truncated(j.cur), false
	}
	// Two whole tokens with no space between them: a shipper stripped
	// the trailing space. Digits are the rest of a cut number instead.
	space = prevCut && lead && knownToken(firstTok) &&
		!allDigits(bytes.Trim(firstTok, "[]")) && knownToken(lastToken(j.cur))
	return true, space
}

func lastToken(b []byte) []byte {
	k := bytes.LastIndexByte(b, ' ')
	return b[k+1:]
}

// knownToken reports whether tok is a word LOG records contain: a
// key=value with a known key, a flag or marker word, a FRAG:/ID: token, a
// number or a bracket or parenthesis part.
func knownToken(tok []byte) bool {
	if len(tok) > 0 && tok[0] == '(' {
		// IPv4 and TCP options: "(0204FFD7...)" or "(TRUNCATED)".
		return true
	}
	for len(tok) > 0 && tok[0] == '[' {
		tok = tok[1:]
	}
	for len(tok) > 0 && (tok[len(tok)-1] == ']' || tok[len(tok)-1] == ')') {
		tok = tok[:len(tok)-1]
	}
	if len(tok) == 0 {
		return true
	}
	if eq := bytes.IndexByte(tok, '='); eq > 0 {
		return knownKey(tok[:eq])
	}
	if flagByWord(tok) != 0 || allDigits(tok) ||
		bytes.HasPrefix(tok, fragColon) || bytes.HasPrefix(tok, idColon) {
		return true
	}
	for _, w := range knownWords {
		if string(tok) == w {
			return true
		}
	}
	return false
}

// knownKeys are the keys of LOG record fields, IP, transport and ARP.
var knownKeys = [...]string{
	"IN", "OUT", "PHYSIN", "PHYSOUT", "MAC", "MACSRC", "MACDST",
	"MACPROTO", "VPROTO", "VID", "TUNNEL", "SRC", "DST", "LEN", "TOS",
	"PREC", "TTL", "ID", "TC", "HOPLIMIT", "FLOWLBL", "PROTO", "SPT",
	"DPT", "SEQ", "ACK", "WINDOW", "RES", "URGP", "TYPE", "CODE",
	"PARAMETER", "GATEWAY", "MTU", "POINTER", "SPI", "UID", "GID",
	"MARK", "HTYPE", "PTYPE", "OPCODE", "IPSRC", "IPDST",
}

// knownWords are the bare words of LOG records besides the flags.
var knownWords = [...]string{
	"INCOMPLETE", "TRUNCATED", "OPT", "bytes", "Unknown", "Ext", "Hdr",
	"AH", "ESP", "ARP",
}

func knownKey(k []byte) bool {
	for _, w := range knownKeys {
		if string(k) == w {
			return true
		}
	}
	return false
}

// startsKnown reports whether tok, a word without "=", is the start of
// a known key or word: the last word of a line a wrap cut.
func startsKnown(tok []byte) bool {
	tok = bytes.TrimLeft(tok, "[")
	for _, w := range knownKeys {
		if strings.HasPrefix(w, string(tok)) {
			return true
		}
	}
	for _, w := range knownWords {
		if strings.HasPrefix(w, string(tok)) {
			return true
		}
	}
	for _, w := range flagWords {
		if strings.HasPrefix(w, string(tok)) {
			return true
		}
	}
	return false
}
