package localbus

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/embedded/appendlog"
)

// A record is a type byte and its fields: uvarints and length-prefixed bytes. Each is one
// appendlog frame.

// Record types.
const (
	recTopic    = 'T' // topic id, name
	recGroup    = 'G' // group id, topic id, name, next
	recSetNext  = 'S' // group id, next (SkipBacklog)
	recDelGroup = 'X' // group id
	recPublish  = 'P' // topic id, seq, payload, header count, (key, value)...
	recDeliver  = 'D' // group id, seq, delivery count, consumer
	recAck      = 'A' // group id, seq
	recTrim     = 'R' // topic id, first seq kept
)

// frame appends one framed record built by body to buf.
func frame(buf []byte, body func([]byte) []byte) []byte {
	buf, start := appendlog.BeginFrame(buf)
	return appendlog.FinishFrame(body(buf), start)
}

func putUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func putBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errShort: a record ended before its fields did (a bug or corruption that passed the CRC).
var errShort = errors.New("record too short")

// reader decodes the fields of one record.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) string() string { return string(r.bytes()) }

func corrupt(typ byte, err error) error {
	return fmt.Errorf("%w: record %q: %v", ErrCorrupt, typ, err)
}
