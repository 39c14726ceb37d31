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

// The rollup and the raw log give the same figures on generated data, including after late
// states change hours already rolled up, after hours are written again (duplicates), and
// after retention.
func TestRollupMatchesRaw(t *testing.T) {
	dsn := serverDSN(t)
	conn := rawConn(t, dsn)
	db := testDatabase(t, conn)
	rolled := open(t, dsn, chstore.Options{Database: db, RollupDelay: -1})
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
	compare := func(msg string) {
		t.Helper()
		for _, q := range []logstore.SummaryQuery{
			{Start: start, End: start.AddDate(0, 0, 3)},
			{Start: start.Add(90 * time.Minute), End: start.Add(29*time.Hour + 17*time.Second + 3*time.Millisecond)},
			{Start: start.Add(time.Hour), End: start.Add(5 * time.Hour), FullName: benchNames[3]},
			{Start: start.Add(-5 * time.Hour), End: start.Add(3 * time.Hour)},
		} {
			want, err := raw.Summary(ctx, q)
			require.NoError(t, err)
			got, err := rolled.Summary(ctx, q)
			require.NoError(t, err)
			if msg != "after retention" {
				require.NotEmpty(t, want)
			}
			require.Equal(t, want, got, "%s: summary %v", msg, q)
		}
		for _, q := range []logstore.TimeSeriesQuery{
			{Start: start, End: start.AddDate(0, 0, 3), Bucket: time.Hour},
			{Start: start.Add(30 * time.Minute), End: start.AddDate(0, 0, 2), Bucket: 3 * time.Hour},
			{Start: start.Add(-24 * time.Hour), End: start.AddDate(0, 0, 4), Bucket: 24 * time.Hour, FullName: benchNames[7]},
			{Start: start.Add(time.Hour), End: start.Add(3 * time.Hour), Bucket: 15 * time.Minute},
		} {
			want, err := raw.TimeSeries(ctx, q)
			require.NoError(t, err)
			got, err := rolled.TimeSeries(ctx, q)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s: time series %v", msg, q)
		}
	}
	compare("before late states")
	require.NoError(t, rolled.Insert(ctx, late))
	compare("after late states")
	require.NoError(t, rolled.Insert(ctx, all[:5000])) // a replayed batch: duplicates
	compare("after duplicates")
	// Builds exist, and a retention drop takes the rollup's days too.
	var builds uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT uniqExact(build) FROM "+db+".exec_log_rollup").Scan(&builds))
	require.Greater(t, builds, uint64(1))
	require.NoError(t, rolled.DropBefore(ctx, start.AddDate(0, 0, 1)))
	var left uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".exec_log_rollup WHERE hour < toDateTime('2031-03-02 00:00:00', 'UTC')").Scan(&left))
	require.Zero(t, left)
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".exec_log_hours WHERE hour < toDateTime('2031-03-02 00:00:00', 'UTC')").Scan(&left))
	require.Zero(t, left)
	compare("after retention")
}
