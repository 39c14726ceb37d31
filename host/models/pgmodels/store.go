package pgmodels

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlgen"
	"github.com/trellis-run/trellis/host/models/internal/sqlstore"
)

// Store is the PostgreSQL model store. Safe for concurrent use.
type Store struct {
	*sqlstore.Store
}

var _ models.Store = (*Store)(nil)

// Connections are recycled as pgxpool recycles them, so a server-side change (a failover, a
// changed setting) reaches every connection eventually.
const (
	connMaxLifetime = time.Hour
	connMaxIdleTime = 30 * time.Minute
)

// Open connects to the database at dsn (a postgres:// URL or key=value string), creates the
// schema WithSchema names when missing and the catalog table, and fails with an error wrapping
// models.ErrUnavailable when the server cannot be reached within the connect timeout.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open: %w: the DSN cannot be read (%v); give postgres://user:password@host:port/db", ErrInvalidOptions, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = o.connectTimeout
	}
	if o.schema != "" {
		cfg.RuntimeParams["search_path"] = sqlgen.Quote(o.schema)
	}
	// database/sql dials lazily, so the first statement below is what finds an unreachable
	// server.
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(o.maxConns)
	db.SetMaxIdleConns(o.maxConns)
	db.SetConnMaxLifetime(connMaxLifetime)
	db.SetConnMaxIdleTime(connMaxIdleTime)
	st := sqlstore.New(dialect{}, db, db)
	if o.schema != "" {
		_, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+sqlgen.Quote(o.schema))
		// Two hosts creating it at once: the loser sees a duplicate, which is fine.
		if err != nil && !hasCode(err, "42P06", "23505") {
			st.Discard()
			if ctx.Err() == nil {
				err = dialect{}.Classify(err)
			}
			return nil, fmt.Errorf("open: create schema %s: %w", o.schema, err)
		}
	}
	if err := st.CreateCatalog(ctx); err != nil {
		st.Discard()
		return nil, fmt.Errorf("open: %w", err)
	}
	return &Store{st}, nil
}
