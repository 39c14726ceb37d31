package writer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trellis-run/trellis/host/embedded/appendlog"
	"github.com/trellis-run/trellis/logstore"
)

// The spool stores rows in a compact binary form rather than JSON: encoding and decoding run
// twice per row (on Write and when a batch is built), at 100k rows per second on two cores.
// Times round-trip to the nanosecond, in UTC; nil and empty JSON stay distinct.

// codecVersion is the first byte of every record payload, so a future format can be told apart.
// Version 2 adds Row.EventID at the end of each row; version 1 records (spooled by an older
// Trellis before an upgrade) are still read.
const codecVersion = 2

// validVersion reports whether a payload's format can be read.
func validVersion(v byte) bool { return v == 1 || v == codecVersion }

// A record is one appendlog frame (its header holds the length and checksum) whose payload is
//
//	u8 codecVersion | u32 LE row count | rows
const (
	payloadHeadLen = 5
	// recordRows and recordBytes cut a large Write into several records, so no record is
	// huge and back-pressure can admit a large Write piece by piece.
	recordRows  = 1024
	recordBytes = 1 << 20
	// minRowBytes is the smallest encoded row: 11 empty strings, 3 small numbers, 4 times of
	// 2 bytes, 3 nil JSON values and the error flag.
	minRowBytes = 26
)

var errCorrupt = errors.New("corrupt record")

// beginRecord starts a record's frame in dst and returns where the frame starts.
func beginRecord(dst []byte) ([]byte, int) {
	dst, start := appendlog.BeginFrame(dst)
	return append(dst, codecVersion, 0, 0, 0, 0), start
}

// finishRecord completes the record begun at start once its n rows are appended.
func finishRecord(rec []byte, start, n int) []byte {
	binary.LittleEndian.PutUint32(rec[start+appendlog.HeaderBytes+1:], uint32(n))
	return appendlog.FinishFrame(rec, start)
}

// encodeRecords frames rows as one or more records of at most maxRows rows, appended to dst.
// A batch is made of whole records, so maxRows must not exceed the batch size.
func encodeRecords(dst []byte, rows []logstore.Row, maxRows int) []byte {
	maxRows = max(min(maxRows, recordRows), 1)
	for len(rows) > 0 {
		var start int
		dst, start = beginRecord(dst)
		n := 0
		for n < len(rows) && n < maxRows && len(dst)-start < recordBytes {
			dst = appendRow(dst, &rows[n])
			n++
		}
		dst = finishRecord(dst, start, n)
		rows = rows[n:]
	}
	return dst
}

// checkPayload checks what a record's checksum cannot: its format and row count, which it
// returns.
func checkPayload(payload []byte) (int, error) {
	if len(payload) < payloadHeadLen || !validVersion(payload[0]) {
		return 0, fmt.Errorf("%w: unknown format version", errCorrupt)
	}
	n := binary.LittleEndian.Uint32(payload[1:])
	if n == 0 || int64(n) > int64(len(payload)-payloadHeadLen)/minRowBytes {
		return 0, fmt.Errorf("%w: bad row count %d", errCorrupt, n)
	}
	return int(n), nil
}

func appendRow(b []byte, r *logstore.Row) []byte {
	for _, s := range [...]string{r.ID, r.Kind, r.FullName, r.Sender, r.EventType, r.Status, r.Stage,
		r.RequestID, r.NodeID, r.ParentNodeID, r.Host} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, int64(r.Attempt))
	b = binary.AppendUvarint(b, uint64(r.Seq))
	b = binary.AppendVarint(b, r.Duration)
	for _, t := range [...]time.Time{r.CreatedAt, r.RecordedAt, r.StartTime, r.EndTime} {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	for _, j := range [...]json.RawMessage{r.Kwargs, r.Result, r.Logs} {
		b = appendNullable(b, j)
	}
	if r.Error == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		for _, s := range [...]string{r.Error.Code, r.Error.Message, r.Error.Stack} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.EventID)))
	return append(b, r.EventID...)
}

// appendNullable writes len+1, or 0 for nil, so nil and empty JSON stay distinct.
func appendNullable(b []byte, j []byte) []byte {
	if j == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(j))+1)
	return append(b, j...)
}

// decoder reads one record payload; the first error sticks and every later read returns zero
// values, so decodeRows checks once per row.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) nullable() json.RawMessage {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	src := d.bytes(n - 1)
	if d.err != nil {
		return nil
	}
	return json.RawMessage(append(make([]byte, 0, len(src)), src...))
}

// decodeRows appends the rows of a checked record payload to dst. It never panics on bad input.
func decodeRows(dst []logstore.Row, payload []byte) ([]logstore.Row, error) {
	if len(payload) < payloadHeadLen || !validVersion(payload[0]) {
		return dst, fmt.Errorf("%w: unknown format version", errCorrupt)
	}
	withEventID := payload[0] >= 2
	n := int(binary.LittleEndian.Uint32(payload[1:]))
	d := decoder{b: payload[payloadHeadLen:]}
	// A count the bytes cannot hold is corrupt, not a reason for a huge allocation.
	if n == 0 || n > len(d.b)/minRowBytes {
		return dst, fmt.Errorf("%w: bad row count %d", errCorrupt, n)
	}
	base := len(dst)
	dst = slices.Grow(dst, n)[:base+n]
	rows := dst[base:]
	clear(rows) // a reused buffer may hold rows of before
	for i := range rows {
		r := &rows[i]
		r.ID, r.Kind, r.FullName, r.Sender = d.string(), d.string(), d.string(), d.string()
		r.EventType, r.Status, r.Stage = d.string(), d.string(), d.string()
		r.RequestID, r.NodeID, r.ParentNodeID, r.Host = d.string(), d.string(), d.string(), d.string()
		r.Attempt = int(d.varint())
		seq := d.uvarint()
		if seq > 1<<32-1 {
			d.fail()
		}
		r.Seq = uint32(seq)
		r.Duration = d.varint()
		r.CreatedAt, r.RecordedAt, r.StartTime, r.EndTime = d.time(), d.time(), d.time(), d.time()
		r.Kwargs, r.Result, r.Logs = d.nullable(), d.nullable(), d.nullable()
		switch flag := d.bytes(1); {
		case d.err != nil:
		case flag[0] == 1:
			r.Error = &logstore.RowError{Code: d.string(), Message: d.string(), Stack: d.string()}
		case flag[0] != 0:
			d.fail()
		}
		if withEventID && d.err == nil {
			r.EventID = d.string()
		}
		if d.err != nil {
			clear(rows)
			return dst[:base], fmt.Errorf("%w: row %d of %d", errCorrupt, i+1, n)
		}
	}
	if len(d.b) != 0 {
		clear(rows)
		return dst[:base], fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return dst, nil
}

// AppendPayload appends rows to dst as one record payload — the spool's row format without its
// frame, which the log's other durable buffer (logstore/redisspool) stores too, so a row is
// encoded one way wherever it waits. Rows must be valid (Row.Validate); at least one.
func AppendPayload(dst []byte, rows []logstore.Row) []byte {
	dst = append(dst, codecVersion)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rows)))
	for i := range rows {
		dst = appendRow(dst, &rows[i])
	}
	return dst
}

// PayloadRows is how many rows a payload made by AppendPayload says it holds (0 for one too
// short to say), for sizing the slice DecodePayload appends to.
func PayloadRows[P string | []byte](payload P) int {
	if len(payload) < payloadHeadLen {
		return 0
	}
	return int(uint32(payload[1]) | uint32(payload[2])<<8 | uint32(payload[3])<<16 | uint32(payload[4])<<24)
}

// DecodePayload appends the rows of a payload made by AppendPayload (or read from a spool
// record) to dst. It never panics on bad input: a corrupt payload is an error and adds nothing.
func DecodePayload(dst []logstore.Row, payload []byte) ([]logstore.Row, error) {
	return decodeRows(dst, payload)
}
