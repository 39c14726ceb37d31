// Package sqlitedb is the one way the embedded stores open SQLite (modernc.org/sqlite, pure
// Go): a writer pool and query_only reader pools on one file in WAL mode, with the busy
// timeout, durability level, page cache and connection limits each store asks for.
//
// It owns: creating the file's directory, the DSN (every pragma a connection needs, applied by
// the driver on each new connection), switching the file to WAL (waiting for other handles
// that hold it), and the pool's connection limits. It must not: know any schema, run
// migrations, or import anything of ours.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Options say what kind of pool to open. The zero value is the writer pool most stores want:
// one connection, WAL, synchronous=NORMAL, a 10 s busy timeout.
type Options struct {
	// ReadOnly opens query_only connections, to answer queries without waiting for the writer:
	// in WAL mode a reader works on a snapshot while the writer commits. Open the writer pool
	// first; it creates the file and puts it in WAL mode.
	ReadOnly bool
	// Conns caps the pool's connections [writer 1, reader 4]. A writer has one: SQLite lets one
	// connection write at a time anyway, and waiting for the pool's connection in Go is fairer
	// and cheaper than connections failing each other with SQLITE_BUSY. Its connection is
	// kept for ever, so what a caller sets up on it (prepared statements, the page cache)
	// lasts.
	Conns int
	// SyncFull makes commits wait for the disk itself (synchronous=FULL), so they survive a power
	// loss or OS crash. The default, NORMAL in WAL mode, survives a crash of the process and
	// never corrupts the file; a power loss may lose the last commits. Writers only.
	SyncFull bool
	// BusyTimeout is how long a statement waits for another connection's lock (another handle
	// on the file, another process) before failing with SQLITE_BUSY [10s]. It also bounds how
	// long Open waits to switch the file to WAL.
	BusyTimeout time.Duration
	// CacheMiB is the page cache of each connection [0: SQLite's 2 MiB]. Stores that scan much
	// (analytics, model queries) want more, at that much memory per connection.
	CacheMiB int
	// MmapMiB maps up to this much of the file into memory, saving a copy of each page read [0:
	// off]. For large files read often (the execution log).
	MmapMiB int
	// TempStoreMemory keeps temporary tables and sort spills in memory, not in temp files.
	TempStoreMemory bool
	// PageSize of a new database [0: SQLite's 4096]; an existing file keeps its own. Larger pages
	// suit tables of wide rows written in bulk. Writers only.
	PageSize int
	// WALAutocheckpoint is how many pages the WAL grows to before a commit checkpoints it [0:
	// SQLite's 1000]. Bulk ingest checkpoints less often with a larger WAL. Writers only.
	WALAutocheckpoint int
	// IncrementalVacuum gives a new database auto_vacuum=INCREMENTAL (it cannot be set once a
	// table exists), so PRAGMA incremental_vacuum can return deleted pages to the file system.
	// Writers only.
	IncrementalVacuum bool
	// ForeignKeys enforces FOREIGN KEY constraints [off, as in SQLite]. None of the stores
	// declares any today; a store that does must ask.
	ForeignKeys bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Conns == 0 {
		o.Conns = 1
		if o.ReadOnly {
			o.Conns = 4
		}
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 10 * time.Second
	}
	switch {
	case o.Conns < 0 || o.Conns > 256:
		return o, fmt.Errorf("%w: Conns must be 1 to 256, got %d", ErrInvalidOptions, o.Conns)
	case !o.ReadOnly && o.Conns != 1:
		return o, fmt.Errorf("%w: a writer pool has one connection, got Conns %d", ErrInvalidOptions, o.Conns)
	case o.BusyTimeout < time.Millisecond:
		return o, fmt.Errorf("%w: BusyTimeout %v is below a millisecond", ErrInvalidOptions, o.BusyTimeout)
	case o.CacheMiB < 0 || o.MmapMiB < 0 || o.WALAutocheckpoint < 0:
		return o, fmt.Errorf("%w: CacheMiB, MmapMiB and WALAutocheckpoint must not be negative", ErrInvalidOptions)
	case o.PageSize != 0 && (o.PageSize < 512 || o.PageSize > 65536 || o.PageSize&(o.PageSize-1) != 0):
		return o, fmt.Errorf("%w: PageSize %d is not a power of two from 512 to 65536", ErrInvalidOptions, o.PageSize)
	}
	return o, nil
}

// Open opens a pool on the SQLite file at path, creating the file and its directory when
// missing (writers), and connects once, so a path that cannot be used fails here rather than
// at first use. A writer pool switches the file to WAL mode, waiting up to BusyTimeout for
// other handles that hold it. The caller closes the pool.
func Open(path string, opts Options) (*sql.DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	if path == "" {
		return nil, fmt.Errorf("sqlitedb: open: %w: the path is empty", ErrInvalidOptions)
	}
	if strings.ContainsRune(path, '?') {
		// The driver takes everything after a '?' for parameters.
		return nil, fmt.Errorf("sqlitedb: open %s: %w: the path may not contain '?'", path, ErrInvalidOptions)
	}
	if opts.ReadOnly {
		// A reader would create an empty file, and the writer's setup would then race it.
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("sqlitedb: open %s: %w: %w (open the writer first)", path, ErrUnavailable, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w: create its directory: %w", path, ErrUnavailable, err)
	}
	db, err := sql.Open("sqlite", path+"?"+dsn(opts))
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w: %w", path, ErrUnavailable, err)
	}
	db.SetMaxOpenConns(opts.Conns)
	db.SetMaxIdleConns(opts.Conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	ctx := context.Background()
	if opts.ReadOnly {
		err = db.PingContext(ctx)
	} else {
		err = walMode(ctx, db, opts)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w: %w (is it an SQLite database?)", path, ErrUnavailable, err)
	}
	return db, nil
}

// dsn is the query part of the driver's DSN: what every connection of the pool is set up with
// as the driver opens it (a pool opens connections again at any time, so a pragma run once
// after Open would miss them).
func dsn(o Options) string {
	q := url.Values{}
	pragma := func(name string, value any) { q.Add("_pragma", fmt.Sprintf("%s(%v)", name, value)) }
	q.Set("_busy_timeout", strconv.FormatInt(o.BusyTimeout.Milliseconds(), 10))
	if o.ForeignKeys {
		q.Set("_foreign_keys", "1")
	} else {
		q.Set("_foreign_keys", "0")
	}
	if o.CacheMiB > 0 {
		pragma("cache_size", -o.CacheMiB*1024) // negative: KiB rather than pages
	}
	if o.MmapMiB > 0 {
		pragma("mmap_size", int64(o.MmapMiB)<<20)
	}
	if o.TempStoreMemory {
		pragma("temp_store", "memory")
	}
	if o.ReadOnly {
		q.Set("_query_only", "1")
		return q.Encode()
	}
	if o.SyncFull {
		q.Set("_synchronous", "FULL")
	} else {
		q.Set("_synchronous", "NORMAL")
	}
	// A transaction that reads, then writes, cannot wait for another writer: SQLite fails its
	// upgrade with SQLITE_BUSY at once. Taking the write lock at BEGIN lets busy_timeout wait.
	q.Set("_txlock", "immediate")
	if o.PageSize > 0 {
		pragma("page_size", o.PageSize)
	}
	if o.WALAutocheckpoint > 0 {
		pragma("wal_autocheckpoint", o.WALAutocheckpoint)
	}
	return q.Encode()
}

// walMode switches the file to WAL, so readers never wait for the writer; a new file first
// gets auto_vacuum=INCREMENTAL when asked. Switching needs a moment alone with the file, which
// SQLite does not wait for, so another handle opening it at the same time is waited out.
func walMode(ctx context.Context, db *sql.DB, o Options) error {
	deadline := time.Now().Add(o.BusyTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil && o.IncrementalVacuum {
			_, err = db.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL")
		}
		if err == nil {
			err = db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		}
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err != nil && !Busy(err) {
			return fmt.Errorf("switch to WAL mode: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("switch to WAL mode: %v (journal mode %q); is another program holding the file?", err, mode)
		}
		time.Sleep(wait)
	}
}

// Busy reports whether err is SQLite finding the database locked by another connection: worth
// retrying, unlike other errors.
func Busy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary code; extended codes add bits above it
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}
