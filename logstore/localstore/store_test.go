package localstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/logstore"
	"github.com/trellis-run/trellis/logstore/localstore"
	"github.com/trellis-run/trellis/logstore/logstoretest"
)

func open(t *testing.T, dir string) *localstore.Store {
	t.Helper()
	st, err := localstore.Open(dir, localstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	// A database per subtest: a host opens one Store per data directory.
	logstoretest.Run(t, func(t *testing.T) logstore.Store { return open(t, t.TempDir()) }, logstoretest.Features{KwargsTopLevelOnly: true})
}

func row(id, node, req string, status string, created time.Time, after time.Duration) logstore.Row {
	return logstore.Row{
		ID: id, Kind: logstore.KindEvent, FullName: "events.Persist", Status: status,
		RequestID: req, NodeID: node, CreatedAt: created, RecordedAt: created.Add(after),
		Kwargs: json.RawMessage(`{"userId":1}`),
	}
}

// Rows survive Close and Open, and a retried batch after reopening still adds nothing.
func TestReopenKeepsRows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	created := time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC)
	batch := []logstore.Row{
		row("a#0", "a", "r", logstore.StatusWaiting, created, 0),
		row("a#1", "a", "r", logstore.StatusSuccess, created, time.Second),
		row("b#0", "b", "r", logstore.StatusFail, created.Add(time.Minute), 0),
	}
	st, err := localstore.Open(dir, localstore.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Insert(ctx, batch))
	require.NoError(t, st.Close())

	st = open(t, dir)
	require.NoError(t, st.Insert(ctx, batch))
	rows, err := st.ByRequest(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, []string{"a#1", "b#0"}, []string{rows[0].ID, rows[1].ID})
	att, err := st.Attempts(ctx, "a")
	require.NoError(t, err)
	require.Len(t, att, 2)
	p, err := st.Query(ctx, logstore.Query{FullName: "events.Persist", Status: logstore.StatusSuccess})
	require.NoError(t, err)
	require.EqualValues(t, 1, p.TotalCount)
}

// Two Stores on one directory (two processes on one data directory) see each other's rows.
func TestTwoStoresOneDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	a, b := open(t, dir), open(t, dir)
	created := time.Date(2030, 5, 2, 10, 0, 0, 0, time.UTC)
	require.NoError(t, a.Insert(ctx, []logstore.Row{row("x#0", "x", "r2", logstore.StatusRunning, created, 0)}))
	require.NoError(t, b.Insert(ctx, []logstore.Row{row("x#1", "x", "r2", logstore.StatusSuccess, created, time.Second)}))
	for _, st := range []*localstore.Store{a, b} {
		rows, err := st.ByRequest(ctx, "r2")
		require.NoError(t, err)
		require.Len(t, rows, 1)
		require.Equal(t, "x#1", rows[0].ID)
	}
}

// A closed store answers every call with ErrClosed (and logstore.ErrUnavailable), never a panic.
func TestClosedStore(t *testing.T) {
	t.Parallel()
	st, err := localstore.Open(t.TempDir(), localstore.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	ctx := t.Context()
	day := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_, qErr := st.Query(ctx, logstore.Query{})
	_, rErr := st.ByRequest(ctx, "r")
	_, nErr := st.ByNode(ctx, "r", "n")
	_, aErr := st.Attempts(ctx, "n")
	_, sErr := st.Summary(ctx, logstore.SummaryQuery{Start: day, End: day.Add(time.Hour)})
	_, tErr := st.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: day, End: day.Add(time.Hour), Bucket: time.Minute})
	for name, err := range map[string]error{
		"Insert":     st.Insert(ctx, []logstore.Row{row("c#0", "c", "r", logstore.StatusWaiting, day, 0)}),
		"Query":      qErr,
		"ByRequest":  rErr,
		"ByNode":     nErr,
		"Attempts":   aErr,
		"Summary":    sErr,
		"TimeSeries": tErr,
		"DropBefore": st.DropBefore(ctx, day),
	} {
		require.ErrorIs(t, err, localstore.ErrClosed, name)
		require.ErrorIs(t, err, logstore.ErrUnavailable, name)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := localstore.Open("", localstore.Options{})
	require.ErrorIs(t, err, localstore.ErrInvalidOptions)

	_, err = localstore.Open(t.TempDir(), localstore.Options{ReadConns: -1})
	require.ErrorIs(t, err, localstore.ErrInvalidOptions)
	require.ErrorContains(t, err, "ReadConns")

	// A file where the directory should be.
	file := filepath.Join(t.TempDir(), "logs")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	_, err = localstore.Open(file, localstore.Options{})
	require.ErrorIs(t, err, logstore.ErrUnavailable)

	// Something that is not a database.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, localstore.FileName), []byte("not a database, just text that is long enough to look like a header"), 0o644))
	_, err = localstore.Open(dir, localstore.Options{})
	require.ErrorIs(t, err, logstore.ErrUnavailable)
}

// A database written by a newer build is refused rather than misread.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := localstore.Open(dir, localstore.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	db, err := sql.Open("sqlite", filepath.Join(dir, localstore.FileName))
	require.NoError(t, err)
	_, err = db.Exec("PRAGMA user_version = 99")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = localstore.Open(dir, localstore.Options{})
	require.ErrorIs(t, err, localstore.ErrSchemaVersion)
}

// A database of schema version 1 (before event ids) is migrated on open and keeps its rows.
func TestVersion1SchemaMigrated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	created := time.Date(2030, 5, 4, 10, 0, 0, 0, time.UTC)
	st, err := localstore.Open(dir, localstore.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Insert(t.Context(), []logstore.Row{row("m#0", "m", "rm", logstore.StatusSuccess, created, 0)}))
	require.NoError(t, st.Close())
	db, err := sql.Open("sqlite", filepath.Join(dir, localstore.FileName))
	require.NoError(t, err)
	_, err = db.Exec("ALTER TABLE states DROP COLUMN event_id; PRAGMA user_version = 1")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	st, err = localstore.Open(dir, localstore.Options{})
	require.NoError(t, err)
	defer st.Close()
	r := row("m#1", "m2", "rm", logstore.StatusSuccess, created, 0)
	r.EventID = "evt-m2"
	require.NoError(t, st.Insert(t.Context(), []logstore.Row{r}))
	rows, err := st.ByRequest(t.Context(), "rm")
	require.NoError(t, err)
	require.Len(t, rows, 2, "the old row survived the migration")
	ids := map[string]string{}
	for _, got := range rows {
		ids[got.NodeID] = got.EventID
	}
	require.Equal(t, map[string]string{"m": "", "m2": "evt-m2"}, ids)
}

// Kwargs that are not JSON are stored as given and make kwargs filters skip the row, not fail.
func TestKwargsNotJSON(t *testing.T) {
	t.Parallel()
	st := open(t, t.TempDir())
	ctx := t.Context()
	created := time.Date(2030, 5, 3, 10, 0, 0, 0, time.UTC)
	bad := row("k#0", "k", "rk", logstore.StatusSuccess, created, 0)
	bad.Kwargs = json.RawMessage(`{"userId":1`)
	good := row("g#0", "g", "rk", logstore.StatusSuccess, created, 0)
	require.NoError(t, st.Insert(ctx, []logstore.Row{bad, good}))
	p, err := st.Query(ctx, logstore.Query{FullName: "events.Persist", Kwargs: map[string]string{"userId": "1"}})
	require.NoError(t, err)
	require.Equal(t, []string{"g#0"}, []string{p.RowDatas[0].ID})
	require.EqualValues(t, 1, p.TotalCount)
	rows, err := st.ByRequest(ctx, "rk")
	require.NoError(t, err)
	require.Equal(t, `{"userId":1`, string(rows[1].Kwargs))
}

// A cancelled context fails the insert and stores nothing.
func TestInsertCancelled(t *testing.T) {
	t.Parallel()
	st := open(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	created := time.Date(2030, 5, 4, 10, 0, 0, 0, time.UTC)
	err := st.Insert(ctx, []logstore.Row{row("z#0", "z", "rz", logstore.StatusSuccess, created, 0)})
	require.ErrorIs(t, err, context.Canceled)
	rows, err := st.ByRequest(t.Context(), "rz")
	require.NoError(t, err)
	require.Empty(t, rows)
}
