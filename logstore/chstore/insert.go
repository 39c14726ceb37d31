package chstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2"
	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/trellis-run/trellis/logstore"
)

// statusCode is each status's value in the status Enum8 (and in latestNodes' packed codes).
var statusCode = map[string]int8{
	logstore.StatusWaiting: 1,
	logstore.StatusRunning: 2,
	logstore.StatusSuccess: 3,
	logstore.StatusFail:    4,
}

// anyPartitions lifts the per-insert partition limit of newer servers: a batch is one insert
// whatever days its rows were created on (each day becomes one part).
var anyPartitions = clickhouse.WithSettings(clickhouse.Settings{"max_partitions_per_insert_block": 0})

// insertSQL names every column: ClickHouse 18.16 refuses a native insert without a column list.
func (s schema) insertSQL() string {
	names := make([]string, len(logColumns))
	for i, c := range logColumns {
		names[i] = c.name
	}
	return fmt.Sprintf("INSERT INTO %s (%s)", s.logTable(), strings.Join(names, ", "))
}

// Insert stores rows in one insert. Every row is validated first, so an invalid row fails the
// batch before anything is sent. Inserting a row ID again is harmless: queries fold copies.
// The batch is sent column by column, which is several times faster than row by row.
func (s *Store) Insert(ctx context.Context, rows []logstore.Row) error {
	if err := s.checkOpen("insert"); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		if err := rows[i].Validate(); err != nil {
			return fmt.Errorf("chstore: insert: %w", err)
		}
		if err := storable(&rows[i]); err != nil {
			return fmt.Errorf("chstore: insert: %w", err)
		}
	}
	cols := encodeColumns(rows)
	insertCtx := ctx
	if s.schema.feat.partitionLimit {
		insertCtx = clickhouse.Context(ctx, anyPartitions)
	}
	batch, err := s.conn.PrepareBatch(insertCtx, s.schema.insertSQL())
	if err != nil {
		return s.fail(ctx, "insert", err)
	}
	presize(batch.Columns(), cols)
	for i, values := range cols {
		if err := batch.Column(i).Append(values); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("chstore: insert: column %s: %w", logColumns[i].name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return s.fail(ctx, "insert", err)
	}
	return nil
}

// presize grows each large String column's buffer to its final size in one allocation. The
// driver's column appends value by value, growing its buffer by doubling, and for 50k rows of
// kwargs the re-allocating and copying was about 40% of Insert's CPU; a column keeps its
// capacity across Reset, so appending one placeholder of the total length and resetting
// leaves room for every value. Columns of other types (LowCardinality on newer servers) are
// left alone.
func presize(columns []chcolumn.Interface, values []any) {
	var scratch []byte
	for i, c := range columns {
		if i >= len(values) {
			break
		}
		strs, ok := values[i].([]string)
		if _, isString := c.(*chcolumn.String); !ok || !isString {
			continue
		}
		total := 0
		for _, v := range strs {
			total += len(v)
		}
		if total < 64<<10 {
			continue
		}
		if len(scratch) < total {
			scratch = make([]byte, total)
		}
		if err := c.AppendRow(view(scratch[:total])); err == nil {
			c.Reset()
		}
	}
}

// encodeColumns turns rows into one slice per column of logColumns, in order.
func encodeColumns(rows []logstore.Row) []any {
	n := len(rows)
	var (
		id, kind, fullName, sender, eventType   = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		stage, requestID, nodeID, parentNodeID  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		kwargs, result, errCode, errMsg, errStk = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		host, logs, eventID                     = make([]string, n), make([]string, n), make([]string, n)
		status                                  = make([]int8, n)
		attempt, seq                            = make([]uint32, n), make([]uint32, n)
		createdAt                               = make([]time.Time, n)
		createdMS                               = make([]uint16, n)
		version                                 = make([]uint64, n)
		start, end, duration                    = make([]int64, n), make([]int64, n), make([]int64, n)
		hasError                                = make([]uint8, n)
	)
	for i := range rows {
		r := &rows[i]
		id[i], kind[i], fullName[i], sender[i], eventType[i] = r.ID, r.Kind, r.FullName, r.Sender, r.EventType
		status[i] = statusCode[r.Status]
		stage[i], requestID[i], nodeID[i], parentNodeID[i] = r.Stage, r.RequestID, r.NodeID, r.ParentNodeID
		attempt[i] = uint32(r.Attempt)
		ms := r.CreatedAt.UnixMilli()
		createdAt[i] = time.Unix(floorDiv(ms, 1000), 0)
		createdMS[i] = uint16(ms - floorDiv(ms, 1000)*1000)
		version[i] = versionOf(r.RecordedAt.UnixMilli(), r.Seq)
		seq[i] = r.Seq
		start[i], end[i], duration[i] = timeMS(r.StartTime), timeMS(r.EndTime), r.Duration
		kwargs[i], result[i], logs[i] = compactJSON(r.Kwargs), view(r.Result), view(r.Logs)
		if r.Error != nil {
			hasError[i] = 1
			errCode[i], errMsg[i], errStk[i] = r.Error.Code, r.Error.Message, r.Error.Stack
		}
		host[i], eventID[i] = r.Host, r.EventID
	}
	return []any{id, kind, fullName, sender, eventType, status, stage, requestID, nodeID, parentNodeID,
		attempt, createdAt, createdMS, version, seq, start, end, duration, kwargs, result,
		hasError, errCode, errMsg, errStk, host, logs, eventID}
}

// Bounds of what the columns can hold: created_at is a DateTime (UInt32 seconds), and version
// keeps RecordedAt in its top 43 bits.
var (
	minCreated  = time.Unix(0, 0)
	maxCreated  = time.Unix(math.MaxUint32, 0)
	maxRecorded = time.UnixMilli(1<<(64-seqBits) - 1)
)

// seqBits is how many low bits of version hold Seq: up to 2,097,151 states of a node recorded
// in one millisecond order exactly; beyond that they tie (the seq column keeps the exact value).
const seqBits = 21

// versionOf orders the states of a node: RecordedAt in milliseconds, then Seq.
func versionOf(recordedMS int64, seq uint32) uint64 {
	return uint64(recordedMS)<<seqBits | uint64(min(seq, 1<<seqBits-1))
}

// recordedOf is RecordedAt in milliseconds from a version.
func recordedOf(version uint64) int64 { return int64(version >> seqBits) }

// storable checks what Validate cannot know: the row fits ClickHouse's columns, so nothing is
// silently wrapped around.
func storable(r *logstore.Row) error {
	switch {
	case r.CreatedAt.Before(minCreated) || !r.CreatedAt.Before(maxCreated):
		return fmt.Errorf("%w: row %s: createdAt %s is outside 1970-01-01 to 2106-02-07, what ClickHouse's DateTime holds", logstore.ErrInvalidRow, r.ID, r.CreatedAt.UTC().Format(time.RFC3339))
	case r.RecordedAt.Before(minCreated) || r.RecordedAt.After(maxRecorded):
		return fmt.Errorf("%w: row %s: recordedAt %s is outside 1970 to 2248", logstore.ErrInvalidRow, r.ID, r.RecordedAt.UTC().Format(time.RFC3339))
	case int64(r.Attempt) > math.MaxUint32:
		return fmt.Errorf("%w: row %s: attempt %d is too large", logstore.ErrInvalidRow, r.ID, r.Attempt)
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// timeMS is t in epoch milliseconds, 0 for the zero time.
func timeMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// compactJSON drops insignificant whitespace: ClickHouse 18.16's visitParamExtract functions,
// which the kwargs filters use there, only read "name":value written without spaces. Most
// kwargs come compact already, so it only looks for whitespace between tokens, skipping string
// contents with bytes.IndexByte (most of the text is inside strings), and rewrites the few
// that have some. Text that is not JSON is stored as it came.
func compactJSON(raw json.RawMessage) string {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			end, ok := stringEnd(raw, i+1)
			if !ok {
				return view(raw)
			}
			i = end
		case ' ', '\t', '\r', '\n':
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				return view(raw)
			}
			return b.String()
		}
	}
	return view(raw)
}

// stringEnd is the index of the quote closing the JSON string whose contents start at i.
func stringEnd(raw []byte, i int) (int, bool) {
	for {
		j := bytes.IndexByte(raw[i:], '"')
		if j < 0 {
			return 0, false
		}
		q := i + j
		backslashes := 0
		for k := q - 1; k >= i && raw[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q, true
		}
		i = q + 1
	}
}

// view is b as a string without copying it. The driver copies every value into its column
// buffer during Insert, so the view never outlives the caller's slice; copying kwargs, result
// and logs here as well cost about a tenth of Insert's own CPU.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
