package chstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/chstore"
	"github.com/trellis-run/trellis/logstore/logstoretest"
)

// The conformance suite with the analytics rollup used at once (RollupDelay < 0): every
// Summary and TimeSeries case of two hours or more reads whole hours from the rollup, building
// them on first use and rebuilding them when a later insert changes an hour.
func TestConformanceRollup(t *testing.T) {
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	open(t, dsn, chstore.Options{Database: db, RollupDelay: -1})
	logstoretest.Run(t, func(t *testing.T) logstore.Store {
		return open(t, dsn, chstore.Options{Database: db, RollupDelay: -1})
	}, logstoretest.Features{})
}

// The rollup and the raw log give the same figures on generated data, at every granularity
// (days, hours, minutes) and with ranges whose edges cut hours and days, including after late
// states change hours and days already rolled up, after hours are written again (duplicates),
// and after retention. A third store waits 2 s (RollupDelay) before using an hour: just after
// the late states its days that received them are read by the hour, those hours from the log.
func TestRollupMatchesRaw(t *testing.T) {
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	rolled := open(t, dsn, chstore.Options{Database: db, RollupDelay: -1})
	delayed := open(t, dsn, chstore.Options{Database: db, RollupDelay: 2 * time.Second})
	raw := open(t, dsn, chstore.Options{Database: db, NoRollup: true})
	ctx := t.Context()
	start := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
	gen := newRowGen(5, start, 3*24*time.Hour, 60_000)
	var all []logstore.Row
	for {
		rows := gen.batch(20_000)
		if len(rows) == 0 {
			break
		}
		all = append(all, rows...)
	}
	// Insert everything but the final states of every 9th node, compare (building the rollup),
	// then the held-back states (late updates to rolled-up hours), and compare again.
	var first, late []logstore.Row
	for _, r := range all {
		if (r.Status == logstore.StatusSuccess || r.Status == logstore.StatusFail) && r.Seq%9 == 2 && len(r.NodeID) > 0 && r.NodeID[0]%9 == 0 {
			late = append(late, r)
		} else {
			first = append(first, r)
		}
	}
	require.NotEmpty(t, late)
	require.NoError(t, rolled.Insert(ctx, first))
	compare := func(msg string, stores ...*chstore.Store) {
		t.Helper()
		for _, q := range []logstore.SummaryQuery{
			{Start: start, End: start.AddDate(0, 0, 3)},                                                              // whole days
			{Start: start.Add(90 * time.Minute), End: start.Add(29*time.Hour + 17*time.Second + 3*time.Millisecond)}, // hours, partial edges
			{Start: start.Add(90*time.Minute + 7*time.Millisecond), End: start.Add(53*time.Hour + 59*time.Minute)},   // a day, hours, partial edges
			{Start: start.Add(24 * time.Hour), End: start.AddDate(0, 0, 3), FullName: benchNames[11]},                // one element's days
			{Start: start.Add(time.Hour), End: start.Add(5 * time.Hour), FullName: benchNames[3]},
			{Start: start.Add(-5 * time.Hour), End: start.Add(3 * time.Hour)},
			{Start: start.AddDate(0, 0, -2), End: start.AddDate(0, 0, 4)}, // empty days around the data
		} {
			want, err := raw.Summary(ctx, q)
			require.NoError(t, err)
			if msg != "after retention" {
				require.NotEmpty(t, want)
			}
			for i, st := range stores {
				got, err := st.Summary(ctx, q)
				require.NoError(t, err)
				require.Equal(t, want, got, "%s: store %d: summary %v", msg, i, q)
			}
		}
		for _, q := range []logstore.TimeSeriesQuery{
			{Start: start, End: start.AddDate(0, 0, 3), Bucket: time.Hour},
			{Start: start.Add(30 * time.Minute), End: start.AddDate(0, 0, 2), Bucket: 3 * time.Hour},
			{Start: start.Add(-24 * time.Hour), End: start.AddDate(0, 0, 4), Bucket: 24 * time.Hour, FullName: benchNames[7]},
			{Start: start.Add(-24 * time.Hour), End: start.AddDate(0, 0, 4), Bucket: 24 * time.Hour},  // days
			{Start: start.Add(5 * time.Hour), End: start.Add(50 * time.Hour), Bucket: 24 * time.Hour}, // whole days of the span, whatever the bounds
			{Start: start.Add(time.Hour), End: start.Add(3 * time.Hour), Bucket: 15 * time.Minute},
			{Start: start.Add(10*time.Hour + 7*time.Minute + 30*time.Second), End: start.Add(44*time.Hour + 3*time.Second), Bucket: time.Minute}, // minutes, partial edges
			{Start: start.Add(-time.Hour), End: start.AddDate(0, 0, 3), Bucket: 5 * time.Minute},
			{Start: start.Add(3 * time.Hour), End: start.AddDate(0, 0, 1), Bucket: time.Minute, FullName: benchNames[5]}, // one element by minute: the log
		} {
			want, err := raw.TimeSeries(ctx, q)
			require.NoError(t, err)
			for i, st := range stores {
				got, err := st.TimeSeries(ctx, q)
				require.NoError(t, err)
				require.Equal(t, want, got, "%s: store %d: time series %v", msg, i, q)
			}
		}
	}
	compare("before late states", rolled)
	time.Sleep(2500 * time.Millisecond) // every hour settled for delayed
	compare("settled", delayed)
	require.NoError(t, rolled.Insert(ctx, late))
	compare("after late states", delayed, rolled)
	require.NoError(t, rolled.Insert(ctx, all[:5000])) // a replayed batch: duplicates
	compare("after duplicates", rolled)
	// Builds of every granularity exist, and a retention drop takes the rollup's days too.
	for _, table := range []string{"exec_log_rollup", "exec_log_rollup_days", "exec_log_rollup_minutes"} {
		var builds uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT uniqExact(build) FROM "+db+"."+table).Scan(&builds))
		require.Greater(t, builds, uint64(1), table)
	}
	require.NoError(t, rolled.DropBefore(ctx, start.AddDate(0, 0, 1)))
	for table, col := range map[string]string{"exec_log_rollup": "hour", "exec_log_hours": "hour", "exec_log_rollup_days": "day", "exec_log_rollup_minutes": "minute"} {
		var left uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+"."+table+" WHERE "+col+" < toDateTime('2031-03-02 00:00:00', 'UTC')").Scan(&left))
		require.Zero(t, left, table)
	}
	compare("after retention", rolled)
}
