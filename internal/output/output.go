// Package output writes verdicts as JSON lines or plain text lines, for
// `ctwatch` when its standard output is not a terminal.
package output

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
)

// Record is the JSON form of one verdict; its fields are the schema
// documented in the README ("Output").
type Record struct {
	Time      time.Time `json:"time"`
	Class     string    `json:"class"`
	Reason    string    `json:"reason,omitempty"`
	Answered  *bool     `json:"answered,omitempty"`
	Lateness  *float64  `json:"lateness_seconds,omitempty"`
	Age       *float64  `json:"age_seconds,omitempty"`
	Estimated bool      `json:"estimated,omitempty"`
	Source    string    `json:"source"`
	Server    string    `json:"server"`
	Client    string    `json:"client"`
	InIface   string    `json:"in_iface,omitempty"`
	Prefix    string    `json:"prefix,omitempty"`
	FlowID    uint32    `json:"flow_id,omitempty"`
	DNS       *DNS      `json:"dns,omitempty"`
	Decided   time.Time `json:"decided"`
}

// DNS is the decoded DNS header and question, when NFLOG carried them.
type DNS struct {
	ID    uint16 `json:"id"`
	Flags string `json:"flags,omitempty"`
	Rcode uint16 `json:"rcode"`
	Name  string `json:"name,omitempty"`
	Type  string `json:"type,omitempty"`
}

// NewRecord converts a verdict to its JSON form.
func NewRecord(v correlate.Verdict) Record {
	r := Record{
		Time:      v.Drop.Time,
		Class:     v.Class.String(),
		Reason:    v.Reason.String(),
		Estimated: v.Estimated,
		Source:    v.Drop.Source.String(),
		Server:    v.Drop.Src.String(),
		Client:    v.Drop.Dst.String(),
		InIface:   v.Drop.InIface,
		Prefix:    v.Drop.Prefix,
		FlowID:    v.FlowID,
		Decided:   v.Decided,
	}
	if v.Class == correlate.Late {
		answered := v.Answered
		lateness := v.Lateness.Seconds()
		r.Answered, r.Lateness = &answered, &lateness
	}
	if v.FlowID != 0 {
		age := v.Age.Seconds()
		r.Age = &age
	}
	if d := v.Drop.DNS; d != nil {
		r.DNS = &DNS{ID: d.ID, Flags: d.Flags, Rcode: d.Rcode, Name: d.Name, Type: d.Type}
	}
	return r
}

// Format selects how verdicts are written.
type Format string

// Formats.
const (
	JSON  Format = "json"
	Plain Format = "plain"
)

// Writer writes verdicts to an io.Writer, one line each, and is safe for
// concurrent use. Write errors are kept; Err returns the first.
type Writer struct {
	mu  sync.Mutex // guards w and err: verdicts come from several readers
	w   *bufio.Writer
	fmt Format
	err error
}

// NewWriter returns a Writer in format f.
func NewWriter(w io.Writer, f Format) (*Writer, error) {
	if f != JSON && f != Plain {
		return nil, fmt.Errorf("output format %q: want json or plain", f)
	}
	return &Writer{w: bufio.NewWriter(w), fmt: f}, nil
}

// Write writes one verdict and flushes, so a reader of a pipe sees it at
// once.
func (w *Writer) Write(v correlate.Verdict) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if w.fmt == JSON {
		b, err := json.Marshal(NewRecord(v))
		if err != nil {
			w.err = fmt.Errorf("encode verdict: %w", err)
			return
		}
		w.w.Write(b)
		w.w.WriteByte('\n')
	} else {
		w.w.WriteString(PlainLine(v))
		w.w.WriteByte('\n')
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("write verdict: %w", err)
	}
}

// Err returns the first write error.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// PlainLine formats a verdict for people:
//
//	04:12:01.123 late/unanswered 198.18.0.2:53 -> 198.18.1.1:40000 lateness=1.234s age=4.234s nflog in=veth0 q1.lab.test. A
func PlainLine(v correlate.Verdict) string {
	var b strings.Builder
	b.WriteString(v.Drop.Time.Local().Format("15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(v.Class.String())
	switch {
	case v.Class == correlate.Late && v.Answered:
		b.WriteString("/answered")
	case v.Class == correlate.Late:
		b.WriteString("/unanswered")
	case v.Class == correlate.Unknown && v.Reason != correlate.ReasonNone:
		b.WriteString("/" + v.Reason.String())
	}
	fmt.Fprintf(&b, " %s -> %s", v.Drop.Src, v.Drop.Dst)
	if v.Class == correlate.Late {
		fmt.Fprintf(&b, " lateness=%s", round(v.Lateness))
		if v.Estimated {
			b.WriteString("(est)")
		}
	}
	if v.FlowID != 0 {
		fmt.Fprintf(&b, " age=%s", round(v.Age))
	}
	b.WriteString(" " + v.Drop.Source.String())
	if v.Drop.InIface != "" {
		b.WriteString(" in=" + v.Drop.InIface)
	}
	if d := v.Drop.DNS; d != nil && d.Name != "" {
		fmt.Fprintf(&b, " %s %s", d.Name, d.Type)
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}
