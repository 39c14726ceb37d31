package sqlitemodels

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlgen"
)

// Store is the embedded model store. Safe for concurrent use.
type Store struct {
	path   string
	write  *sql.DB // one connection: SQLite has one writer at a time anyway
	read   *sql.DB // query_only connections
	closed atomic.Bool
}

var _ models.Store = (*Store)(nil)

// readConns is how many read-only connections answer queries at once.
const readConns = 4

var dialect = sqlgen.Dialect{
	Param:      func(int) string { return "?" },
	Like:       "LIKE", // case-insensitive for ASCII letters only, as SQLite's LIKE is
	Arg:        toDriver,
	ColumnType: columnType,
}

// Open opens (creating when missing) the model database at path, e.g. DATA/models.db.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open: %w: the path is empty; pass the data directory's models.db", models.ErrUnavailable)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open %s: %w: the path may not contain '?'", path, models.ErrUnavailable)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open %s: %w: create its directory: %w", path, models.ErrUnavailable, err)
	}
	s := &Store{path: path}
	if err := s.open(); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) open() error {
	const common = "_pragma=busy_timeout(10000)&_pragma=temp_store(memory)&_pragma=cache_size(-16384)"
	var err error
	s.write, err = sql.Open("sqlite", s.path+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)
	ctx := context.Background()
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+sqlgen.Quote(sqlgen.CatalogTable)+` (
		model TEXT PRIMARY KEY, tbl TEXT NOT NULL, fields TEXT NOT NULL, updated_at INTEGER NOT NULL) STRICT`); err != nil {
		return fmt.Errorf("%w: create the catalog: %w (is %s a writable SQLite database?)", models.ErrUnavailable, err, s.path)
	}
	s.read, err = sql.Open("sqlite", s.path+"?"+common+"&_query_only=1")
	if err != nil {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	s.read.SetMaxOpenConns(readConns)
	s.read.SetMaxIdleConns(readConns)
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	return nil
}

// Close closes the database; calls in flight finish first. Safe to call twice.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.closeAll()
}

func (s *Store) closeAll() error {
	var errs []error
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

func (s *Store) check(op string, sc models.Schema) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w: the model store is closed", op, models.ErrUnavailable)
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Ensure creates or extends the model's table (see models.Store).
func (s *Store) Ensure(ctx context.Context, sc models.Schema) error {
	if err := s.check("ensure", sc); err != nil {
		return err
	}
	return s.inTx(ctx, "ensure "+sc.Model, func(tx *sql.Tx) error {
		var raw string
		var stored []models.Field
		err := tx.QueryRowContext(ctx, `SELECT fields FROM `+sqlgen.Quote(sqlgen.CatalogTable)+` WHERE model = ?`, sc.Model).Scan(&raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal([]byte(raw), &stored); err != nil {
				return fmt.Errorf("%w: the catalog entry of %s is damaged: %v", models.ErrSchema, sc.Model, err)
			}
		}
		add, err := sqlgen.Diff(stored, sc)
		if err != nil {
			return err
		}
		if stored != nil && len(add) == 0 {
			return nil
		}
		if stored == nil {
			if _, err := tx.ExecContext(ctx, dialect.CreateTable(sc, "INTEGER PRIMARY KEY AUTOINCREMENT", "STRICT")); err != nil {
				return err
			}
		} else {
			for _, f := range add {
				if _, err := tx.ExecContext(ctx, dialect.AddColumn(sc, f)); err != nil {
					return err
				}
			}
		}
		fields, err := json.Marshal(sqlgen.Merge(stored, add))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO `+sqlgen.Quote(sqlgen.CatalogTable)+` (model, tbl, fields, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (model) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at`,
			sc.Model, sqlgen.TableName(sc.Model), string(fields), time.Now().UnixMilli())
		return err
	})
}

// Insert stores one row (see models.Store).
func (s *Store) Insert(ctx context.Context, sc models.Schema, r models.Row) (models.Row, error) {
	op := "insert into " + sc.Model
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	r, err := models.Normalize(sc, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	query, args, err := dialect.Insert(sc, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var out models.Row
	err = s.inTx(ctx, op, func(tx *sql.Tx) error {
		out, err = scanRow(sc, tx.QueryRowContext(ctx, query, args...))
		if err != nil {
			return rowError(sc, 0, 1, r, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Bulk inserts write up to chunkRows rows per statement, within SQLite's 32766 parameters.
const (
	chunkRows = 256
	maxParams = 32000
)

// InsertMany stores rows in one transaction (see models.Store). Consecutive rows that give the
// same fields and no id share one multi-row INSERT; their ids are consecutive because this
// connection is the only writer and AUTOINCREMENT counts up from the largest id.
func (s *Store) InsertMany(ctx context.Context, sc models.Schema, in []models.Row) ([]models.Row, error) {
	op := "insert many into " + sc.Model
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	norm, err := sqlgen.NormalizeRows(sc, in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(norm) == 0 {
		return []models.Row{}, nil
	}
	fields := sc.AllFields()
	out := make([]models.Row, len(norm))
	err = s.inTx(ctx, op, func(tx *sql.Tx) error {
		stmts := map[string]*sql.Stmt{} // by field set and row count
		defer func() {
			for _, st := range stmts {
				st.Close()
			}
		}()
		var args []any
		for i := 0; i < len(norm); {
			present, key := sqlgen.Present(sc, fields, norm[i])
			_, explicit := norm[i][models.IDField]
			k := 1
			if !explicit && len(present) > 0 {
				most := min(chunkRows, maxParams/len(present))
				for i+k < len(norm) && k < most {
					next := norm[i+k]
					if _, has := next[models.IDField]; has {
						break
					}
					if _, nextKey := sqlgen.Present(sc, fields, next); nextKey != key {
						break
					}
					k++
				}
			}
			args = args[:0]
			for _, r := range norm[i : i+k] {
				for _, f := range present {
					a, err := toDriver(f, r[f.Name])
					if err != nil {
						return rowError(sc, i, len(norm), r, err)
					}
					args = append(args, a)
				}
			}
			stKey := fmt.Sprintf("%s/%d", key, k)
			st, ok := stmts[stKey]
			if !ok {
				if st, err = tx.PrepareContext(ctx, dialect.InsertRows(sc, present, k)); err != nil {
					return err
				}
				stmts[stKey] = st
			}
			res, err := st.ExecContext(ctx, args...)
			if err != nil {
				if k == 1 {
					return rowError(sc, i, len(norm), norm[i], err)
				}
				return fmt.Errorf("rows %d to %d: %w", i, i+k-1, err)
			}
			last, err := res.LastInsertId()
			if err != nil {
				return err
			}
			for j, r := range norm[i : i+k] {
				id := last - int64(k-1-j)
				if explicit {
					id = r[models.IDField].(int64)
				}
				out[i+j] = sqlgen.FullRow(fields, r, id)
			}
			i += k
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func rowError(sc models.Schema, i, n int, r models.Row, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		err = fmt.Errorf("%w: model %s already has a row with id %v; leave id out to get a new one", models.ErrInvalidValue, sc.Model, r[models.IDField])
	}
	if n > 1 {
		return fmt.Errorf("row %d: %w", i, err)
	}
	return err
}

// Get returns row id (see models.Store).
func (s *Store) Get(ctx context.Context, sc models.Schema, id int64) (models.Row, error) {
	op := fmt.Sprintf("get %s %d", sc.Model, id)
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	row, err := scanRow(sc, s.read.QueryRowContext(ctx, dialect.ByID(sc, "SELECT"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(sc, id)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, mapError(err))
	}
	return row, nil
}

// Update patches row id (see models.Store).
func (s *Store) Update(ctx context.Context, sc models.Schema, id int64, patch models.Row) (prev, post models.Row, err error) {
	op := fmt.Sprintf("update %s %d", sc.Model, id)
	if err := s.check(op, sc); err != nil {
		return nil, nil, err
	}
	patch, err = models.Normalize(sc, patch)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	if v, ok := patch[models.IDField]; ok {
		if v != id {
			return nil, nil, fmt.Errorf("%s: %w: the patch has id %v; a row's id cannot change", op, models.ErrInvalidValue, v)
		}
		delete(patch, models.IDField)
	}
	err = s.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		prev, err = scanRow(sc, tx.QueryRowContext(ctx, dialect.ByID(sc, "SELECT"), id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(sc, id)
		}
		if err != nil {
			return err
		}
		if len(patch) == 0 {
			post = prev
			return nil
		}
		query, args, err := dialect.Update(sc, id, patch)
		if err != nil {
			return err
		}
		post, err = scanRow(sc, tx.QueryRowContext(ctx, query, args...))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if len(patch) == 0 {
		post = clone(prev)
	}
	return prev, post, nil
}

func clone(r models.Row) models.Row {
	out := make(models.Row, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

// Delete removes row id (see models.Store).
func (s *Store) Delete(ctx context.Context, sc models.Schema, id int64) (models.Row, error) {
	op := fmt.Sprintf("delete %s %d", sc.Model, id)
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	var prev models.Row
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		prev, err = scanRow(sc, tx.QueryRowContext(ctx, dialect.ByID(sc, "DELETE"), id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(sc, id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return prev, nil
}

// Query returns one page of matching rows (see models.Store).
func (s *Store) Query(ctx context.Context, sc models.Schema, q models.Query) (models.Page, error) {
	op := "query " + sc.Model
	if err := s.check(op, sc); err != nil {
		return models.Page{}, err
	}
	plan, err := models.PlanQuery(sc, q)
	if err != nil {
		return models.Page{}, fmt.Errorf("%s: %w", op, err)
	}
	count, pageSQL, args, err := dialect.Select(sc, plan)
	if err != nil {
		return models.Page{}, fmt.Errorf("%s: %w", op, err)
	}
	var page models.Page
	err = func() error {
		// One read transaction: the count and the rows come from the same snapshot.
		tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := tx.QueryRowContext(ctx, count, args...).Scan(&page.TotalCount); err != nil {
			return err
		}
		page.Rows = []models.Row{}
		if page.TotalCount <= int64(plan.Offset) {
			return nil
		}
		rows, err := tx.QueryContext(ctx, pageSQL, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRow(sc, rows)
			if err != nil {
				return err
			}
			page.Rows = append(page.Rows, r)
		}
		return rows.Err()
	}()
	if err != nil {
		return models.Page{}, fmt.Errorf("%s: %w", op, mapError(err))
	}
	return page, nil
}

// inTx runs fn in a write transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, mapError(err))
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("%s: %w", op, mapError(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", op, mapError(err))
	}
	return nil
}

func notFound(sc models.Schema, id int64) error {
	return fmt.Errorf("%w: %s has no row with id %d", models.ErrNotFound, sc.Model, id)
}

// mapError wraps driver errors in the models sentinel the caller can act on.
func mapError(err error) error {
	if errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrInvalidValue) || errors.Is(err, models.ErrSchema) ||
		errors.Is(err, models.ErrUnknownField) || errors.Is(err, models.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) || strings.Contains(err.Error(), "database is closed") {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	msg := err.Error()
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %w", models.ErrInvalidValue, err)
		case sqlite3.SQLITE_ERROR:
			if strings.Contains(msg, "no such table") || strings.Contains(msg, "no such column") || strings.Contains(msg, "has no column") {
				return fmt.Errorf("%w: the table does not match the model (%v); call Ensure with the model's schema first (it runs when the app loads)", models.ErrSchema, err)
			}
			return err
		}
	}
	// Busy past the timeout, I/O errors, a full disk, a read-only or missing file.
	return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// scanRow reads one row of every field of sc into the stored value model.
func scanRow(sc models.Schema, row scanner) (models.Row, error) {
	fields := sc.AllFields()
	vals := make([]any, len(fields))
	ptrs := make([]any, len(fields))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := row.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make(models.Row, len(fields))
	for i, f := range fields {
		v, err := fromDriver(f, vals[i])
		if err != nil {
			return nil, err
		}
		out[f.Name] = v
	}
	return out, nil
}

// toDriver turns a stored value into what SQLite keeps.
func toDriver(f models.Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case models.TypeBoolean:
		if b, ok := v.(bool); ok {
			if b {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case models.TypeDatetime:
		if t, ok := v.(time.Time); ok {
			return t.UnixMilli(), nil
		}
	case models.TypeJSON:
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: field %q: %v", models.ErrInvalidValue, f.Name, err)
		}
		return string(raw), nil
	default:
		return v, nil
	}
	return nil, fmt.Errorf("%w: field %q is %s; got %T (coerce values first)", models.ErrInvalidValue, f.Name, f.Type, v)
}

// fromDriver turns what SQLite returns into the stored value model.
func fromDriver(f models.Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if b, ok := v.([]byte); ok {
		v = string(b)
	}
	bad := func() (any, error) {
		return nil, fmt.Errorf("%w: column %q (%s) holds %T; was the table changed by hand?", models.ErrSchema, f.Name, f.Type, v)
	}
	switch f.Type {
	case models.TypeAutoInt, models.TypeInteger:
		if n, ok := v.(int64); ok {
			return n, nil
		}
	case models.TypeNumeric:
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		}
	case models.TypeStext, models.TypeLtext, models.TypeDate:
		if str, ok := v.(string); ok {
			return str, nil
		}
	case models.TypeBoolean:
		if n, ok := v.(int64); ok {
			return n != 0, nil
		}
	case models.TypeDatetime:
		if n, ok := v.(int64); ok {
			return time.UnixMilli(n).UTC(), nil
		}
	case models.TypeJSON:
		if str, ok := v.(string); ok {
			var out any
			if err := json.Unmarshal([]byte(str), &out); err != nil {
				return nil, fmt.Errorf("%w: column %q holds text that is not JSON: %v", models.ErrSchema, f.Name, err)
			}
			return out, nil
		}
	}
	return bad()
}

// columnType is the STRICT column definition of a field; the CHECKs keep rows written by other
// tools within the field's rules too.
func columnType(f models.Field) string {
	col := sqlgen.Quote(f.Name)
	switch f.Type {
	case models.TypeInteger, models.TypeAutoInt:
		return "INTEGER"
	case models.TypeNumeric:
		return "REAL"
	case models.TypeStext:
		return fmt.Sprintf("TEXT CHECK (length(%s) <= %d)", col, models.StextMaxLen)
	case models.TypeBoolean:
		return fmt.Sprintf("INTEGER CHECK (%s IN (0, 1))", col)
	case models.TypeDatetime:
		return "INTEGER"
	default: // Ltext, Date, JSON
		return "TEXT"
	}
}
