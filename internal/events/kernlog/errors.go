package kernlog

import (
	"errors"
	"strconv"
)

// Errors that tell why a line with the LOG signature is Malformed. The
// error returned by the parser wraps one of them; test with errors.Is.
var (
	// ErrTruncated: the record ends before the fields its protocol always
	// carries, or inside an address, a bracket or the IN=/OUT= signature.
	// A hard-wrapped record that was not joined, or one cut by a syslog
	// length limit, gives this error.
	ErrTruncated = errors.New("record truncated")
	// ErrBadAddress: SRC= or DST= is not an IP address, or the two are of
	// different families.
	ErrBadAddress = errors.New("bad address")
	// ErrBadPort: SPT= or DPT= is not a number from 0 to 65535.
	ErrBadPort = errors.New("bad port")
	// ErrBadNumber: a numeric field is not a number or is out of range.
	ErrBadNumber = errors.New("bad number")
	// ErrBadProto: PROTO= is neither a known name nor a number 0-255.
	ErrBadProto = errors.New("bad protocol")
	// ErrDuplicate: a field that occurs once per record occurs twice,
	// which happens when two records were glued together.
	ErrDuplicate = errors.New("duplicate field")
)

// FieldError is a Malformed record's error when one field is at fault.
// It wraps one of the sentinel errors above.
type FieldError struct {
	// Field is the key as printed by the kernel, e.g. "SPT".
	Field string
	// Value is the offending value (cut to 64 bytes).
	Value string
	Err   error
}

// Error returns e.g. `field SPT="99999": bad port`.
func (e *FieldError) Error() string {
	return "field " + e.Field + "=" + strconv.Quote(e.Value) + ": " +
		e.Err.Error()
}

// Unwrap returns the sentinel error.
func (e *FieldError) Unwrap() error { return e.Err }

// fieldError builds a *FieldError; it copies key and value, so it
// allocates, but only on the malformed path.
func fieldError(key, val []byte, err error) error {
	if len(val) > 64 {
		val = val[:64]
	}
	return &FieldError{Field: string(key), Value: string(val), Err: err}
}
