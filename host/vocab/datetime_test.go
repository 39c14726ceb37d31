package vocab

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDatetime(t *testing.T) {
	t.Parallel()
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	want := time.Date(2024, 5, 1, 8, 30, 0, 0, sh)
	for _, in := range []any{
		"2024-05-01 08:30:00", " 2024-05-01 08:30:00 ", "2024-05-01T08:30:00", "2024-05-01 08:30",
		"2024-05-01T00:30:00Z", "2024-05-01T08:30:00+08:00", "2024-05-01T00:30:00.000Z",
		want.UnixMilli(), float64(want.UnixMilli()), int(want.UnixMilli()), json.Number("1714523400000"),
		want.UTC(), &want,
	} {
		got, err := ParseDatetime(in, sh)
		require.NoError(t, err, "%#v", in)
		require.True(t, want.Equal(got), "%#v: got %s", in, got)
	}
	day, err := ParseDatetime("2024-05-01", sh)
	require.NoError(t, err)
	require.True(t, day.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, sh)))

	utc, err := ParseDatetime("2024-05-01 08:30:00", nil)
	require.NoError(t, err)
	require.True(t, utc.Equal(time.Date(2024, 5, 1, 8, 30, 0, 0, time.UTC)))

	for _, bad := range []any{nil, "", "yesterday", "2024-13-01 00:00:00", true, map[string]any{}} {
		_, err := ParseDatetime(bad, sh)
		require.ErrorIs(t, err, ErrInvalidDatetime, "%#v", bad)
		require.Contains(t, err.Error(), "YYYY-MM-DD HH:mm:ss")
	}
}

func TestFormatDatetime(t *testing.T) {
	t.Parallel()
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	at := time.Date(2024, 5, 1, 0, 30, 5, 999, time.UTC)
	require.Equal(t, "2024-05-01 08:30:05", FormatDatetime(at, sh))
	require.Equal(t, "2024-05-01 00:30:05", FormatDatetime(at, nil))
	back, err := ParseDatetime(FormatDatetime(at, sh), sh)
	require.NoError(t, err)
	require.True(t, back.Equal(at.Truncate(time.Second)))
}
