package chstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
)

// version orders states as the contract does: RecordedAt, then Seq.
func TestVersionOrder(t *testing.T) {
	t.Parallel()
	ms := time.Date(2104, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	require.Less(t, versionOf(ms, 5), versionOf(ms, 6))
	require.Less(t, versionOf(ms, 1<<30), versionOf(ms+1, 0), "a later millisecond wins over any seq")
	require.Equal(t, versionOf(ms, 1<<seqBits-1), versionOf(ms, 1<<30), "seq beyond 21 bits ties")
	require.Equal(t, ms, recordedOf(versionOf(ms, 77)))
	require.Equal(t, int64(0), recordedOf(versionOf(0, 3)))
	require.Equal(t, maxRecorded.UnixMilli(), recordedOf(versionOf(maxRecorded.UnixMilli(), 1<<seqBits-1)))
}

func TestCompactJSON(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"a":1,"b":"x y"}`:                `{"a":1,"b":"x y"}`,
		"{ \"a\" : 1,\n\t\"b\": \"x y\" }": `{"a":1,"b":"x y"}`,
		`{"q":"say \"hi there\""}`:         `{"q":"say \"hi there\""}`,
		`{"q":"back\\"  , "z": 2}`:         `{"q":"back\\","z":2}`,
		`not json at all`:                  `not json at all`,
		``:                                 ``,
	} {
		require.Equal(t, want, compactJSON(json.RawMessage(in)), in)
	}
}

// Rows ClickHouse's columns cannot hold are refused, not wrapped around.
func TestStorable(t *testing.T) {
	t.Parallel()
	ok := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		created, recorded time.Time
		want              string
	}{
		"created before 1970":  {time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), ok, "createdAt"},
		"created after 2106":   {time.Date(2106, 3, 1, 0, 0, 0, 0, time.UTC), ok, "createdAt"},
		"recorded before 1970": {ok, time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), "recordedAt"},
		"recorded after 2248":  {ok, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), "recordedAt"},
	} {
		r := logstore.Row{ID: "x", CreatedAt: tc.created, RecordedAt: tc.recorded}
		err := storable(&r)
		require.ErrorIs(t, err, logstore.ErrInvalidRow, name)
		require.ErrorContains(t, err, tc.want, name)
	}
	r := logstore.Row{ID: "x", CreatedAt: time.Date(2106, 2, 7, 6, 28, 14, 0, time.UTC), RecordedAt: ok}
	require.NoError(t, storable(&r), "the last second a DateTime holds")
}

func BenchmarkCompactJSON(b *testing.B) {
	raw := json.RawMessage(`{"userId":123456,"orderId":"ORD-2030-000123456","name":"Customer 123456","email":"customer123456@example.com","amount":1234.56,"currency":"CNY","items":[{"sku":"SKU-12345","qty":2,"price":99.5},{"sku":"SKU-54321","qty":1,"price":1035.25}],"channel":"web","coupon":"SPRING-12","note":"deliver after 18:00, call \"before\" arrival"}`)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		_ = compactJSON(raw)
	}
}
