package localtimers

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/timers/timerstest"
)

// paths gives each test its own database file; every open within the test opens that file.
var paths sync.Map // *testing.T -> string

func open(t *testing.T) timers.Store {
	t.Helper()
	p, _ := paths.LoadOrStore(t, filepath.Join(t.TempDir(), FileName))
	s, err := Open(p.(string))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	timerstest.Run(t, open)
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := Open("")
	require.ErrorIs(t, err, timers.ErrInvalid)
	_, err = Open(filepath.Join(t.TempDir(), "a?b.db"))
	require.ErrorIs(t, err, timers.ErrInvalid)

	// A file that is not a database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	require.NoError(t, os.WriteFile(junk, []byte("this is not an SQLite database, not at all....................................................................."), 0o644))
	_, err = Open(junk)
	require.ErrorIs(t, err, timers.ErrUnavailable)

	// A directory where the file should be created cannot be made.
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	_, err = Open(filepath.Join(blocker, "sub", FileName))
	require.ErrorIs(t, err, timers.ErrUnavailable)
}

// A database written by a newer build is refused, not misread.
func TestSchemaVersion(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), FileName)
	s, err := Open(p)
	require.NoError(t, err)
	_, err = s.write.Exec("PRAGMA user_version = 99")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = Open(p)
	require.ErrorIs(t, err, ErrSchemaVersion)
	require.ErrorIs(t, err, timers.ErrUnavailable)
}

// A file of version 1 (before task retries) opens: first_started_at, paused_with and the
// requests table are added, and its tasks read and run as before.
func TestUpgradeFromVersion1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), FileName)
	s, err := Open(p)
	require.NoError(t, err)
	c, _, err := s.Create(ctx, timers.Task{FullName: "tasks.Old", StartTime: time.Now().Add(-time.Second)})
	require.NoError(t, err)
	_, err = s.write.Exec("ALTER TABLE tasks DROP COLUMN first_started_at")
	require.NoError(t, err)
	_, err = s.write.Exec("ALTER TABLE tasks DROP COLUMN paused_with")
	require.NoError(t, err)
	_, err = s.write.Exec("DROP TABLE requests")
	require.NoError(t, err)
	_, err = s.write.Exec("PRAGMA user_version = 1")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s2, err := Open(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	s3, err := Open(p) // a second handle finds the column there
	require.NoError(t, err)
	require.NoError(t, s3.Close())
	var version int
	require.NoError(t, s2.write.QueryRow("PRAGMA user_version").Scan(&version))
	require.Equal(t, schemaVersion, version)
	got, err := s2.Get(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, "tasks.Old", got.FullName)
	require.True(t, got.FirstStartedAt.IsZero())
	ts, err := s2.Claim(ctx, time.Now(), "h", time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.False(t, ts[0].FirstStartedAt.IsZero())
}

// The indexes the package doc promises are the ones the queries use.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s := open(t).(*Store)
	for q, index := range map[string]string{
		`SELECT seq FROM tasks WHERE status = 'waiting' AND start_time <= 1 ORDER BY start_time LIMIT 5`:                          "tasks_due",
		`SELECT seq FROM tasks INDEXED BY tasks_lease WHERE status = 'running' AND lease_until <= 1 ORDER BY lease_until LIMIT 5`: "tasks_lease",
		`SELECT id FROM tasks WHERE key = 'k' AND status = 'waiting' AND key <> ''`:                                               "tasks_key",
		`SELECT id FROM tasks WHERE full_name = 'x' ORDER BY seq DESC LIMIT 20`:                                                   "tasks_name_seq",
		`SELECT id FROM tasks WHERE status = 'fail' ORDER BY seq DESC LIMIT 20`:                                                   "tasks_status_seq",
	} {
		rows, err := s.read.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q)
		require.NoError(t, err)
		var plan string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
			plan += detail + "\n"
		}
		require.NoError(t, rows.Close())
		require.Contains(t, plan, index, "query %s", q)
	}
}

// Force-ends made through one handle reach the ForcedEnds of every handle on the file, and a
// channel ends when its store closes.
func TestForcedEndsAcrossHandlesAndClose(t *testing.T) {
	t.Parallel()
	s1, s2 := open(t), open(t)
	ctx := context.Background()
	ch, err := s2.ForcedEnds(ctx)
	require.NoError(t, err)
	c, _, err := s1.Create(ctx, timers.Task{FullName: "tasks.X", StartTime: time.Now().Add(-time.Second)})
	require.NoError(t, err)
	claimed, err := s1.Claim(ctx, time.Now(), "h", time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	_, err = s1.ForcedEnd(ctx, c.ID)
	require.NoError(t, err)
	select {
	case id := <-ch:
		require.Equal(t, c.ID, id)
	case <-time.After(time.Second):
		t.Fatal("no force-end reported")
	}
	require.NoError(t, s2.Close())
	select {
	case _, ok := <-ch:
		require.False(t, ok)
	case <-time.After(time.Second):
		t.Fatal("the channel did not close with the store")
	}
}
