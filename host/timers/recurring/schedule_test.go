package recurring_test

import (
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has installed

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers/recurring"
)

func TestValidateCron(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{
		"* * * * *", "*/15 9-17 * * MON-FRI", "0 0 1 1 *", "0 0 29 2 *", "30 2 * * 0",
		"*/10 * * * * *", "0 30 9 * * 1-5", "  5  4 * * *  ",
	} {
		require.NoError(t, recurring.ValidateCron(expr), expr)
	}
	for _, tc := range []struct{ expr, want string }{
		{"", "empty"},
		{"* * * *", "has 4 fields"},
		{"* * * * * * *", "has 7 fields"},
		{"61 * * * *", `minute field "61"`},
		{"0 25 * * *", `hour field "25"`},
		{"* * * * 7", "Sunday is 0"},
		{"* * 0 * *", `day-of-month field "0"`},
		{"* * * 13 *", `month field "13"`},
		{"60 * * * * *", `second field "60"`},
		{"a * * * *", `minute field "a"`},
		{"@hourly", "descriptors"},
		{"CRON_TZ=Asia/Shanghai * * * * *", "timezone field"},
		{"0 0 30 2 *", "no date that exists"},
	} {
		err := recurring.ValidateCron(tc.expr)
		require.ErrorIs(t, err, recurring.ErrInvalidCron, tc.expr)
		require.Contains(t, err.Error(), tc.want, tc.expr)
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNextTick(t *testing.T) {
	t.Parallel()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	for _, tc := range []struct {
		name     string
		cron     string
		interval time.Duration
		loc      *time.Location
		from     string
		want     []string
	}{
		{"5 fields", "*/15 * * * *", 0, nil, "2030-01-01 10:07:00", []string{"2030-01-01 10:15:00", "2030-01-01 10:30:00"}},
		{"exact time is not its own next", "0 * * * *", 0, nil, "2030-01-01 10:00:00", []string{"2030-01-01 11:00:00"}},
		{"6 fields, second first", "*/10 * * * * *", 0, nil, "2030-01-01 10:00:03", []string{"2030-01-01 10:00:10", "2030-01-01 10:00:20"}},
		{"timezone", "0 9 * * *", 0, shanghai, "2030-01-01 00:30:00", []string{"2030-01-01 01:00:00", "2030-01-02 01:00:00"}},
		{"weekdays in timezone", "0 9 * * MON", 0, shanghai, "2030-01-01 00:00:00", []string{"2030-01-07 01:00:00"}},
		{"interval aligned to the epoch", "", 10 * time.Minute, nil, "2030-01-01 10:07:33", []string{"2030-01-01 10:10:00", "2030-01-01 10:20:00"}},
		{"interval ignores the location", "", time.Hour, shanghai, "2030-01-01 10:07:33", []string{"2030-01-01 11:00:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := utc(tc.from)
			for _, w := range tc.want {
				next, err := recurring.NextTick(tc.cron, tc.interval, tc.loc, at)
				require.NoError(t, err)
				require.Equal(t, utc(w), next)
				require.Equal(t, time.UTC, next.Location(), "ticks are in UTC")
				at = next
			}
		})
	}
}

// An interval that does not divide a day still ticks at the same instants on every host,
// whenever it started: multiples of the interval since the Unix epoch.
func TestIntervalAlignment(t *testing.T) {
	t.Parallel()
	const d = 7 * time.Second
	a, err := recurring.NextTick("", d, nil, utc("2030-01-01 10:00:00"))
	require.NoError(t, err)
	b, err := recurring.NextTick("", d, nil, utc("2030-01-01 10:00:00").Add(3*time.Second+17*time.Millisecond))
	require.NoError(t, err)
	require.Zero(t, a.UnixNano()%int64(d))
	require.Zero(t, b.UnixNano()%int64(d))
	require.True(t, b.Sub(a) < d && !b.Before(a))
}

// Clocks falling back repeat 01:30 in New York; a daily 01:30 runs once that day. Springing
// forward skips 02:30; that day has no 02:30 tick (as cron does).
func TestDaylightSaving(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	// 2030-11-03: fall back at 02:00 EDT → 01:00 EST.
	first, err := recurring.NextTick("30 1 * * *", 0, ny, utc("2030-11-03 04:00:00"))
	require.NoError(t, err)
	require.Equal(t, utc("2030-11-03 05:30:00"), first, "01:30 EDT")
	second, err := recurring.NextTick("30 1 * * *", 0, ny, first)
	require.NoError(t, err)
	require.Equal(t, utc("2030-11-04 06:30:00"), second, "the repeated 01:30 EST is skipped")
	inside, err := recurring.NextTick("30 1 * * *", 0, ny, utc("2030-11-03 05:45:00")) // 01:45 EDT
	require.NoError(t, err)
	require.Equal(t, second, inside, "a host starting inside the repeated hour skips it too")
	perMinute, err := recurring.NextTick("59 1 * * *", 0, ny, utc("2030-11-03 05:59:00")) // 01:59 EDT
	require.NoError(t, err)
	require.Equal(t, utc("2030-11-04 06:59:00"), perMinute)
	missed, ok, err := recurring.LatestTick("30 1 * * *", 0, ny, utc("2030-11-03 05:30:00"), utc("2030-11-03 06:45:00"))
	require.NoError(t, err)
	require.False(t, ok, "the repeated 01:30 is no missed tick either, got %s", missed)
	// 2030-03-10: spring forward at 02:00 EST → 03:00 EDT.
	next, err := recurring.NextTick("30 2 * * *", 0, ny, utc("2030-03-10 06:00:00"))
	require.NoError(t, err)
	require.Equal(t, utc("2030-03-11 06:30:00"), next)
}

func TestLatestTick(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		cron        string
		interval    time.Duration
		after, upTo string
		want        string // "" = none
	}{
		{"one missed", "* * * * *", 0, "2030-01-01 10:00:00", "2030-01-01 10:01:30", "2030-01-01 10:01:00"},
		{"many missed: the latest", "* * * * *", 0, "2030-01-01 10:00:00", "2030-01-01 13:47:59", "2030-01-01 13:47:00"},
		{"upTo itself counts", "* * * * *", 0, "2030-01-01 10:00:00", "2030-01-01 10:05:00", "2030-01-01 10:05:00"},
		{"after itself does not", "* * * * *", 0, "2030-01-01 10:00:00", "2030-01-01 10:00:59", ""},
		{"nothing in range", "0 0 * * *", 0, "2030-01-01 00:00:00", "2030-01-01 23:59:59", ""},
		{"weeks of per-second ticks", "* * * * * *", 0, "2030-01-01 00:00:00", "2030-02-15 12:34:56", "2030-02-15 12:34:56"},
		{"yearly over years", "0 0 1 1 *", 0, "2030-01-01 00:00:00", "2034-06-01 00:00:00", "2034-01-01 00:00:00"},
		{"interval", "", 10 * time.Minute, "2030-01-01 10:00:00", "2030-01-03 10:25:00", "2030-01-03 10:20:00"},
		{"empty range", "* * * * *", 0, "2030-01-01 10:00:00", "2030-01-01 09:00:00", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, ok, err := recurring.LatestTick(tc.cron, tc.interval, nil, utc(tc.after), utc(tc.upTo))
			require.NoError(t, err)
			if tc.want == "" {
				require.False(t, ok, "got %s", at)
				return
			}
			require.True(t, ok)
			require.Equal(t, utc(tc.want), at)
		})
	}
}
