// Package pgmodels is the PostgreSQL model store (github.com/jackc/pgx/v5), for hosts that share
// their models' rows or need more than one machine's disk.
//
// It owns the tables of one PostgreSQL schema (public, or the one WithSchema names, created when
// missing): a catalog table (trellis_models) and one table per model, named from its fullName by
// sqlgen.TableName. Datetime is timestamptz, JSON jsonb, Numeric double precision, Stext
// varchar(255), Date date; ids come from an identity column, so they are never reused. Ensure
// runs under a transaction-scoped advisory lock, so hosts loading the same app at once agree.
// InsertMany reserves ids from the sequence and writes with COPY.
//
// It is Open, a dialect (dialect.go) and a pgxpool.Pool (pool.go) under the shared store in
// internal/sqlstore. pgx is used directly, not through its database/sql driver: measured, that
// driver's transactions cost each single-row write about a fifth more CPU, and COPY needs pgx
// anyway.
//
// It implements models.Store and must not know about JavaScript, events or tasks.
package pgmodels
