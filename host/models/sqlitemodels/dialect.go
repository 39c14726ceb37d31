package sqlitemodels

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlgen"
	"github.com/trellis-run/trellis/host/models/internal/sqlstore"
	"github.com/trellis-run/trellis/host/vocab"
)

// dialect is SQLite as the model store uses it.
type dialect struct{}

var _ sqlstore.Dialect[*sqlstore.SQLTx] = dialect{}

func (dialect) Param(int) string { return "?" }

// Like folds case for ASCII letters only, as SQLite's LIKE does.
func (dialect) Like() string { return "LIKE" }

// IDColumn: AUTOINCREMENT, unlike a plain rowid, never hands out the id of a deleted last row
// again, and counts on from the largest id ever stored, explicit ones included.
func (dialect) IDColumn() string { return "INTEGER PRIMARY KEY AUTOINCREMENT" }

// TableOptions: STRICT makes SQLite refuse a value of the wrong storage class instead of keeping
// it.
func (dialect) TableOptions() string { return "STRICT" }

// ColumnType is the STRICT column definition of a field; the CHECKs keep rows written by other
// tools within the field's rules too.
func (dialect) ColumnType(f models.Field) string {
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

func (dialect) CreateCatalog() string {
	return `CREATE TABLE IF NOT EXISTS ` + sqlgen.Quote(sqlgen.CatalogTable) + ` (
		model TEXT PRIMARY KEY, tbl TEXT NOT NULL, fields TEXT NOT NULL, updated_at INTEGER NOT NULL) STRICT`
}

// ForUpdate is empty: the one writer connection serializes writes.
func (dialect) ForUpdate() string { return "" }

// LockCatalog does nothing: writes begin IMMEDIATE on the one writer connection, so catalog
// changes are serialized already, across processes too.
func (dialect) LockCatalog(context.Context, *sqlstore.SQLTx) error { return nil }

// WithExplicitID needs nothing around the insert: AUTOINCREMENT counts on from the largest id.
func (dialect) WithExplicitID(_ context.Context, _ *sqlstore.SQLTx, _ models.Schema, insert func() error) error {
	return insert()
}

func (dialect) DuplicateKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// Classify maps SQLite's result codes.
func (dialect) Classify(err error) error {
	msg := err.Error()
	// database/sql's own: the pool was closed under a call, or the connection broke
	// mid-transaction.
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) || strings.Contains(msg, "database is closed") {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
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

// Arg turns a stored value into what SQLite keeps.
func (dialect) Arg(f models.Field, v any) (any, error) {
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

// FromDriver turns what SQLite returns into the stored value model.
func (dialect) FromDriver(f models.Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if b, ok := v.([]byte); ok {
		v = string(b)
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
			// vocab's decoder keeps integers exact: an id inside a JSON field comes back as stored.
			out, err := vocab.DecodeJSON([]byte(str))
			if err != nil {
				return nil, fmt.Errorf("%w: column %q holds text that is not JSON: %v", models.ErrSchema, f.Name, err)
			}
			return out, nil
		}
	}
	return nil, sqlstore.Unexpected(f, v)
}

// Bulk inserts write up to chunkRows rows per statement, within SQLite's 32766 parameters.
const (
	chunkRows = 256
	maxParams = 32000
)

// InsertRows writes consecutive rows that give the same fields and no id with one multi-row
// INSERT; their ids are consecutive because this connection is the only writer and
// AUTOINCREMENT counts up from the largest id.
func (d dialect) InsertRows(ctx context.Context, tx *sqlstore.SQLTx, sc models.Schema, norm []models.Row) ([]models.Row, error) {
	fields := sc.AllFields()
	out := make([]models.Row, len(norm))
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
				a, err := d.Arg(f, r[f.Name])
				if err != nil {
					return nil, rowError(sc, i, len(norm), r, err)
				}
				args = append(args, a)
			}
		}
		stKey := fmt.Sprintf("%s/%d", key, k)
		st, ok := stmts[stKey]
		if !ok {
			var err error
			if st, err = tx.Tx.PrepareContext(ctx, sqlgen.InsertRows(d, sc, present, k)); err != nil {
				return nil, err
			}
			stmts[stKey] = st
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			if k == 1 {
				return nil, rowError(sc, i, len(norm), norm[i], err)
			}
			return nil, fmt.Errorf("rows %d to %d: %w", i, i+k-1, err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		for j, r := range norm[i : i+k] {
			id := last - int64(k-1-j)
			if explicit {
				id = r[models.IDField].(int64)
			}
			out[i+j] = sqlstore.FullRow(fields, r, id)
		}
		i += k
	}
	return out, nil
}

// rowError names row i of n in err, and explains an id already taken.
func rowError(sc models.Schema, i, n int, r models.Row, err error) error {
	if (dialect{}).DuplicateKey(err) {
		err = sqlstore.DuplicateID(sc, r[models.IDField])
	}
	if n > 1 {
		return fmt.Errorf("row %d: %w", i, err)
	}
	return err
}
