package writer

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/embedded/appendlog"
	"github.com/trellis-run/trellis/logstore"
)

// decodeAll reads back every record of buf, as the flusher does.
func decodeAll(t *testing.T, buf []byte) []logstore.Row {
	t.Helper()
	var rows []logstore.Row
	for len(buf) > 0 {
		payload, n, err := appendlog.ParseFrame(buf)
		require.NoError(t, err)
		_, err = checkPayload(payload)
		require.NoError(t, err)
		rows, err = decodeRows(rows, payload)
		require.NoError(t, err)
		buf = buf[n:]
	}
	return rows
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	local := time.FixedZone("UTC+8", 8*3600)
	rows := []logstore.Row{
		testRow(1),
		testRow(5), // with an error
		{ // the least a row may hold: zero times, nil JSON, no error
			ID: "min", Kind: "", FullName: "x", Status: logstore.StatusWaiting, RequestID: "r", NodeID: "n",
			CreatedAt: time.Unix(0, 1).UTC(), RecordedAt: time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC),
		},
		{ // empty (not nil) JSON, a non-UTC zone, extreme numbers
			ID: "max", FullName: "é中文", Status: logstore.StatusRunning, RequestID: "r", NodeID: "n",
			CreatedAt: time.Date(2100, 1, 1, 0, 0, 0, 0, local), RecordedAt: time.Date(2100, 1, 1, 0, 0, 0, 1, local),
			Kwargs: json.RawMessage{}, Result: json.RawMessage(`null`), Logs: json.RawMessage{},
			Seq: 1<<32 - 1, Attempt: 1 << 40, Duration: -1 << 62,
			Error: &logstore.RowError{},
		},
	}
	got := decodeAll(t, encodeRecords(nil, rows, recordRows))
	require.Len(t, got, len(rows))
	for i := range rows {
		want := rows[i]
		// Times come back in UTC, the same instants.
		for _, p := range []*time.Time{&want.CreatedAt, &want.RecordedAt, &want.StartTime, &want.EndTime} {
			*p = p.UTC()
		}
		require.Equal(t, want, got[i], "row %d", i)
	}
	require.Nil(t, got[2].Kwargs)
	require.NotNil(t, got[3].Kwargs)
	require.True(t, got[2].StartTime.IsZero())
}

func TestEncodeRecordsSplitsLargeWrites(t *testing.T) {
	t.Parallel()
	rows := testRows(0, 2*recordRows+7)
	buf := encodeRecords(nil, rows, recordRows)
	var counts []int
	for b := buf; len(b) > 0; {
		counts = append(counts, recordRowsOf(t, b))
		b = b[appendlog.FrameLen(b):]
	}
	require.Equal(t, []int{recordRows, recordRows, 7}, counts)
	counts = nil
	for b := encodeRecords(nil, rows[:25], 10); len(b) > 0; {
		counts = append(counts, recordRowsOf(t, b))
		b = b[appendlog.FrameLen(b):]
	}
	require.Equal(t, []int{10, 10, 5}, counts, "records never hold more rows than a batch")
	require.Equal(t, rows[len(rows)-1].ID, decodeAll(t, buf)[len(rows)-1].ID)

	big := testRow(1)
	big.Kwargs = json.RawMessage(`"` + string(bytesOf('a', recordBytes)) + `"`)
	buf = encodeRecords(nil, []logstore.Row{big, big, big}, recordRows)
	n := 0
	for b := buf; len(b) > 0; n++ {
		b = b[appendlog.FrameLen(b):]
	}
	require.Equal(t, 3, n, "a record over recordBytes holds one row")
}

// recordRowsOf checks the record b starts with and returns its row count.
func recordRowsOf(t *testing.T, b []byte) int {
	t.Helper()
	payload, _, err := appendlog.ParseFrame(b)
	require.NoError(t, err)
	n, err := checkPayload(payload)
	require.NoError(t, err)
	return n
}

func bytesOf(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestDamageIsCaught(t *testing.T) {
	t.Parallel()
	rec := encodeRecords(nil, testRows(0, 3), recordRows)
	payload := rec[appendlog.HeaderBytes:]
	for i := 0; i < len(payload); i += 7 {
		payload[i] ^= 0x10
		_, _, err := appendlog.ParseFrame(rec)
		require.ErrorIs(t, err, appendlog.ErrCorrupt, "flipped byte %d", i)
		payload[i] ^= 0x10
	}
	require.Equal(t, 3, recordRowsOf(t, rec))
	// What a checksum cannot catch, a record written by a bug or a future format, checkPayload
	// does.
	for _, bad := range [][]byte{{}, {99, 1, 0, 0, 0}, {codecVersion, 0, 0, 0, 0}, {codecVersion, 200, 0, 0, 0, 1, 2}} {
		_, err := checkPayload(bad)
		require.ErrorIs(t, err, errCorrupt, "%v", bad)
	}
}

// FuzzDecodeRows: whatever bytes a damaged disk returns past a matching checksum, decoding
// fails cleanly instead of panicking or allocating without bound.
func FuzzDecodeRows(f *testing.F) {
	rec := encodeRecords(nil, testRows(0, 2), recordRows)
	f.Add(rec[appendlog.HeaderBytes:])
	f.Add([]byte{codecVersion, 1, 0, 0, 0, 0})
	f.Add([]byte{codecVersion, 255, 255, 255, 255, 1, 2, 3})
	f.Fuzz(func(t *testing.T, payload []byte) {
		rows, err := decodeRows(nil, payload)
		if err != nil {
			require.Empty(t, rows)
		}
	})
}
