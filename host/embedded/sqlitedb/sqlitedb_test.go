package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func pragma[T any](t *testing.T, db *sql.DB, name string) T {
	t.Helper()
	var v T
	require.NoError(t, db.QueryRow("PRAGMA "+name).Scan(&v), name)
	return v
}

func openT(t *testing.T, path string, o Options) *sql.DB {
	t.Helper()
	db, err := Open(path, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestWriterDefaults(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "x.db")
	db := openT(t, path, Options{})
	require.FileExists(t, path, "the file and its directory are created")
	require.Equal(t, "wal", pragma[string](t, db, "journal_mode"))
	require.Equal(t, 1, pragma[int](t, db, "synchronous"), "NORMAL")
	require.Equal(t, 10000, pragma[int](t, db, "busy_timeout"))
	require.Equal(t, 0, pragma[int](t, db, "foreign_keys"))
	require.Equal(t, 0, pragma[int](t, db, "auto_vacuum"))
	require.Equal(t, 0, pragma[int](t, db, "query_only"))
	st := db.Stats()
	require.Equal(t, 1, st.MaxOpenConnections, "one writer")
	require.Equal(t, 1, st.Idle, "its connection is kept")
}

func TestWriterOptions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.db")
	db := openT(t, path, Options{
		SyncFull: true, BusyTimeout: 3 * time.Second, CacheMiB: 16, MmapMiB: 64, TempStoreMemory: true,
		PageSize: 8192, WALAutocheckpoint: 2048, IncrementalVacuum: true, ForeignKeys: true,
	})
	require.Equal(t, 2, pragma[int](t, db, "synchronous"), "FULL")
	require.Equal(t, 3000, pragma[int](t, db, "busy_timeout"))
	require.Equal(t, -16*1024, pragma[int](t, db, "cache_size"))
	require.Equal(t, int64(64<<20), pragma[int64](t, db, "mmap_size"))
	require.Equal(t, 2, pragma[int](t, db, "temp_store"), "MEMORY")
	require.Equal(t, 8192, pragma[int](t, db, "page_size"))
	require.Equal(t, 2048, pragma[int](t, db, "wal_autocheckpoint"))
	require.Equal(t, 2, pragma[int](t, db, "auto_vacuum"), "INCREMENTAL")
	require.Equal(t, 1, pragma[int](t, db, "foreign_keys"))

	// An existing file keeps its page size and vacuum mode.
	_, err := db.Exec("CREATE TABLE t (x)")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	db = openT(t, path, Options{PageSize: 4096})
	require.Equal(t, 8192, pragma[int](t, db, "page_size"))
	require.Equal(t, 2, pragma[int](t, db, "auto_vacuum"))
}

func TestWriterTakesTheWriteLockAtBegin(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.db")
	w1 := openT(t, path, Options{BusyTimeout: 50 * time.Millisecond})
	w2 := openT(t, path, Options{BusyTimeout: 50 * time.Millisecond})
	_, err := w1.Exec("CREATE TABLE t (x)")
	require.NoError(t, err)
	tx, err := w1.Begin()
	require.NoError(t, err)
	defer tx.Rollback()
	// A second handle's BEGIN waits for the lock (and here gives up after the busy timeout),
	// rather than starting a transaction that would fail when it first writes.
	_, err = w2.Begin()
	require.Error(t, err)
	require.True(t, Busy(err), "%v", err)
}

func TestReaders(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.db")
	_, err := Open(path, Options{ReadOnly: true})
	require.ErrorIs(t, err, ErrUnavailable, "readers do not create the file")
	require.NoFileExists(t, path)

	w := openT(t, path, Options{})
	r := openT(t, path, Options{ReadOnly: true, CacheMiB: 8})
	require.Equal(t, 4, r.Stats().MaxOpenConnections)
	require.Equal(t, 1, pragma[int](t, r, "query_only"))
	require.Equal(t, -8*1024, pragma[int](t, r, "cache_size"))
	_, err = w.Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	_, err = r.Exec("INSERT INTO t VALUES (2)")
	require.Error(t, err, "readers cannot write")

	// In WAL mode a reader is not held up by the writer's open transaction, and sees only
	// what was committed.
	tx, err := w.Begin()
	require.NoError(t, err)
	_, err = tx.Exec("INSERT INTO t VALUES (3)")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var n int
	require.NoError(t, r.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, tx.Commit())
	require.NoError(t, r.QueryRow("SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 2, n)

	r2 := openT(t, path, Options{ReadOnly: true, Conns: 2})
	require.Equal(t, 2, r2.Stats().MaxOpenConnections)
}

// Switching to WAL needs the file alone: a handle holding it makes Open wait, up to the busy
// timeout, and then fail saying so. Once it lets go, Open works.
func TestWALSwitchWaitsForOtherHandles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.db")
	other, err := sql.Open("sqlite", path) // a rollback-journal database, as another program might have
	require.NoError(t, err)
	defer other.Close()
	conn, err := other.Conn(context.Background())
	require.NoError(t, err)
	_, err = conn.ExecContext(context.Background(), "CREATE TABLE t (x)")
	require.NoError(t, err)
	_, err = conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE")
	require.NoError(t, err)

	start := time.Now()
	_, err = Open(path, Options{BusyTimeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, ErrUnavailable)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "Open waited for the handle")

	_, err = conn.ExecContext(context.Background(), "COMMIT")
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	db := openT(t, path, Options{BusyTimeout: 100 * time.Millisecond})
	require.Equal(t, "wal", pragma[string](t, db, "journal_mode"))
}

func TestNotADatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "junk.db")
	junk := make([]byte, 4096)
	copy(junk, "this is not an SQLite database")
	require.NoError(t, os.WriteFile(path, junk, 0o644))
	start := time.Now()
	_, err := Open(path, Options{})
	require.ErrorIs(t, err, ErrUnavailable)
	require.Contains(t, err.Error(), "is it an SQLite database?")
	require.Less(t, time.Since(start), 5*time.Second, "not waited on as if it were busy")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, junk, data, "left as it was")
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		path string
		opts Options
	}{
		{"", Options{}},
		{filepath.Join(dir, "a?b.db"), Options{}},
		{filepath.Join(dir, "x.db"), Options{Conns: 2}},
		{filepath.Join(dir, "x.db"), Options{ReadOnly: true, Conns: -1}},
		{filepath.Join(dir, "x.db"), Options{BusyTimeout: time.Microsecond}},
		{filepath.Join(dir, "x.db"), Options{PageSize: 1000}},
		{filepath.Join(dir, "x.db"), Options{CacheMiB: -1}},
	} {
		_, err := Open(tc.path, tc.opts)
		require.ErrorIs(t, err, ErrInvalidOptions, "%q %+v", tc.path, tc.opts)
	}
}

func TestBusy(t *testing.T) {
	t.Parallel()
	require.False(t, Busy(nil))
	require.False(t, Busy(errors.New("database is locked")), "only the driver's own errors, by code")
	db := openT(t, filepath.Join(t.TempDir(), "x.db"), Options{})
	_, err := db.Exec("NOT SQL")
	require.Error(t, err)
	require.False(t, Busy(err))
}

// The pair of pools host/models/sqlitemodels opens today by hand (a writer and four readers,
// 16 MiB of cache, temporary data in memory) comes out of Open as it expects.
func TestModelStorePools(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "models.db")
	w := openT(t, path, Options{CacheMiB: 16, TempStoreMemory: true})
	r := openT(t, path, Options{ReadOnly: true, Conns: 4, CacheMiB: 16, TempStoreMemory: true})
	for _, db := range []*sql.DB{w, r} {
		require.Equal(t, 10000, pragma[int](t, db, "busy_timeout"))
		require.Equal(t, -16384, pragma[int](t, db, "cache_size"))
		require.Equal(t, 2, pragma[int](t, db, "temp_store"))
		require.Equal(t, "wal", pragma[string](t, db, "journal_mode"))
	}
	require.Equal(t, 1, pragma[int](t, w, "synchronous"))
	require.Equal(t, 1, pragma[int](t, r, "query_only"))
	require.Equal(t, 4, r.Stats().MaxOpenConnections)
}
