package localtimers

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/embedded/sqlitedb"
	"github.com/trellis-run/trellis/host/timers"
	"github.com/trellis-run/trellis/host/vocab"
)

// FileName is the database file the host keeps in its data directory.
const FileName = "timers.db"

// Store is the embedded task store. Safe for concurrent use; see the package doc.
type Store struct {
	path  string
	write *sql.DB // one connection, BEGIN IMMEDIATE transactions
	read  *sql.DB // query_only connections
	hub   *hub

	closed atomic.Bool
	subMu  sync.Mutex       // orders ForcedEnds' subWG.Add before Close's Wait
	done   chan struct{}    // closed by Close: ends ForcedEnds channels
	subWG  sync.WaitGroup   // ForcedEnds forwarders
	now    func() time.Time // the store's own times (CreatedAt, EndedAt...); tests may stub it
}

var _ timers.Store = (*Store)(nil)

// Open opens (creating when missing) the task database at path, e.g. DATA/timers.db; the
// directory is created too. Commits survive a crash of the process (WAL, synchronous=NORMAL);
// a power loss may lose the last moments of writes but never corrupts the file.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("localtimers: open: %w: the path is empty; pass DATA/%s", timers.ErrInvalid, FileName)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("localtimers: open %s: %w: %w", path, timers.ErrInvalid, err)
	}
	s := &Store{path: abs, done: make(chan struct{}), now: time.Now}
	if err := s.open(); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("localtimers: open %s: %w", abs, err)
	}
	s.hub = acquireHub(abs)
	return s, nil
}

func (s *Store) open() error {
	var err error
	// The writer's transactions are BEGIN IMMEDIATE: claims are exclusive even between two
	// handles on one file.
	s.write, err = sqlitedb.Open(s.path, sqlitedb.Options{})
	if errors.Is(err, sqlitedb.ErrInvalidOptions) {
		return fmt.Errorf("%w: %w", timers.ErrInvalid, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", timers.ErrUnavailable, err)
	}
	ctx := context.Background()
	var version int
	if err := s.write.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("%w: read schema version: %w (is %s an SQLite database?)", timers.ErrUnavailable, err, s.path)
	}
	if version > schemaVersion {
		return fmt.Errorf("%w: %w: file has version %d, this build knows %d", timers.ErrUnavailable, ErrSchemaVersion, version, schemaVersion)
	}
	if _, err := s.write.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("%w: create schema: %w", timers.ErrUnavailable, err)
	}
	if err := s.addColumns(ctx); err != nil {
		return fmt.Errorf("%w: upgrade schema: %w", timers.ErrUnavailable, err)
	}
	if _, err := s.write.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("%w: set schema version: %w", timers.ErrUnavailable, err)
	}
	s.read, err = sqlitedb.Open(s.path, sqlitedb.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%w: %w", timers.ErrUnavailable, err)
	}
	return nil
}

// addColumns adds the columns a file of an older version lacks, in one transaction, so two
// handles opening the file at once add each column once.
func (s *Store) addColumns(ctx context.Context) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, c := range addedColumns {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('tasks') WHERE name = ?`, c.name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := tx.ExecContext(ctx, c.ddl); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// PollHint: a task created through another handle is found within a second; the host calls
// Runner.Notify after its own creates.
func (s *Store) PollHint() time.Duration { return time.Second }

var _ timers.PollHinter = (*Store)(nil)

// Close closes the database and ends the ForcedEnds channels. Safe to call twice.
func (s *Store) Close() error {
	s.subMu.Lock()
	if s.closed.Swap(true) {
		s.subMu.Unlock()
		return nil
	}
	close(s.done)
	s.subMu.Unlock()
	s.subWG.Wait()
	s.hub.release()
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	for _, db := range []*sql.DB{s.read, s.write} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localtimers: close: %w", err)
	}
	return nil
}

// fail wraps a database error for op: the caller's context error as it is, a closed store as
// ErrClosed, anything else as ErrUnavailable (the file is unreadable, the disk full...).
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, timers.ErrNotFound) || errors.Is(err, timers.ErrConflict) || errors.Is(err, timers.ErrInvalid) {
		return fmt.Errorf("localtimers: %s: %w", op, err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("localtimers: %s: %w", op, cerr)
	}
	if s.closed.Load() {
		return errClosed(op)
	}
	return fmt.Errorf("localtimers: %s: %w: %w", op, timers.ErrUnavailable, err)
}

func errClosed(op string) error {
	return fmt.Errorf("localtimers: %s: %w: %w", op, timers.ErrClosed, timers.ErrUnavailable)
}

// tx runs fn in one BEGIN IMMEDIATE transaction on the writer.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.closed.Load() {
		return timers.ErrClosed
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

type scanner interface{ Scan(dest ...any) error }

func scanTask(sc scanner) (timers.Task, error) {
	var t timers.Task
	var args, result string
	var terr sql.NullString
	var start, created, updated, started, ended, first int64
	if err := sc.Scan(&t.ID, &t.FullName, &t.FuncName, &t.TaskType, &args, &start, &t.Status, &result, &terr,
		&t.RequestID, &t.NodeID, &t.Key, &t.Attempt, &t.Owner, &created, &updated, &started, &ended, &first, &t.PausedWith); err != nil {
		return t, err
	}
	var err error
	// vocab's decoder keeps integers exact: an id above 2^53 in argDict reaches the function as it was given.
	if t.ArgDict, err = vocab.DecodeJSONObject([]byte(args)); err != nil {
		return t, fmt.Errorf("decode argDict of %s: %w", t.ID, err)
	}
	if t.Result, err = vocab.DecodeJSON([]byte(result)); err != nil {
		return t, fmt.Errorf("decode result of %s: %w", t.ID, err)
	}
	if terr.Valid {
		t.Error = &timers.TaskError{}
		if err := json.Unmarshal([]byte(terr.String), t.Error); err != nil {
			return t, fmt.Errorf("decode error of %s: %w", t.ID, err)
		}
	}
	t.StartTime, t.CreatedAt, t.UpdatedAt = fromNS(start), fromNS(created), fromNS(updated)
	t.StartedAt, t.EndedAt, t.FirstStartedAt = fromNS(started), fromNS(ended), fromNS(first)
	return t, nil
}

func scanTasks(rows *sql.Rows) ([]timers.Task, error) {
	defer rows.Close()
	var out []timers.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

const insertSQL = `INSERT INTO tasks (id, full_name, func_name, task_type, arg_dict, start_time, status,
	result, error, request_id, node_id, key, attempt, owner, lease_until, created_at, updated_at,
	started_at, ended_at, first_started_at, paused_with) VALUES (?, ?, ?, ?, ?, ?, ?, 'null', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`

func (s *Store) insert(ctx context.Context, tx *sql.Tx, t timers.Task, lease int64) error {
	args, err := json.Marshal(t.ArgDict)
	if err != nil {
		return fmt.Errorf("%w: argDict: %v", timers.ErrInvalid, err)
	}
	var terr any
	if t.Error != nil {
		b, _ := json.Marshal(t.Error)
		terr = string(b)
	}
	res, err := tx.ExecContext(ctx, insertSQL, t.ID, t.FullName, t.FuncName, t.TaskType, string(args),
		ns(t.StartTime), t.Status, terr, t.RequestID, t.NodeID, t.Key, t.Attempt, t.Owner, lease,
		ns(t.CreatedAt), ns(t.UpdatedAt), ns(t.StartedAt), ns(t.EndedAt), ns(t.FirstStartedAt), t.PausedWith)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: task %s already exists; leave taskId empty to get a new one", timers.ErrConflict, t.ID)
	}
	return nil
}

// removeKey deletes the waiting tasks holding key and returns their ids.
func removeKey(ctx context.Context, tx *sql.Tx, key string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `DELETE FROM tasks WHERE key = ? AND status = 'waiting' AND key <> '' RETURNING id`, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Create stores a waiting task, replacing the waiting task holding its Key in the same
// transaction.
func (s *Store) Create(ctx context.Context, t timers.Task) (timers.Task, []string, error) {
	t, err := timers.ValidateCreate(t)
	if err != nil {
		return t, nil, fmt.Errorf("localtimers: create: %w", err)
	}
	now := s.now().UTC()
	t.CreatedAt, t.UpdatedAt = now, now
	t.StartTime = t.StartTime.UTC()
	t.ArgDict = timers.StoredArgs(t.ArgDict)
	var replaced []string
	out := t
	err = s.tx(ctx, func(tx *sql.Tx) error {
		out = t
		state, terr, err := requestState(ctx, tx, t.RequestID)
		if err != nil {
			return err
		}
		if t.Key != "" && state != timers.RequestRevoked {
			if replaced, err = removeKey(ctx, tx, t.Key); err != nil {
				return err
			}
		}
		// A task created in a paused or revoked request follows it (OperateRequest).
		switch state {
		case timers.RequestPaused:
			out.Status, out.PausedWith, out.Key = timers.StatusPaused, timers.PausedWithRequest, ""
		case timers.RequestRevoked:
			out.Status, out.Error, out.Key, out.EndedAt = timers.StatusFail, terr, "", now
		}
		return s.insert(ctx, tx, out, 0)
	})
	if err != nil {
		return out, nil, s.fail(ctx, "create", err)
	}
	return out, replaced, nil
}

// requestState reads the state OperateRequest recorded for requestID ("" for none) and, for a
// revoked request, the error its tasks end with.
func requestState(ctx context.Context, tx *sql.Tx, requestID string) (string, *timers.TaskError, error) {
	if requestID == "" {
		return "", nil, nil
	}
	var state string
	var terr sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT state, error FROM requests WHERE request_id = ?`, requestID).Scan(&state, &terr)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	var e *timers.TaskError
	if terr.Valid {
		e = &timers.TaskError{}
		if err := json.Unmarshal([]byte(terr.String), e); err != nil {
			return "", nil, fmt.Errorf("decode the revoke error of request %s: %w", requestID, err)
		}
	}
	return state, e, nil
}

// CreateRunning records a task already running on owner.
func (s *Store) CreateRunning(ctx context.Context, t timers.Task, owner string, lease time.Duration) (timers.Task, error) {
	now := s.now().UTC()
	t, err := timers.ValidateCreateRunning(t, owner, lease, now)
	if err != nil {
		return t, fmt.Errorf("localtimers: create running: %w", err)
	}
	t.StartTime = t.StartTime.UTC()
	t.Status, t.Attempt, t.Owner = timers.StatusRunning, 1, owner
	t.CreatedAt, t.UpdatedAt, t.StartedAt, t.FirstStartedAt = now, now, now, now
	t.ArgDict = timers.StoredArgs(t.ArgDict)
	if err := s.tx(ctx, func(tx *sql.Tx) error { return s.insert(ctx, tx, t, now.Add(lease).UnixNano()) }); err != nil {
		return t, s.fail(ctx, "create running", err)
	}
	return t, nil
}

// Get returns the record of id.
func (s *Store) Get(ctx context.Context, id string) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: get: %w", err)
	}
	if s.closed.Load() {
		return timers.Task{}, errClosed("get")
	}
	t, err := scanTask(s.read.QueryRowContext(ctx, `SELECT `+columns+` FROM tasks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("localtimers: get %s: %w", id, timers.ErrNotFound)
	}
	if err != nil {
		return t, s.fail(ctx, "get "+id, err)
	}
	return t, nil
}

// List pages through the records newest first. Deep pages cost their offset (SQLite skips the
// rows before); the total is counted over an index.
func (s *Store) List(ctx context.Context, q timers.ListQuery) ([]timers.Task, int64, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, 0, fmt.Errorf("localtimers: list: %w", err)
	}
	if s.closed.Load() {
		return nil, 0, errClosed("list")
	}
	var where []string
	var args []any
	if q.FullName != "" {
		where, args = append(where, "full_name = ?"), append(args, q.FullName)
	}
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, q.Status)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int64
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks`+cond, args...).Scan(&total); err != nil {
		return nil, 0, s.fail(ctx, "list", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+columns+` FROM tasks`+cond+` ORDER BY seq DESC LIMIT ? OFFSET ?`,
		append(args, q.PageSize, q.Offset())...)
	if err != nil {
		return nil, 0, s.fail(ctx, "list", err)
	}
	out, err := scanTasks(rows)
	if err != nil {
		return nil, 0, s.fail(ctx, "list", err)
	}
	return out, total, nil
}

// RemoveKey deletes the waiting task holding key.
func (s *Store) RemoveKey(ctx context.Context, key string) ([]string, error) {
	if key == "" {
		return nil, fmt.Errorf("localtimers: remove key: %w: key is empty", timers.ErrInvalid)
	}
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		ids, err = removeKey(ctx, tx, key)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "remove key", err)
	}
	return ids, nil
}

// Claim takes expired leases first (their tasks are the oldest due), then due waiting tasks,
// earliest StartTime first.
func (s *Store) Claim(ctx context.Context, now time.Time, owner string, lease time.Duration, limit int) ([]timers.Task, error) {
	if err := timers.ValidateOwner(owner, lease); err != nil {
		return nil, fmt.Errorf("localtimers: claim: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	n, until := now.UnixNano(), now.Add(lease).UnixNano()
	var out []timers.Task
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		for _, pick := range []string{
			`SELECT seq FROM tasks INDEXED BY tasks_lease WHERE status = 'running' AND lease_until <= ?1 ORDER BY lease_until LIMIT ?2`,
			`SELECT seq FROM tasks WHERE status = 'waiting' AND start_time <= ?1 ORDER BY start_time LIMIT ?2`,
		} {
			if len(out) >= limit {
				break
			}
			rows, err := tx.QueryContext(ctx, `UPDATE tasks SET status = 'running', owner = ?3, attempt = attempt + 1,
				lease_until = ?4, started_at = ?1, updated_at = ?5,
				first_started_at = CASE first_started_at WHEN 0 THEN ?1 ELSE first_started_at END
				WHERE seq IN (`+pick+`) RETURNING `+columns,
				n, limit-len(out), owner, until, s.now().UnixNano())
			if err != nil {
				return err
			}
			got, err := scanTasks(rows)
			if err != nil {
				return err
			}
			out = append(out, got...)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "claim", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartTime.Before(out[j].StartTime) })
	return out, nil
}

// NextDue reads the earliest due time and the earliest lease expiry, both from an index.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	if s.closed.Load() {
		return time.Time{}, false, errClosed("next due")
	}
	var due, lease sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT
		(SELECT MIN(start_time) FROM tasks WHERE status = 'waiting'),
		(SELECT MIN(lease_until) FROM tasks INDEXED BY tasks_lease WHERE status = 'running')`).Scan(&due, &lease)
	if err != nil {
		return time.Time{}, false, s.fail(ctx, "next due", err)
	}
	switch {
	case due.Valid && lease.Valid:
		return fromNS(min(due.Int64, lease.Int64)), true, nil
	case due.Valid:
		return fromNS(due.Int64), true, nil
	case lease.Valid:
		return fromNS(lease.Int64), true, nil
	}
	return time.Time{}, false, nil
}

// Extend renews the leases owner holds among ids.
func (s *Store) Extend(ctx context.Context, owner string, ids []string, lease time.Duration) error {
	if err := timers.ValidateOwner(owner, lease); err != nil {
		return fmt.Errorf("localtimers: extend: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	until := s.now().Add(lease).UnixNano()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for chunk := range chunks(ids, 500) {
			args := []any{until, owner}
			for _, id := range chunk {
				args = append(args, id)
			}
			q := `UPDATE tasks SET lease_until = ? WHERE owner = ? AND status = 'running' AND id IN (` +
				strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + `)`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return s.fail(ctx, "extend", err)
}

func chunks(ids []string, n int) func(yield func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ids) > 0 {
			k := min(n, len(ids))
			if !yield(ids[:k]) {
				return
			}
			ids = ids[k:]
		}
	}
}

func getTx(ctx context.Context, tx *sql.Tx, id string) (timers.Task, error) {
	t, err := scanTask(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM tasks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("task %s: %w", id, timers.ErrNotFound)
	}
	return t, err
}

// Finish records the end of owner's run of id.
func (s *Store) Finish(ctx context.Context, id, owner, status string, result any, terr *timers.TaskError) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: finish: %w", err)
	}
	res, err := timers.ValidateFinish(status, result, terr)
	if err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: finish %s: %w", id, err)
	}
	var errJSON any
	if terr != nil {
		b, _ := json.Marshal(terr)
		errJSON = string(b)
	}
	var t timers.Task
	err = s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := getTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.Status != timers.StatusRunning || cur.Owner != owner {
			t = cur
			return conflict(cur, owner)
		}
		now := s.now().UnixNano()
		t, err = scanTask(tx.QueryRowContext(ctx, `UPDATE tasks SET status = ?, result = ?, error = ?,
			lease_until = 0, updated_at = ?, ended_at = ? WHERE id = ? RETURNING `+columns,
			status, string(res), errJSON, now, now, id))
		return err
	})
	if err != nil {
		return t, s.fail(ctx, "finish "+id, err)
	}
	return t, nil
}

// Retry sends owner's failed run of id back to waiting until at.
func (s *Store) Retry(ctx context.Context, id, owner string, at time.Time, terr *timers.TaskError) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: retry: %w", err)
	}
	if err := timers.ValidateRetry(at, terr); err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: retry %s: %w", id, err)
	}
	errJSON, _ := json.Marshal(terr)
	var t timers.Task
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := getTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.Status != timers.StatusRunning || cur.Owner != owner {
			t = cur
			return conflict(cur, owner)
		}
		state, rerr, err := requestState(ctx, tx, cur.RequestID)
		if err != nil {
			return err
		}
		// A retry in a paused request waits paused, one in a revoked request ends (OperateRequest).
		status, pausedWith, ended, e := timers.StatusWaiting, "", int64(0), string(errJSON)
		now := s.now().UnixNano()
		switch state {
		case timers.RequestPaused:
			status, pausedWith = timers.StatusPaused, timers.PausedWithRequest
		case timers.RequestRevoked:
			b, _ := json.Marshal(rerr)
			status, ended, e = timers.StatusFail, now, string(b)
		}
		t, err = scanTask(tx.QueryRowContext(ctx, `UPDATE tasks SET status = ?, start_time = ?, error = ?,
			key = '', lease_until = 0, updated_at = ?, ended_at = ?, paused_with = ? WHERE id = ? RETURNING `+columns,
			status, ns(at.UTC()), e, now, ended, pausedWith, id))
		return err
	})
	if err != nil {
		return t, s.fail(ctx, "retry "+id, err)
	}
	return t, nil
}

func conflict(cur timers.Task, owner string) error {
	if cur.Status == timers.StatusRunning {
		return fmt.Errorf("%w: task %s is now run by %s (attempt %d), not %s", timers.ErrConflict, cur.ID, cur.Owner, cur.Attempt, owner)
	}
	return fmt.Errorf("%w: task %s is %s, not running", timers.ErrConflict, cur.ID, cur.Status)
}

// ForcedEnd ends id: a waiting task never runs, a running one is reported on ForcedEnds.
func (s *Store) ForcedEnd(ctx context.Context, id string) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: forced end: %w", err)
	}
	var t timers.Task
	wasRunning := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := getTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if timers.Finished(cur.Status) {
			t = cur
			return fmt.Errorf("%w: task %s already ended with status %s", timers.ErrConflict, id, cur.Status)
		}
		wasRunning = cur.Status == timers.StatusRunning
		now := s.now().UnixNano()
		t, err = scanTask(tx.QueryRowContext(ctx, `UPDATE tasks SET status = 'forcedEnd', lease_until = 0,
			paused_with = '', updated_at = ?, ended_at = ? WHERE id = ? RETURNING `+columns, now, now, id))
		return err
	})
	if err != nil {
		return t, s.fail(ctx, "forced end "+id, err)
	}
	if wasRunning {
		s.hub.publish(id)
	}
	return t, nil
}

// ForcedEnds reports the ids force-ended while running through any handle on this file in this
// process, from now on.
func (s *Store) ForcedEnds(ctx context.Context) (<-chan string, error) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.closed.Load() {
		return nil, errClosed("forced ends")
	}
	sub := s.hub.subscribe()
	s.subWG.Add(1)
	go func() {
		defer s.subWG.Done()
		defer s.hub.unsubscribe(sub)
		sub.forward(ctx, s.done)
	}()
	return sub.out, nil
}

// Pending counts waiting tasks over the tasks_due index.
func (s *Store) Pending(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, errClosed("pending")
	}
	var n int64
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks WHERE status = 'waiting'`).Scan(&n); err != nil {
		return 0, s.fail(ctx, "pending", err)
	}
	return n, nil
}

// Operate applies a node operation to id in one transaction (timers.Store.Operate).
func (s *Store) Operate(ctx context.Context, id string, op timers.Op) (timers.Task, error) {
	if err := timers.ValidateID(id); err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: %s: %w", op.Name, err)
	}
	args, err := timers.ValidateOp(op)
	if err != nil {
		return timers.Task{}, fmt.Errorf("localtimers: %s %s: %w", op.Name, id, err)
	}
	var t timers.Task
	wasRunning := false
	err = s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := getTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if !slices.Contains(timers.OpFrom[op.Name], cur.Status) {
			t = cur
			return timers.OpConflict(id, op.Name, cur.Status)
		}
		state, _, err := requestState(ctx, tx, cur.RequestID)
		if err != nil {
			return err
		}
		if state == timers.RequestRevoked || (op.Name == timers.OpResume && cur.PausedWith == timers.PausedWithRequest) {
			t = cur
			return timers.OpRequestConflict(cur, op.Name, state)
		}
		wasRunning = cur.Status == timers.StatusRunning
		now := s.now().UnixNano()
		var q string
		var qa []any
		switch op.Name {
		case timers.OpPause:
			q, qa = `status = 'paused', key = '', updated_at = ?`, []any{now}
		case timers.OpResume:
			q, qa = `status = 'waiting', updated_at = ?`, []any{now}
		case timers.OpSkip:
			q, qa = `status = 'success', key = '', paused_with = '', lease_until = 0, updated_at = ?, ended_at = ?`, []any{now, now}
		case timers.OpForcedFail:
			b, _ := json.Marshal(op.Error)
			q, qa = `status = 'fail', key = '', paused_with = '', error = ?, lease_until = 0, updated_at = ?, ended_at = ?`, []any{string(b), now, now}
		case timers.OpRetry:
			q, qa = `status = 'waiting', key = '', start_time = ?, ended_at = 0, updated_at = ?`, []any{now, now}
			if args != "" {
				q, qa = q+`, arg_dict = ?`, append(qa, args)
			}
		}
		if state == timers.RequestPaused && (op.Name == timers.OpResume || op.Name == timers.OpRetry) {
			// Back to waiting in a paused request: its request's pause holds it.
			q += `, status = 'paused', paused_with = 'request'`
		}
		t, err = scanTask(tx.QueryRowContext(ctx, `UPDATE tasks SET `+q+` WHERE id = ? RETURNING `+columns, append(qa, id)...))
		return err
	})
	if err != nil {
		return t, s.fail(ctx, op.Name+" "+id, err)
	}
	if wasRunning {
		s.hub.publish(id)
	}
	return t, nil
}

// OperateRequest applies a request operation to the tasks of requestID and records the
// request's state, in one transaction (timers.Store.OperateRequest).
func (s *Store) OperateRequest(ctx context.Context, requestID, op string, terr *timers.TaskError) ([]timers.Task, error) {
	errJSON, err := timers.ValidateRequestOp(requestID, op, terr)
	if err != nil {
		return nil, fmt.Errorf("localtimers: %s request: %w", op, err)
	}
	var out []timers.Task
	err = s.tx(ctx, func(tx *sql.Tx) error {
		state, _, err := requestState(ctx, tx, requestID)
		if err != nil {
			return err
		}
		if state == timers.RequestRevoked && op != timers.RequestRevoke {
			return timers.RequestConflict(requestID, op)
		}
		now := s.now().UnixNano()
		var rows *sql.Rows
		switch op {
		case timers.RequestPause:
			if _, err := tx.ExecContext(ctx, `INSERT INTO requests (request_id, state, error, updated_at) VALUES (?, 'paused', NULL, ?)
				ON CONFLICT (request_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`, requestID, now); err != nil {
				return err
			}
			rows, err = tx.QueryContext(ctx, `UPDATE tasks SET status = 'paused', paused_with = 'request', key = '', updated_at = ?
				WHERE request_id = ? AND status = 'waiting' RETURNING `+columns, now, requestID)
		case timers.RequestResume:
			if _, err := tx.ExecContext(ctx, `DELETE FROM requests WHERE request_id = ?`, requestID); err != nil {
				return err
			}
			rows, err = tx.QueryContext(ctx, `UPDATE tasks SET status = 'waiting', paused_with = '', updated_at = ?
				WHERE request_id = ? AND status = 'paused' AND paused_with = 'request' RETURNING `+columns, now, requestID)
		case timers.RequestRevoke:
			// Revoked requests are forgotten RequestRetention after their revoke.
			if _, err := tx.ExecContext(ctx, `DELETE FROM requests WHERE state = 'revoked' AND updated_at < ?`,
				now-int64(timers.RequestRetention)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO requests (request_id, state, error, updated_at) VALUES (?, 'revoked', ?, ?)
				ON CONFLICT (request_id) DO UPDATE SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at`,
				requestID, errJSON, now); err != nil {
				return err
			}
			rows, err = tx.QueryContext(ctx, `UPDATE tasks SET status = 'fail', error = ?, key = '', paused_with = '',
				updated_at = ?, ended_at = ? WHERE request_id = ? AND status IN ('waiting', 'paused') RETURNING `+columns,
				errJSON, now, now, requestID)
		}
		if err != nil {
			return err
		}
		out, err = scanTasks(rows)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, op+" request "+requestID, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RequestState reads the state OperateRequest recorded for requestID.
func (s *Store) RequestState(ctx context.Context, requestID string) (string, error) {
	if s.closed.Load() {
		return "", errClosed("request state")
	}
	var state string
	err := s.read.QueryRowContext(ctx, `SELECT state FROM requests WHERE request_id = ?`, requestID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", s.fail(ctx, "request state", err)
	}
	return state, nil
}
