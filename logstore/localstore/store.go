package localstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/embedded/sqlitedb"
	"github.com/trellis-run/trellis/logstore"
)

// FileName is the database file Open keeps in its directory (with SQLite's -wal and -shm files
// beside it while open).
const FileName = "logs.db"

// Store is the embedded execution log. Safe for concurrent use.
type Store struct {
	path string
	opts Options

	read *sql.DB // query_only connections for queries

	wmu    sync.Mutex // one writer at a time: Insert, DropBefore, Close
	write  *sql.DB
	wconn  *sql.Conn
	stmts  map[string]*sql.Stmt // prepared on wconn, by SQL text; guarded by wmu
	closed atomic.Bool

	dropChunk int // defaultDropChunk; tests make it small
}

var _ logstore.Store = (*Store)(nil)

// Open opens (creating when missing) the log database in dir. The host passes DATA/logs.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if dir == "" {
		return nil, fmt.Errorf("open: %w: the directory is empty; pass the data directory's logs folder", ErrInvalidOptions)
	}
	s := &Store{path: filepath.Join(dir, FileName), opts: opts, dropChunk: defaultDropChunk}
	if err := s.open(); err != nil {
		s.closeAll()
		if errors.Is(err, sqlitedb.ErrInvalidOptions) {
			err = fmt.Errorf("%w: %w", ErrInvalidOptions, err)
		}
		return nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	return s, nil
}

func (s *Store) open() error {
	var err error
	// The writer: 8 KiB pages (a new database only) and a 64 MiB WAL between checkpoints
	// measured best for ingest at a million rows; mmap saves a copy of every page read, as on
	// the readers. A new database gets incremental auto-vacuum, which DropBefore uses to give
	// dropped days back to the file system.
	s.write, err = sqlitedb.Open(s.path, sqlitedb.Options{
		SyncFull: s.opts.SyncFull, CacheMiB: s.opts.CacheMiB, MmapMiB: 1024, TempStoreMemory: true,
		PageSize: 8192, WALAutocheckpoint: 8192, IncrementalVacuum: true,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", logstore.ErrUnavailable, err)
	}
	ctx := context.Background()
	s.wconn, err = s.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w (is the directory writable?)", logstore.ErrUnavailable, err)
	}
	var version int
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("%w: read schema version: %w (is %s an SQLite database?)", logstore.ErrUnavailable, err, s.path)
	}
	if version > schemaVersion {
		return fmt.Errorf("%w: file has version %d, this build knows %d", ErrSchemaVersion, version, schemaVersion)
	}
	for v := version; v > 0 && v < schemaVersion; v++ {
		if _, err := s.wconn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("%w: migrate the schema from version %d: %w", logstore.ErrUnavailable, v, err)
		}
	}
	if _, err := s.wconn.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("%w: create schema: %w", logstore.ErrUnavailable, err)
	}
	if _, err := s.wconn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("%w: set schema version: %w", logstore.ErrUnavailable, err)
	}
	s.stmts = map[string]*sql.Stmt{}
	s.read, err = sqlitedb.Open(s.path, sqlitedb.Options{
		ReadOnly: true, Conns: s.opts.ReadConns, CacheMiB: s.opts.CacheMiB, MmapMiB: 1024, TempStoreMemory: true,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", logstore.ErrUnavailable, err)
	}
	return nil
}

// Close closes the database; queries in flight finish first. Safe to call twice.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return s.closeAll()
}

func (s *Store) closeAll() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	for _, db := range []*sql.DB{s.read, s.write} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func errClosed(op string) error {
	return fmt.Errorf("%s: %w: %w", op, ErrClosed, logstore.ErrUnavailable)
}

// Insert stores a batch in one transaction: all of it or, when any row is invalid or the disk
// fails, none of it. Rows whose ID is already stored are skipped, so a retried batch adds
// nothing.
func (s *Store) Insert(ctx context.Context, rows []logstore.Row) error {
	if len(rows) == 0 {
		return nil
	}
	args := make([][]any, len(rows))
	for i := range rows {
		if err := rows[i].Validate(); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		a, err := stateArgs(&rows[i])
		if err != nil {
			return fmt.Errorf("insert: %w: %w", logstore.ErrInvalidRow, err)
		}
		args[i] = a
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return errClosed("insert")
	}
	newest := newestPerNode(rows)
	if err := s.inTx(ctx, func() error {
		if err := s.execChunks(ctx, insertStatesSQL, "", stateParams, args); err != nil {
			return fmt.Errorf("states: %w", err)
		}
		nodes := make([][]any, 0, len(newest))
		for _, i := range newest {
			nodes = append(nodes, nodeArgs(&rows[i]))
		}
		if err := s.execChunks(ctx, upsertNodesSQL, upsertNodesConflict, nodeParams, nodes); err != nil {
			return fmt.Errorf("nodes: %w", err)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	return nil
}

// chunkParams bounds the parameters of one multi-row statement (SQLite allows 32766). One
// statement per row was about 30 % slower on a fresh store (less at a million rows, where page
// writes dominate); between 250 and 4,000 parameters the ingest benchmark did not tell the
// sizes apart.
const chunkParams = 1000

// execChunks runs head + "(?,…),(?,…)…" + tail over rows, as many rows a statement as fit in
// chunkParams. Statements are prepared once per chunk size and kept. The caller holds wmu.
func (s *Store) execChunks(ctx context.Context, head, tail string, params int, rows [][]any) error {
	per := max(1, chunkParams/params)
	args := make([]any, 0, per*params)
	for len(rows) > 0 {
		n := min(per, len(rows))
		query := head + strings.TrimSuffix(strings.Repeat("("+strings.TrimSuffix(strings.Repeat("?,", params), ",")+"),", n), ",") + tail
		st := s.stmts[query]
		if st == nil {
			var err error
			if st, err = s.wconn.PrepareContext(ctx, query); err != nil {
				return err
			}
			s.stmts[query] = st
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// newestPerNode is the index of each node's newest state in the batch (greatest RecordedAt, then
// Seq, then the first of equal ones), in batch order: only those can become the node's latest
// state, so only they go to the nodes upsert. A node's states usually arrive in one batch, so this
// saves most of the upserts. A newest state that was stored before needs none, but upserting it
// again is harmless: the upsert only ever moves a node forward.
func newestPerNode(rows []logstore.Row) []int {
	best := make(map[string]int, len(rows))
	for i := range rows {
		j, ok := best[rows[i].NodeID]
		if !ok || newer(&rows[i], &rows[j]) {
			best[rows[i].NodeID] = i
		}
	}
	out := make([]int, 0, len(best))
	for i := range rows {
		if best[rows[i].NodeID] == i {
			out = append(out, i)
		}
	}
	return out
}

func newer(a, b *logstore.Row) bool {
	ra, rb := a.RecordedAt.UnixMilli(), b.RecordedAt.UnixMilli()
	return ra > rb || ra == rb && a.Seq > b.Seq
}

// inTx runs fn in a write transaction on the writer connection, committing when it returns nil.
// The caller holds wmu.
func (s *Store) inTx(ctx context.Context, fn func() error) error {
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return s.writeErr(ctx, err)
	}
	if err := fn(); err != nil {
		_, _ = s.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return s.writeErr(ctx, err)
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = s.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return s.writeErr(ctx, err)
	}
	return nil
}

// writeErr marks failures of the database itself (disk full, I/O error, locked by another
// process) as ErrUnavailable; a cancelled context stays what it is.
func (s *Store) writeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return fmt.Errorf("%w: %w", logstore.ErrUnavailable, err)
}

// defaultDropChunk bounds how many nodes one DropBefore transaction deletes, so inserts are not
// held up for the whole drop.
const defaultDropChunk = 2000

// DropBefore deletes every node created before the UTC day of day, with all its states. SQLite
// has no partitions: this deletes rows in chunks (inserts go on between them) and then returns the
// freed pages to the file system.
func (s *Store) DropBefore(ctx context.Context, day time.Time) error {
	u := day.UTC()
	cut := time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC).UnixMilli()
	for done := false; !done; {
		var err error
		if done, err = s.dropSome(ctx, cut); err != nil {
			return fmt.Errorf("drop before %s: %w", time.UnixMilli(cut).UTC().Format(time.DateOnly), err)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return errClosed("drop before")
	}
	if _, err := s.wconn.ExecContext(ctx, "PRAGMA incremental_vacuum"); err != nil {
		return fmt.Errorf("drop before: vacuum: %w", s.writeErr(ctx, err))
	}
	return nil
}

// dropSome deletes the oldest nodes created before cut, about s.dropChunk of them, with their
// states, and reports whether none created before cut is left.
func (s *Store) dropSome(ctx context.Context, cut int64) (done bool, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return false, fmt.Errorf("%w: %w", ErrClosed, logstore.ErrUnavailable)
	}
	err = s.inTx(ctx, func() error {
		// This chunk goes up to the created_at of the (s.dropChunk+1)-th oldest node (inclusive,
		// so equal times never stall it) or, when there are fewer, to cut.
		cond, arg := "created_at < ?", cut
		var boundary int64
		err := s.wconn.QueryRowContext(ctx, `SELECT created_at FROM nodes INDEXED BY nodes_time
			WHERE created_at < ? ORDER BY created_at LIMIT 1 OFFSET ?`, cut, s.dropChunk).Scan(&boundary)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			done = true
		case err != nil:
			return err
		default:
			cond, arg = "created_at <= ?", boundary
		}
		if _, err := s.wconn.ExecContext(ctx, "DELETE FROM states WHERE "+cond, arg); err != nil {
			return err
		}
		_, err = s.wconn.ExecContext(ctx, "DELETE FROM nodes WHERE "+cond, arg)
		return err
	})
	return done, err
}
