package kernlog

import (
	"bytes"
	"time"
)

// header is what scanHeader found before the message. It holds only
// syntax: converting the date fields to a time.Time needs the Parser's
// Location and Now, and detecting a header (for the Joiner) does not.
type header struct {
	n int // bytes of header; the message starts at n

	wall      bool // a wall-clock stamp was found
	epoch     bool // the stamp is epochNano, not the fields below
	epochNano int64
	year      int // 0 when the format leaves the year out
	month     int
	day       int
	hour      int
	min       int
	sec       int
	nsec      int
	zoned     bool // offset is known; otherwise use the Location
	offset    int  // seconds east of UTC
	commaFrac bool // dmesg --time-format=iso writes "41,757925"

	boot      bool // a boot-relative stamp was found
	sinceBoot time.Duration

	hasSeq bool
	seq    uint64

	host []byte
}

// setDate copies the wall-clock stamp of t into h.
func (h *header) setDate(t *header) {
	h.wall, h.epoch, h.epochNano = true, false, 0
	h.year, h.month, h.day = t.year, t.month, t.day
	h.hour, h.min, h.sec, h.nsec = t.hour, t.min, t.sec, t.nsec
	h.zoned, h.offset, h.commaFrac = t.zoned, t.offset, t.commaFrac
}

// hostMode says how scanHostTag treats the tokens after a stamp.
type hostMode uint8

const (
	// hostOptional: "host tag:", "host", "tag:" or nothing (syslog).
	hostOptional hostMode = iota
	// hostWithTag: "host tag:" or "tag:" only (journalctl
	// short-monotonic, after a dmesg bracket, where a lone word is more
	// likely a log prefix than a host).
	hostWithTag
)

// scanHeader finds the header in front of a kernel message. It never
// fails: a line with no header it knows gives n == 0.
func scanHeader(b []byte) header {
	var h header
	if n := scanKmsg(b, &h); n > 0 {
		h.n = n
		return h
	}

	i := 0
	if n := scanPRI(b); n > 0 {
		i = n
		if n5 := scan5424(b[i:], &h); n5 > 0 {
			h.n = i + n5
			return h
		}
	}

	stamped := false
	if n := scanWallStamp(b[i:], &h); n > 0 {
		i += n
		stamped = true
		if !h.commaFrac {
			i += scanHostTag(b[i:], &h, hostOptional)
		}
	}
	if j := skipSpaces(b, i); j < len(b) && b[j] >= 'a' && b[j] <= 'z' {
		if n := scanDmesgLevel(b[j:]); n > 0 {
			i = j + n
		}
	}
	if j := skipSpaces(b, i); j < len(b) && b[j] == '[' {
		if n := scanBracket(b[j:], &h); n > 0 {
			i = j + n
			if !stamped {
				i += scanHostTag(b[i:], &h, hostWithTag)
			}
		}
	}
	h.n = i
	return h
}

// applyHeader copies what the header says into rec.
func (p *Parser) applyHeader(h *header, rec *Record, intern bool) {
	if h.hasSeq {
		rec.Seq = h.seq
	}
	rec.Host = p.str(h.host, slotHost, intern)
	if h.boot {
		rec.SinceBoot = h.sinceBoot
		rec.Clock = ClockBoot
	}
	if h.wall {
		if t := p.wallTime(h); t.Year() >= 0 && t.Year() <= 9999 {
			rec.Time = t
			rec.Clock = ClockWall
		}
	}
}

// wallTime converts the header's date fields to a UTC time.
//
// Warning: a yearless "Feb 29" read in a year without one becomes
// March 1 (time.Date normalises it); the guess does not search back
// for a leap year.
func (p *Parser) wallTime(h *header) time.Time {
	if h.epoch {
		return time.Unix(0, h.epochNano).UTC()
	}
	date := func(year int) time.Time {
		if h.zoned {
			t := time.Date(year, time.Month(h.month), h.day, h.hour, h.min,
				h.sec, h.nsec, time.UTC)
			return t.Add(-time.Duration(h.offset) * time.Second)
		}
		loc := p.Location
		if loc == nil {
			loc = time.Local
		}
		return time.Date(year, time.Month(h.month), h.day, h.hour, h.min,
			h.sec, h.nsec, loc).UTC()
	}
	if h.year != 0 {
		return date(h.year)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	ref := now()
	t := date(ref.Year())
	if t.After(ref.Add(48 * time.Hour)) {
		t = date(ref.Year() - 1)
	}
	return t
}

// scanKmsg reads a /dev/kmsg prefix "prio,seq,usec,flags[,more];".
func scanKmsg(b []byte, h *header) int {
	i, ok := skipDigits(b, 0, 1, 4)
	if !ok || i >= len(b) || b[i] != ',' {
		return 0
	}
	j, ok := skipDigits(b, i+1, 1, 20)
	if !ok || j >= len(b) || b[j] != ',' {
		return 0
	}
	seq, _ := parseUint(b[i+1:j], 1<<63)
	k, ok := skipDigits(b, j+1, 1, 20)
	if !ok || k >= len(b) || b[k] != ',' {
		return 0
	}
	usec, ok := parseUint(b[j+1:k], 1<<62/1000)
	if !ok {
		return 0
	}
	end := k + 1
	for end < len(b) && end < k+128 && b[end] != ';' && b[end] != ' ' {
		end++
	}
	if end >= len(b) || b[end] != ';' || end == k+1 {
		return 0
	}
	h.hasSeq, h.seq = true, seq
	h.boot, h.sinceBoot = true, time.Duration(usec)*time.Microsecond
	return end + 1
}

// scanPRI reads a syslog "<PRI>".
func scanPRI(b []byte) int {
	if len(b) < 3 || b[0] != '<' {
		return 0
	}
	i, ok := skipDigits(b, 1, 1, 3)
	if !ok || i >= len(b) || b[i] != '>' {
		return 0
	}
	return i + 1
}

// scan5424 reads the rest of an RFC 5424 header after <PRI>: version,
// timestamp, host, app-name, procid, msgid and structured data.
func scan5424(b []byte, h *header) int {
	if len(b) < 2 || b[0] != '1' || b[1] != ' ' {
		return 0
	}
	i := 2
	tok := token(b, i)
	switch {
	case string(tok) == "-":
	default:
		var t header
		if n := scanISO(tok, &t); n != len(tok) || n == 0 {
			return 0
		}
		h.setDate(&t)
	}
	i += len(tok) + 1
	// HOSTNAME APP-NAME PROCID MSGID
	for f := 0; f < 4; f++ {
		if i > len(b) {
			return 0
		}
		tok = token(b, i)
		if len(tok) == 0 {
			return 0
		}
		if f == 0 && string(tok) != "-" {
			h.host = tok
		}
		i += len(tok) + 1
	}
	if i > len(b) {
		return 0
	}
	// STRUCTURED-DATA: "-" or one or more [id param="value" ...].
	if i < len(b) && b[i] == '-' {
		i++
	} else {
		n := 0
		for i < len(b) && b[i] == '[' {
			k := skipSDElement(b, i)
			if k < 0 {
				return 0
			}
			i, n = k, n+1
		}
		if n == 0 {
			return 0
		}
	}
	if i < len(b) && b[i] == ' ' {
		i++
	}
	if bytes.HasPrefix(b[i:], utf8BOM) {
		i += len(utf8BOM)
	}
	return i
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// skipSDElement returns the index after the "]" closing the structured
// data element that starts at b[i], honouring quoted values with
// backslash escapes, or -1.
func skipSDElement(b []byte, i int) int {
	quoted := false
	for k := i + 1; k < len(b); k++ {
		switch c := b[k]; {
		case quoted && c == '\\':
			k++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ']':
			return k + 1
		}
	}
	return -1
}

// scanWallStamp reads any of the wall-clock stamps that start a line.
func scanWallStamp(b []byte, h *header) int {
	if len(b) == 0 {
		return 0
	}
	c := b[0]
	switch {
	case c >= '0' && c <= '9':
		if n := scanISO(b, h); n > 0 {
			return n
		}
		return scanUnix(b, h)
	case c >= 'A' && c <= 'Z':
		if n := scanBSD(b, h); n > 0 {
			return n
		}
		return scanFull(b, h)
	}
	return 0
}

// scanISO reads "YYYY-MM-DD[T ]hh:mm:ss[.frac][Z|+hh:mm|+hhmm]" followed
// by a space or the end.
func scanISO(b []byte, out *header) int {
	var t header
	h := &t // filled as parsing goes, copied to out only on success
	if len(b) < 19 || b[4] != '-' || b[7] != '-' ||
		(b[10] != 'T' && b[10] != ' ') {
		return 0
	}
	year, ok1 := fixed(b, 0, 4)
	month, ok2 := fixed(b, 5, 2)
	day, ok3 := fixed(b, 8, 2)
	if !ok1 || !ok2 || !ok3 {
		return 0
	}
	n := scanClock(b, 11, h)
	if n == 0 {
		return 0
	}
	i := n
	if i < len(b) {
		switch b[i] {
		case 'Z', 'z':
			h.zoned, h.offset = true, 0
			i++
		case '+', '-':
			off, k := scanOffset(b, i)
			if k == 0 {
				return 0
			}
			h.zoned, h.offset = true, off
			i = k
		}
	}
	if i < len(b) && b[i] != ' ' {
		return 0
	}
	if !validDate(month, day) {
		return 0
	}
	h.year, h.month, h.day = year, month, day
	out.setDate(h)
	return i
}

// scanClock reads "hh:mm:ss[.frac]" at b[i:] into h and returns the
// index after it, or 0.
func scanClock(b []byte, i int, h *header) int {
	if len(b) < i+8 || b[i+2] != ':' || b[i+5] != ':' {
		return 0
	}
	hour, ok1 := fixed(b, i, 2)
	min, ok2 := fixed(b, i+3, 2)
	sec, ok3 := fixed(b, i+6, 2)
	if !ok1 || !ok2 || !ok3 || hour > 23 || min > 59 || sec > 60 {
		return 0
	}
	h.hour, h.min, h.sec, h.nsec = hour, min, sec, 0
	i += 8
	if i < len(b) && (b[i] == '.' || b[i] == ',') {
		comma := b[i] == ','
		if i = scanFraction(b, i, h); i == 0 {
			return 0
		}
		h.commaFrac = comma
	}
	return i
}

// scanOffset reads "+hh:mm", "+hhmm" or "+hh" at b[i].
func scanOffset(b []byte, i int) (offset, next int) {
	sign := 1
	if b[i] == '-' {
		sign = -1
	}
	hh, ok := fixed(b, i+1, 2)
	if !ok {
		return 0, 0
	}
	k := i + 3
	mm := 0
	switch {
	case k < len(b) && b[k] == ':':
		if mm, ok = fixed(b, k+1, 2); !ok {
			return 0, 0
		}
		k += 3
	case k+1 < len(b) && isDigit(b[k]) && isDigit(b[k+1]):
		mm, _ = fixed(b, k, 2)
		k += 2
	}
	if hh > 23 || mm > 59 {
		return 0, 0
	}
	return sign * (hh*3600 + mm*60), k
}

func monthByName(b []byte) int {
	if len(b) < 3 {
		return 0
	}
	switch string(b[:3]) {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}

// scanBSD reads the RFC 3164 stamp "Mmm dd hh:mm:ss" (day padded with a
// space or a zero, or unpadded), with the optional fraction journalctl
// short-precise adds.
func scanBSD(b []byte, h *header) int {
	month := monthByName(b)
	if month == 0 || len(b) < 4 || b[3] != ' ' {
		return 0
	}
	i := 4
	if i < len(b) && b[i] == ' ' {
		i++
	}
	k, ok := skipDigits(b, i, 1, 2)
	if !ok || k >= len(b) || b[k] != ' ' {
		return 0
	}
	day, _ := parseUint(b[i:k], 31)
	n := scanClock(b, k+1, h)
	if n == 0 || (n < len(b) && b[n] != ' ') || !validDate(month, int(day)) {
		return 0
	}
	h.wall, h.year, h.month, h.day = true, 0, month, int(day)
	return n
}

// scanFull reads journalctl short-full: "Fri 2026-12-04 04:11:41 UTC".
// Only UTC and GMT are understood as zones; any other abbreviation is
// read in the Parser's Location, which is right when journalctl ran in
// that zone.
func scanFull(b []byte, h *header) int {
	if len(b) < 4+19+2 || b[3] != ' ' || !isWeekday(b[:3]) {
		return 0
	}
	var t header
	n := scanISO(b[4:], &t)
	if n == 0 || t.zoned || b[4+10] != ' ' {
		return 0
	}
	i := 4 + n + 1
	zone := token(b, i)
	if len(zone) == 0 || !isLetters(zone) {
		return 0
	}
	if string(zone) == "UTC" || string(zone) == "GMT" {
		t.zoned, t.offset = true, 0
	}
	h.setDate(&t)
	return i + len(zone)
}

// scanUnix reads journalctl short-unix: "1607055101.757925".
func scanUnix(b []byte, h *header) int {
	i, ok := skipDigits(b, 0, 9, 12)
	if !ok || i >= len(b) || b[i] != '.' {
		return 0
	}
	sec, ok := parseUint(b[:i], maxWallMicros/1_000_000)
	if !ok {
		return 0
	}
	var t header
	k := scanFraction(b, i, &t)
	if k == 0 || (k < len(b) && b[k] != ' ') {
		return 0
	}
	h.wall, h.epoch = true, true
	h.epochNano = int64(sec)*1e9 + int64(t.nsec)
	return k
}

// scanFraction reads ".digits" at b[i] into h.nsec.
func scanFraction(b []byte, i int, h *header) int {
	k := i + 1
	nsec, digits := 0, 0
	for k < len(b) && isDigit(b[k]) {
		if digits < 9 {
			nsec = nsec*10 + int(b[k]-'0')
			digits++
		}
		k++
	}
	if k == i+1 {
		return 0
	}
	for ; digits < 9; digits++ {
		nsec *= 10
	}
	h.nsec = nsec
	return k
}

// scanBracket reads a dmesg stamp: "[  307.757925]" (boot-relative,
// optionally with the " < delta>" of dmesg -d) or dmesg -T's
// "[Fri Dec  4 04:11:41 2026]".
func scanBracket(b []byte, h *header) int {
	if len(b) < 3 || b[0] != '[' {
		return 0
	}
	i := 1
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i < len(b) && isDigit(b[i]) {
		k, ok := skipDigits(b, i, 1, 12)
		if !ok || k >= len(b) || b[k] != '.' {
			return 0
		}
		sec, _ := parseUint(b[i:k], 1<<33)
		var t header
		k = scanFraction(b, k, &t)
		if k == 0 {
			return 0
		}
		if k < len(b) && b[k] == ' ' {
			// dmesg -d: "[  307.757925 <    0.000012>]"
			e := bytes.IndexByte(b[k:], ']')
			if e < 0 || e > 24 || bytes.IndexByte(b[k:k+e], '<') < 0 {
				return 0
			}
			k += e
		}
		if k >= len(b) || b[k] != ']' {
			return 0
		}
		h.boot = true
		h.sinceBoot = time.Duration(sec)*time.Second + time.Duration(t.nsec)
		return k + 1
	}

	// "[Www Mmm dd hh:mm:ss yyyy]"
	if len(b) < 6 || b[4] != ' ' || !isWeekday(b[1:4]) {
		return 0
	}
	var t header
	n := scanBSD(b[5:], &t)
	if n == 0 {
		return 0
	}
	k := 5 + n
	if len(b) < k+6 || b[k] != ' ' || b[k+5] != ']' {
		return 0
	}
	year, ok := fixed(b, k+1, 4)
	if !ok {
		return 0
	}
	t.year = year
	h.setDate(&t)
	return k + 6
}

var levels = [...]string{"emerg", "alert", "crit", "err", "warn",
	"notice", "info", "debug"}

// scanDmesgLevel reads dmesg -x's "kern  :warn  : ".
func scanDmesgLevel(b []byte) int {
	i := 0
	for i < len(b) && (b[i] >= 'a' && b[i] <= 'z' || isDigit(b[i])) {
		i++
	}
	if i == 0 || i > 8 {
		return 0
	}
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i >= len(b) || b[i] != ':' {
		return 0
	}
	i++
	s := i
	for i < len(b) && b[i] >= 'a' && b[i] <= 'z' {
		i++
	}
	known := false
	for _, l := range levels {
		if string(b[s:i]) == l {
			known = true
		}
	}
	if !known {
		return 0
	}
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i >= len(b) || b[i] != ':' {
		return 0
	}
	i++
	if i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// scanHostTag reads the host name and the "kernel:" tag that follow a
// syslog or journal stamp.
func scanHostTag(b []byte, h *header, mode hostMode) int {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	tok1 := token(b, i)
	if len(tok1) == 0 {
		return 0
	}
	if isTag(tok1) {
		return i + len(tok1)
	}
	j := i + len(tok1)
	for j < len(b) && b[j] == ' ' {
		j++
	}
	tok2 := token(b, j)
	if mode == hostWithTag {
		if isTag(tok2) {
			h.host = tok1
			return j + len(tok2)
		}
		return 0
	}
	// A word ending in ':' that is not a tag starts the message (a
	// prefix such as "DROP:" after a stamp with no host), and so does
	// the record itself, glued prefix or not.
	if tok1[len(tok1)-1] == ':' || bytes.Contains(tok1, inKey) {
		return 0
	}
	h.host = tok1
	if isTag(tok2) {
		return j + len(tok2)
	}
	return i + len(tok1)
}

// isTag reports whether t is a syslog tag the kernel's messages carry:
// "kernel:" or "name[pid]:".
func isTag(t []byte) bool {
	if len(t) < 2 || t[len(t)-1] != ':' {
		return false
	}
	t = t[:len(t)-1]
	if string(t) == "kernel" {
		return true
	}
	if t[len(t)-1] != ']' {
		return false
	}
	open := bytes.IndexByte(t, '[')
	return open > 0 && allDigits(t[open+1:len(t)-1])
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// token returns the bytes of b from i to the next space or the end.
func token(b []byte, i int) []byte {
	if i >= len(b) {
		return nil
	}
	j := bytes.IndexByte(b[i:], ' ')
	if j < 0 {
		return b[i:]
	}
	return b[i : i+j]
}

// skipDigits returns the index after a run of min..max digits at b[i].
func skipDigits(b []byte, i, min, max int) (int, bool) {
	k := i
	for k < len(b) && isDigit(b[k]) {
		k++
		if k-i > max {
			return 0, false
		}
	}
	return k, k-i >= min
}

// fixed parses exactly n digits at b[i].
func fixed(b []byte, i, n int) (int, bool) {
	if i < 0 || len(b) < i+n {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+n] {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

func isLetters(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

var weekdays = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

func isWeekday(b []byte) bool {
	for _, d := range weekdays {
		if string(b) == d {
			return true
		}
	}
	return false
}

// validDate rejects months and days no calendar has; February 30 and
// the like are left to time.Date, which normalises them.
func validDate(month, day int) bool {
	return month >= 1 && month <= 12 && day >= 1 && day <= 31
}
