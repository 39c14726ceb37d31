package sqlstore

import (
	"context"
	"database/sql"
)

// Querier runs statements: a transaction, or a connection outside one.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) error
	QueryRow(ctx context.Context, query string, args ...any) Row
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// Row is what QueryRow returned; Scan fails with an error wrapping sql.ErrNoRows when there was
// no row (pgx's ErrNoRows wraps it too).
type Row interface {
	Scan(dest ...any) error
}

// Rows are what Query returned.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// DB is the database as the store uses it. T is the type of Write's transactions, which the
// Dialect's hooks receive, so a backend reaches its driver's own API (PostgreSQL's COPY, SQLite's
// last insert id) without type assertions.
//
// Errors are the driver's, except where the DB knows better than the statement's error can say
// (the connection was lost, the pool is closed): those wrap models.ErrUnavailable.
type DB[T Querier] interface {
	// Read runs fn on a connection outside a transaction, for one statement.
	Read(ctx context.Context, fn func(q Querier) error) error
	// Snapshot runs fn in a read-only transaction whose statements all see the same rows.
	Snapshot(ctx context.Context, fn func(q Querier) error) error
	// Write runs fn in a transaction, committing when fn returns nil and rolling back otherwise.
	Write(ctx context.Context, fn func(tx T) error) error
	// Close closes the connections; calls in flight finish first.
	Close() error
}

// SQLDB is a DB over database/sql.
type SQLDB struct {
	db       *sql.DB
	snapshot *sql.TxOptions
}

var _ DB[*SQLTx] = (*SQLDB)(nil)

// NewSQLDB makes a DB of db whose Snapshot transactions begin with snapshot: what gives one
// snapshot for a whole transaction differs between databases.
func NewSQLDB(db *sql.DB, snapshot sql.TxOptions) *SQLDB {
	return &SQLDB{db: db, snapshot: &snapshot}
}

// SQLTx is a write transaction of an SQLDB. Tx is there for what Querier does not offer
// (prepared statements, results).
type SQLTx struct {
	sqlQuerier
	Tx *sql.Tx
}

func (d *SQLDB) Read(ctx context.Context, fn func(q Querier) error) error {
	return fn(sqlQuerier{d.db})
}

func (d *SQLDB) Snapshot(ctx context.Context, fn func(q Querier) error) error {
	tx, err := d.db.BeginTx(ctx, d.snapshot)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(sqlQuerier{tx})
}

func (d *SQLDB) Write(ctx context.Context, fn func(tx *SQLTx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&SQLTx{sqlQuerier: sqlQuerier{tx}, Tx: tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (d *SQLDB) Close() error { return d.db.Close() }

// sqlRunner is *sql.DB or *sql.Tx.
type sqlRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqlQuerier struct{ r sqlRunner }

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) error {
	_, err := q.r.ExecContext(ctx, query, args...)
	return err
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	return q.r.QueryRowContext(ctx, query, args...)
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := q.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// sqlRows drops the error of Close: Err reports what went wrong while reading.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }
