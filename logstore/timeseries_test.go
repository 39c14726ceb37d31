package logstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTimeSeriesSpan(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	for _, tc := range []struct {
		start, end string
		bucket     time.Duration
		from, to   string
		n          int
	}{
		{"2024-03-05T00:56:53Z", "2024-03-05T06:56:53Z", time.Hour, "2024-03-05T00:00:00Z", "2024-03-05T07:00:00Z", 7},
		{"2024-03-05T00:00:00Z", "2024-03-05T06:00:00Z", time.Hour, "2024-03-05T00:00:00Z", "2024-03-05T06:00:00Z", 6},
		{"2024-03-05T00:00:00.0004Z", "2024-03-05T00:01:00.0004Z", time.Minute, "2024-03-05T00:00:00Z", "2024-03-05T00:02:00Z", 2},
		{"2024-03-05T08:00:00+08:00", "2024-03-06T08:00:00+08:00", 24 * time.Hour, "2024-03-05T00:00:00Z", "2024-03-06T00:00:00Z", 1},
		{"2024-03-05T10:00:00+08:00", "2024-03-06T08:00:00.001+08:00", 24 * time.Hour, "2024-03-05T00:00:00Z", "2024-03-07T00:00:00Z", 2},
		{"2024-03-05T00:07:00Z", "2024-03-05T00:52:00Z", 15 * time.Minute, "2024-03-05T00:00:00Z", "2024-03-05T01:00:00Z", 4},
		{"1969-12-31T23:59:30Z", "1970-01-01T00:00:30Z", time.Minute, "1969-12-31T23:59:00Z", "1970-01-01T00:01:00Z", 2},
	} {
		q := TimeSeriesQuery{Start: at(tc.start), End: at(tc.end), Bucket: tc.bucket}
		require.NoError(t, q.Validate())
		from, to, n := q.Span()
		name := tc.start + " " + tc.end + " " + tc.bucket.String()
		require.Equal(t, at(tc.from), from, name)
		require.Equal(t, at(tc.to), to, name)
		require.Equal(t, tc.n, n, name)
		require.Equal(t, time.UTC, from.Location(), name)
	}
}
