package kernlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// exportState holds the fields of the journal export entry being read
// (journalctl -o export): one FIELD=value per line, entries separated by
// a blank line. The entry's own order of fields is not fixed, so a
// MESSAGE= line only gets the fields that came before it; in practice
// __REALTIME_TIMESTAMP always does.
type exportState struct {
	realtime    int64 // µs since the epoch, 0 when not seen
	sourceMono  int64 // µs since boot, 0 when not seen
	host        []byte
	hostStorage [64]byte
}

func (e *exportState) reset() {
	e.realtime, e.sourceMono, e.host = 0, 0, nil
}

var (
	exportMessage  = []byte("MESSAGE=")
	exportRealtime = []byte("__REALTIME_TIMESTAMP=")
	exportCursor   = []byte("__CURSOR=")
	exportHost     = []byte("_HOSTNAME=")
	exportSrcMono  = []byte("_SOURCE_MONOTONIC_TIMESTAMP=")
)

// parseExport handles the journal export fields ctwatch uses. ok is
// false when the line is not one of them.
func (p *Parser) parseExport(line []byte, rec *Record,
	intern bool) (res Result, err error, ok bool) {
	e := &p.export
	switch {
	case bytes.HasPrefix(line, exportMessage):
		body := line[len(exportMessage):]
		if e.realtime != 0 {
			rec.Time = time.UnixMicro(e.realtime).UTC()
			rec.Clock = ClockWall
		}
		if e.sourceMono != 0 {
			rec.SinceBoot = time.Duration(e.sourceMono) * time.Microsecond
			if rec.Clock == ClockNone {
				rec.Clock = ClockBoot
			}
		}
		rec.Host = p.str(e.host, slotHost, intern)
		res, err = p.parseBody(body, rec, intern)
		return res, err, true
	case bytes.HasPrefix(line, exportCursor):
		e.reset()
	case bytes.HasPrefix(line, exportRealtime):
		e.realtime = exportMicros(line[len(exportRealtime):], maxWallMicros)
	case bytes.HasPrefix(line, exportSrcMono):
		e.sourceMono = exportMicros(line[len(exportSrcMono):], maxBootMicros)
	case bytes.HasPrefix(line, exportHost):
		v := line[len(exportHost):]
		if len(v) > len(e.hostStorage) {
			v = v[:len(e.hostStorage)]
		}
		e.host = e.hostStorage[:copy(e.hostStorage[:], v)]
	default:
		return NotFirewall, nil, false
	}
	return NotFirewall, nil, true
}

// Bounds of the stamps a record may carry: wall times must encode as
// RFC 3339 (years 0-9999), and boot-relative ones fit a time.Duration.
const (
	maxWallMicros = 253402300799999999 // 9999-12-31T23:59:59.999999Z
	maxBootMicros = 1<<63/1000 - 1
)

// exportMicros parses a journal stamp in µs; 0 means absent or invalid.
func exportMicros(b []byte, max uint64) int64 {
	v, ok := parseUint(b, max)
	if !ok {
		return 0
	}
	return int64(v)
}

// journalJSON is the part of a journalctl -o json entry ctwatch reads.
// MESSAGE is a string, or an array of byte values when it is not UTF-8.
type journalJSON struct {
	Message    json.RawMessage `json:"MESSAGE"`
	Realtime   string          `json:"__REALTIME_TIMESTAMP"`
	SourceMono string          `json:"_SOURCE_MONOTONIC_TIMESTAMP"`
	Host       string          `json:"_HOSTNAME"`
}

// parseJSON handles one journalctl -o json line. It allocates (through
// encoding/json), which is acceptable for a format nobody streams at a
// million lines a second.
func (p *Parser) parseJSON(line []byte, rec *Record, intern bool) (Result, error) {
	var e journalJSON
	if err := json.Unmarshal(line, &e); err != nil || len(e.Message) == 0 {
		// Not a journal entry; a firewall record inside broken JSON is
		// still not one we can read.
		return NotFirewall, nil
	}
	var msg []byte
	switch e.Message[0] {
	case '"':
		var s string
		if err := json.Unmarshal(e.Message, &s); err != nil {
			return NotFirewall, nil
		}
		msg = []byte(s)
	case '[':
		var bs []byte
		var ints []int
		if err := json.Unmarshal(e.Message, &ints); err != nil {
			return NotFirewall, nil
		}
		for _, v := range ints {
			bs = append(bs, byte(v))
		}
		msg = bs
	default:
		return NotFirewall, nil
	}
	if us := exportMicros([]byte(e.Realtime), maxWallMicros); us != 0 {
		rec.Time = time.UnixMicro(us).UTC()
		rec.Clock = ClockWall
	}
	if us := exportMicros([]byte(e.SourceMono), maxBootMicros); us != 0 {
		rec.SinceBoot = time.Duration(us) * time.Microsecond
		if rec.Clock == ClockNone {
			rec.Clock = ClockBoot
		}
	}
	rec.Host = p.str([]byte(e.Host), slotHost, intern)
	res, err := p.parseBody(trimLine(msg), rec, intern)
	if err != nil {
		err = fmt.Errorf("journal message: %w", err)
	}
	return res, err
}
