package pgmodels

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlgen"
	"github.com/trellis-run/trellis/host/models/internal/sqlstore"
)

// Store is the PostgreSQL model store. Safe for concurrent use.
type Store struct {
	*sqlstore.Store[*pgTx]
}

var _ models.Store = (*Store)(nil)

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
	pl, err := newPool(cfg, o.maxConns)
	if err != nil {
		return nil, fmt.Errorf("open: %w: %v", ErrInvalidOptions, err)
	}
	if o.schema != "" {
		// Outside the catalog's transaction: two hosts creating it at once, the loser sees a
		// duplicate, which is fine, but would abort a transaction.
		err := pl.Read(ctx, func(q sqlstore.Querier) error {
			if err := q.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+sqlgen.Quote(o.schema)); err != nil && !hasCode(err, "42P06", "23505") {
				return dialect{}.Classify(err)
			}
			return nil
		})
		if err != nil {
			pl.Close()
			return nil, fmt.Errorf("open: create schema %s: %w", o.schema, err)
		}
	}
	st, err := sqlstore.Open(ctx, dialect{}, pl, pl)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return &Store{st}, nil
}
