package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlgen"
)

// Dialect is what differs between the databases the store runs on, beyond statement text. T is
// the type of the DB's write transactions.
type Dialect[T Querier] interface {
	sqlgen.Dialect

	// CreateCatalog is the statement creating the catalog table (sqlgen.CatalogTable) when
	// missing. Its layout is part of the storage format: existing databases have it.
	CreateCatalog() string
	// FromDriver turns what the driver returns for field f (scanned into an any) into the
	// stored value model; a value the field cannot hold is models.ErrSchema.
	FromDriver(f models.Field, v any) (any, error)
	// Classify wraps a driver error in the models sentinel the caller can act on, or returns it
	// as it is. It sees only errors that wrap no sentinel and no context error.
	Classify(err error) error
	// DuplicateKey reports whether err is an insert refused because the id is taken.
	DuplicateKey(err error) bool
	// ForUpdate follows the SELECT that Update reads the row with: a row lock where writers can
	// run at once, "" where writes are serialized anyway.
	ForUpdate() string
	// LockCatalog runs first in every transaction changing the catalog, so hosts sharing the
	// database change it one at a time; it does nothing where the database serializes writes.
	LockCatalog(ctx context.Context, tx T) error
	// WithExplicitID runs insert, which stores a row with an id given by the caller, so that
	// ids handed out later are larger (models.Store's promise for imported ids).
	WithExplicitID(ctx context.Context, tx T, s models.Schema, insert func() error) error
	// InsertRows stores rows (normalized, at least one) in s's table within tx and returns them
	// as stored, in order, each with every field (FullRow). A row refused by the database is
	// named in the error ("row 7: ...", DuplicateID for an id taken).
	InsertRows(ctx context.Context, tx T, s models.Schema, rows []models.Row) ([]models.Row, error)
}

// Store keeps the rows of every model in one database. Safe for concurrent use.
type Store[T Querier] struct {
	d      Dialect[T]
	write  DB[T] // every write
	read   DB[T] // Get and Query; may be write
	closed atomic.Bool
}

var _ models.Store = (*Store[*SQLTx])(nil)

// Open makes a store over write and read (which may be the same DB) and creates the catalog
// table when missing. The store owns the DBs from then on, and closes them on Close or when
// Open fails.
func Open[T Querier](ctx context.Context, d Dialect[T], write, read DB[T]) (*Store[T], error) {
	s := &Store[T]{d: d, write: write, read: read}
	err := s.inTx(ctx, "create the catalog", func(tx T) error {
		if err := d.LockCatalog(ctx, tx); err != nil {
			return err
		}
		return tx.Exec(ctx, d.CreateCatalog())
	})
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the databases; calls in flight finish first. Safe to call twice.
func (s *Store[T]) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	if s.read != s.write {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func (s *Store[T]) check(op string, sc models.Schema) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w: the model store is closed", op, models.ErrUnavailable)
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// inTx runs fn in a write transaction, committing when it returns nil.
func (s *Store[T]) inTx(ctx context.Context, op string, fn func(tx T) error) error {
	if err := s.write.Write(ctx, fn); err != nil {
		return fmt.Errorf("%s: %w", op, s.mapError(err))
	}
	return nil
}

// Ensure creates or extends the model's table (see models.Store).
func (s *Store[T]) Ensure(ctx context.Context, sc models.Schema) error {
	op := "ensure " + sc.Model
	if err := s.check(op, sc); err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx T) error {
		if err := s.d.LockCatalog(ctx, tx); err != nil {
			return err
		}
		var raw []byte
		var stored []models.Field
		err := tx.QueryRow(ctx, sqlgen.ReadCatalog(s.d), sc.Model).Scan(&raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(raw, &stored); err != nil {
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
			if err := tx.Exec(ctx, sqlgen.CreateTable(s.d, sc)); err != nil {
				return err
			}
		} else {
			for _, f := range add {
				if err := tx.Exec(ctx, sqlgen.AddColumn(s.d, sc, f)); err != nil {
					return err
				}
			}
		}
		// The catalog's columns are stored as a JSON and a Datetime field would be.
		fields, err := s.d.Arg(models.Field{Name: "fields", Type: models.TypeJSON}, sqlgen.Merge(stored, add))
		if err != nil {
			return err
		}
		now, err := s.d.Arg(models.Field{Name: "updated_at", Type: models.TypeDatetime}, time.Now().UTC())
		if err != nil {
			return err
		}
		return tx.Exec(ctx, sqlgen.WriteCatalog(s.d), sc.Model, sqlgen.TableName(sc.Model), fields, now)
	})
}

// Insert stores one row (see models.Store).
func (s *Store[T]) Insert(ctx context.Context, sc models.Schema, r models.Row) (models.Row, error) {
	op := "insert into " + sc.Model
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	r, err := models.Normalize(sc, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	query, args, err := sqlgen.Insert(s.d, sc, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var out models.Row
	err = s.inTx(ctx, op, func(tx T) error {
		insert := func() error {
			var err error
			out, err = s.scanRow(sc, tx.QueryRow(ctx, query, args...))
			if err != nil && s.d.DuplicateKey(err) {
				return DuplicateID(sc, r[models.IDField])
			}
			return err
		}
		if _, explicit := r[models.IDField]; explicit {
			return s.d.WithExplicitID(ctx, tx, sc, insert)
		}
		return insert()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// InsertMany stores rows in one transaction (see models.Store), the way the dialect writes
// many rows quickly.
func (s *Store[T]) InsertMany(ctx context.Context, sc models.Schema, in []models.Row) ([]models.Row, error) {
	op := "insert many into " + sc.Model
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	norm, err := normalizeRows(sc, in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(norm) == 0 {
		return []models.Row{}, nil
	}
	var out []models.Row
	err = s.inTx(ctx, op, func(tx T) error {
		out, err = s.d.InsertRows(ctx, tx, sc, norm)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func notFound(sc models.Schema, id int64) error {
	return fmt.Errorf("%w: %s has no row with id %d", models.ErrNotFound, sc.Model, id)
}

// Get returns row id (see models.Store).
func (s *Store[T]) Get(ctx context.Context, sc models.Schema, id int64) (models.Row, error) {
	op := fmt.Sprintf("get %s %d", sc.Model, id)
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	var row models.Row
	err := s.read.Read(ctx, func(q Querier) error {
		var err error
		row, err = s.scanRow(sc, q.QueryRow(ctx, sqlgen.ByID(s.d, sc, "SELECT"), id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(sc, id)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, s.mapError(err))
	}
	return row, nil
}

// Update patches row id (see models.Store).
func (s *Store[T]) Update(ctx context.Context, sc models.Schema, id int64, patch models.Row) (prev, post models.Row, err error) {
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
	err = s.inTx(ctx, op, func(tx T) error {
		var err error
		prev, err = s.scanRow(sc, tx.QueryRow(ctx, sqlgen.ByID(s.d, sc, "SELECT")+s.d.ForUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(sc, id)
		}
		if err != nil || len(patch) == 0 {
			return err
		}
		query, args, err := sqlgen.Update(s.d, sc, id, patch)
		if err != nil {
			return err
		}
		post, err = s.scanRow(sc, tx.QueryRow(ctx, query, args...))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if len(patch) == 0 {
		post = make(models.Row, len(prev))
		for k, v := range prev {
			post[k] = v
		}
	}
	return prev, post, nil
}

// Delete removes row id (see models.Store).
func (s *Store[T]) Delete(ctx context.Context, sc models.Schema, id int64) (models.Row, error) {
	op := fmt.Sprintf("delete %s %d", sc.Model, id)
	if err := s.check(op, sc); err != nil {
		return nil, err
	}
	var prev models.Row
	err := s.inTx(ctx, op, func(tx T) error {
		var err error
		prev, err = s.scanRow(sc, tx.QueryRow(ctx, sqlgen.ByID(s.d, sc, "DELETE"), id))
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
func (s *Store[T]) Query(ctx context.Context, sc models.Schema, q models.Query) (models.Page, error) {
	op := "query " + sc.Model
	if err := s.check(op, sc); err != nil {
		return models.Page{}, err
	}
	plan, err := models.PlanQuery(sc, q)
	if err != nil {
		return models.Page{}, fmt.Errorf("%s: %w", op, err)
	}
	count, pageSQL, args, err := sqlgen.Select(s.d, sc, plan)
	if err != nil {
		return models.Page{}, fmt.Errorf("%s: %w", op, err)
	}
	page := models.Page{Rows: []models.Row{}}
	err = s.read.Snapshot(ctx, func(q Querier) error {
		if err := q.QueryRow(ctx, count, args...).Scan(&page.TotalCount); err != nil {
			return err
		}
		if page.TotalCount <= int64(plan.Offset) {
			return nil
		}
		rows, err := q.Query(ctx, pageSQL, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := s.scanRow(sc, rows)
			if err != nil {
				return err
			}
			page.Rows = append(page.Rows, r)
		}
		return rows.Err()
	})
	if err != nil {
		return models.Page{}, fmt.Errorf("%s: %w", op, s.mapError(err))
	}
	return page, nil
}

// scanRow reads one row of every field of sc into the stored value model.
func (s *Store[T]) scanRow(sc models.Schema, row Row) (models.Row, error) {
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
		v, err := s.d.FromDriver(f, vals[i])
		if err != nil {
			return nil, err
		}
		out[f.Name] = v
	}
	return out, nil
}

// sentinels are the errors callers act on; one already wrapped needs no classifying.
var sentinels = []error{models.ErrNotFound, models.ErrInvalidValue, models.ErrSchema, models.ErrUnknownField, models.ErrUnavailable}

// mapError wraps err in the models sentinel the caller can act on; a context's end stays as
// it is, for the caller to see.
func (s *Store[T]) mapError(err error) error {
	for _, sentinel := range sentinels {
		if errors.Is(err, sentinel) {
			return err
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return s.d.Classify(err)
}
